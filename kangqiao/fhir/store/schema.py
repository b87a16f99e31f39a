"""The store's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

``resource`` holds the current version of every resource (deleted ones as tombstones),
``resource_history`` every version ever written, the ``search_*`` tables the search index of
current, non-deleted versions, and ``outbox`` one change event per committed write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    false,
    or_,
)
from sqlalchemy.dialects.postgresql import JSONB

# Constraint names follow a convention so migrations stay deterministic.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL, JSON text on SQLite; callers pass and get dicts (the engine serialises
# with orjson, see kangqiao.fhir.store.db).
Content = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

TYPE_LEN = 64
ID_LEN = 64

resource = Table(
    "resource",
    metadata,
    Column("resource_type", String(TYPE_LEN), primary_key=True),
    Column("id", String(ID_LEN), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Content, nullable=True),
    Index(None, "resource_type", "last_updated"),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("resource_type", String(TYPE_LEN), primary_key=True),
    Column("id", String(ID_LEN), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    # create | update | delete | patch: the interaction that wrote this version
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Content, nullable=True),
    Index(None, "last_updated"),
    Index(None, "resource_type", "last_updated"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("resource_type", String(TYPE_LEN), nullable=False),
    Column("resource_id", String(ID_LEN), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("action", String(8), nullable=False),
    Column("occurred_at", DateTime(timezone=False), nullable=False),
    Column("processed_at", DateTime(timezone=False), nullable=True),
    Index(None, "processed_at", "seq"),
)


# Bulk import checkpoints: the last line of each file committed by a job, written in the same
# transaction as the resources, so a restarted import resumes without duplicates.
import_progress = Table(
    "import_progress",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("file", String(1024), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("committed_line", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=False), nullable=False),
)


# Bulk Data $export jobs (kangqiao/fhir/bulk/export.py). The row is the job's whole state, so a
# job survives a restart: ``progress`` is the checkpoint (type, last id, bytes of the open file)
# written after each chunk, and ``owner`` / ``heartbeat`` let one process claim a job and another
# take it over when the first stops beating.
export_job = Table(
    "export_job",
    metadata,
    Column("id", String(64), primary_key=True),
    # accepted | running | completed | failed | cancelled
    Column("status", String(16), nullable=False),
    Column("requester", String(256), nullable=False),
    Column("access", JSON(none_as_null=True), nullable=False),
    Column("request", Text, nullable=False),
    Column("params", JSON(none_as_null=True), nullable=False),
    Column("transaction_time", DateTime(timezone=False), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
    Column("finished_at", DateTime(timezone=False), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("heartbeat", DateTime(timezone=False), nullable=True),
    Column("progress", JSON(none_as_null=True), nullable=False),
    Column("error", Text, nullable=True),
    Index(None, "status", "created_at"),
)


def _index_table(name: str, *value_columns: Column[Any] | Index) -> Table:
    return Table(
        name,
        metadata,
        Column("resource_type", String(TYPE_LEN), nullable=False),
        Column("resource_id", String(ID_LEN), nullable=False),
        Column("param", String(TYPE_LEN), nullable=False),
        *value_columns,
        # Composite search params: rows of one element's components share a grp number
        # (NULL for ordinary rows); see kangqiao/fhir/search/index.py.
        Column("grp", Integer, nullable=True),
        Index(None, "resource_type", "resource_id"),
    )


# Normalised values: lower-cased, accents removed (string); naive UTC datetimes (date).
search_string = _index_table(
    "search_string",
    Column("value", String(512), nullable=False),
    # pattern ops: PostgreSQL answers ``value LIKE 'prefix%'`` from the index whatever the
    # database's collation (SQLite uses a binary range instead, see search/predicates.py)
    Index("ix_search_string_lookup", "resource_type", "param", "value",
          postgresql_ops={"value": "varchar_pattern_ops"}),
)
search_token = _index_table(
    "search_token",
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Column("display", String(512), nullable=True),
    Index("ix_search_token_lookup", "resource_type", "param", "code", "system"),
)
search_reference = _index_table(
    "search_reference",
    Column("target_type", String(TYPE_LEN), nullable=True),
    Column("target_id", String(ID_LEN), nullable=True),
    Column("target_version", String(ID_LEN), nullable=True),
    Column("url", String(1024), nullable=True),
    Index("ix_search_reference_lookup", "resource_type", "param", "target_id", "target_type"),
    Index("ix_search_reference_target", "target_type", "target_id"),
)
search_date = _index_table(
    "search_date",
    Column("low", DateTime(timezone=False), nullable=False),
    Column("high", DateTime(timezone=False), nullable=False),
    Index("ix_search_date_lookup", "resource_type", "param", "low", "high"),
)
search_number = _index_table(
    "search_number",
    Column("value", Float, nullable=False),
    Index("ix_search_number_lookup", "resource_type", "param", "value"),
)
search_quantity = _index_table(
    "search_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(512), nullable=True),
    Column("code", String(128), nullable=True),
    # value converted to a canonical unit (e.g. kPa -> mmHg, mg/dL glucose -> mmol/L)
    Column("canonical_value", Float, nullable=True),
    Column("canonical_code", String(128), nullable=True),
    # value before code: a range narrows the index whatever the unit (code is tested in it)
    Index("ix_search_quantity_lookup", "resource_type", "param", "value", "code"),
)
search_uri = _index_table(
    "search_uri",
    Column("value", String(1024), nullable=False),
    Index("ix_search_uri_lookup", "resource_type", "param", "value"),
)
# A token and a date parameter of one resource together (``search/combos.py``): param is
# ``<token>+<date>``. The index ends in resource_id so that a code's period is read from the
# index alone; it is only ever a driver, never probed per resource.
search_token_date = _index_table(
    "search_token_date",
    Column("system", String(512), nullable=True),
    Column("code", String(512), nullable=True),
    Column("low", DateTime(timezone=False), nullable=False),
    Column("high", DateTime(timezone=False), nullable=False),
    Index("ix_search_token_date_lookup", "resource_type", "param", "code", "high", "low",
          "system", "resource_id"),
)
# A composite of a token and a quantity (``search/combos.py``: ``component-code-value-
# quantity``, ``code-value-quantity``), one row per element: the code and the value together,
# so that "systolic >= 160" is a range of one index (read from the index alone: it ends in
# resource_id; PostgreSQL keeps joint statistics of it, see its migration). Quantity columns
# as in search_quantity.
search_token_quantity = _index_table(
    "search_token_quantity",
    Column("token_system", String(512), nullable=True),
    Column("token_code", String(512), nullable=True),
    Column("value", Float, nullable=False),
    Column("system", String(512), nullable=True),
    Column("code", String(128), nullable=True),
    Column("canonical_value", Float, nullable=True),
    Column("canonical_code", String(128), nullable=True),
    Index("ix_search_token_quantity_lookup", "resource_type", "param", "token_code", "value",
          "token_system", "resource_id"),
)

INDEX_TABLES: dict[str, Table] = {
    "string": search_string,
    "token": search_token,
    "reference": search_reference,
    "date": search_date,
    "number": search_number,
    "quantity": search_quantity,
    "uri": search_uri,
    "token_date": search_token_date,
    "token_quantity": search_token_quantity,
}

# Column order of index rows as the store buffers them (tuples): every column of the table.
INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: tuple(c.name for c in table.columns) for kind, table in INDEX_TABLES.items()
}


def keys_in(
    type_column: ColumnElement[Any], id_column: ColumnElement[Any],
    keys: Iterable[tuple[str, str]],
) -> ColumnElement[bool]:
    """``(type, id) IN keys`` written ``type = ? AND id IN (...)`` per type. SQLite answers a
    row-value IN list by reading the whole key index (no seek): loading the 20 patients a page
    of Conditions includes took 53 ms at 420,000 resources, one seek each takes a fraction."""
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    if not by_type:
        return false()
    return or_(*(and_(type_column == rtype, id_column.in_(ids))
                 for rtype, ids in sorted(by_type.items())))
