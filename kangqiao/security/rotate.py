"""Key rotation: re-encrypt stored protected values with the newest field key, in batches.
Also the way to protect a database written before field protection: clear protected values
are encrypted and their resource re-indexed with blind values (``kangqiao keys rotate
--no-new-key``).

Rows are read as stored text (so the key ids in them can be seen without decrypting), and a
row holding a value of an older key is decrypted and written back through the column type,
whose serialiser encrypts with the current key. Versions, ``last_updated`` and the search
index are unchanged (the clear values are the same; the blind index has its own key). Each
batch is its own short transaction, so a rotation of a large county can run while the
platform serves, and an interrupted one is resumed by running it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    and_,
    cast,
    delete,
    or_,
    select,
    tuple_,
    update,
)

from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import bulk_insert_tuples, write_transaction
from kangqiao.fhir.store.store import index_tuples
from kangqiao.security import fieldcrypt


@dataclass
class RotationReport:
    scanned: int = 0
    reencrypted: int = 0


def _key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def reencrypt(engine: Engine, *, batch: int = 500,
              progress: Callable[[str, RotationReport], None] | None = None
              ) -> dict[str, RotationReport]:
    """Re-encrypt every row of ``resource`` and ``resource_history`` that holds a value
    encrypted with a key other than the current one."""
    ring = fieldcrypt.keyring()
    reports: dict[str, RotationReport] = {}
    for table in (schema.resource, schema.resource_history):
        report = reports[table.name] = RotationReport()
        keys = [table.c[n] for n in _key_columns(table)]
        last: tuple[object, ...] | None = None
        while True:
            stmt = select(*keys, cast(table.c.content, String).label("raw")).where(
                table.c.resource_type.in_(sorted(fieldcrypt.PROTECTED_TYPES)),
                table.c.content.is_not(None)).order_by(*keys).limit(batch)
            if last is not None:
                stmt = stmt.where(tuple_(*keys) > tuple_(*last))
            with write_transaction(engine) as conn:
                rows = conn.execute(stmt).all()
                if not rows:
                    break
                last = tuple(rows[-1][:len(keys)])
                report.scanned += len(rows)
                for row in rows:
                    kids = fieldcrypt.key_ids(row.raw)
                    if kids == {ring.current}:
                        continue
                    content = fieldcrypt.loads(row.raw)
                    clear = not kids  # written before field protection (or has nothing)
                    if clear and not fieldcrypt.values_of(content):
                        continue
                    match = and_(*[k == row[i] for i, k in enumerate(keys)])
                    conn.execute(update(table).where(match).values(content=content))
                    if clear and table is schema.resource:
                        _reindex(conn, row.resource_type, row.id, content)
                    report.reencrypted += 1
            if progress is not None:
                progress(table.name, report)
    return reports


def _reindex(conn: Connection, resource_type: str, resource_id: str,
             content: dict[str, Any]) -> None:
    """Index rows of a resource written before field protection: blind values instead."""
    for table in schema.INDEX_TABLES.values():
        conn.execute(delete(table).where(table.c.resource_type == resource_type,
                                         table.c.resource_id == resource_id))
    for kind, tuples in index_tuples(resource_type, resource_id, index_rows(content)).items():
        bulk_insert_tuples(conn, schema.INDEX_TABLES[kind], schema.INDEX_COLUMNS[kind], tuples)


def stale_rows(engine: Engine) -> int:
    """Rows still holding a value of an older key (0 after a complete rotation)."""
    ring = fieldcrypt.keyring()
    old = [k for k in ring.keys if k != ring.current]
    if not old:
        return 0
    count = 0
    with engine.connect() as conn:
        for table in (schema.resource, schema.resource_history):
            raw = cast(table.c.content, String)
            stmt = select(raw).where(
                table.c.resource_type.in_(sorted(fieldcrypt.PROTECTED_TYPES)),
                or_(*[raw.contains(f"{fieldcrypt.PREFIX}{k}:") for k in old]))
            count += len(conn.execute(stmt).all())
    return count


def vacuum(engine: Engine) -> None:
    """Rewrite the SQLite file (and empty its WAL) so that ciphertexts of retired keys do not
    linger in free pages. PostgreSQL: run ``VACUUM FULL resource, resource_history`` in a
    maintenance window (a plain VACUUM marks space free but does not overwrite it)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.execute("VACUUM")
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
