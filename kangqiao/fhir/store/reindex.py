"""Index rows of search parameters added after resources were stored.

A write indexes every parameter known at that moment; a parameter added later (the platform's
own, ``params.PLATFORM_PARAMS``, or one registered at run time) has no rows for what was
stored before it. ``reindex_params`` writes them - from a migration, on the migration's
connection - with the same ``index_rows`` as a write, so they equal what a new write of each
resource would index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Table, delete, inspect, select

from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import bulk_insert_tuples
from kangqiao.fhir.store.store import index_tuples

R = schema.resource
BATCH = 1000


def _owned(param: str, codes: frozenset[str]) -> bool:
    """Index rows of a parameter are named by its code, or ``code:identifier`` (logical
    references) / ``code$i`` (composite components) / ``token+date`` (a pair of parameters,
    ``search/combos.py``: rewritten with either)."""
    name = param.partition(":")[0].partition("$")[0]
    return name in codes or any(part in codes for part in name.split("+"))


def _only(rows: dict[str, list[dict[str, Any]]], codes: frozenset[str]
          ) -> dict[str, list[dict[str, Any]]]:
    return {kind: [r for r in found if _owned(r["param"], codes)]
            for kind, found in rows.items()}


def drop_params(conn: Connection, resource_type: str, codes: Iterable[str],
                tables: dict[str, Table] | None = None) -> None:
    """Delete the index rows of ``codes`` on ``resource_type`` (from ``tables``: by default
    every index table the database has)."""
    wanted = frozenset(codes)
    for table in (_present(conn) if tables is None else tables).values():
        params = [p for p in conn.execute(select(table.c.param).distinct().where(
            table.c.resource_type == resource_type)).scalars() if _owned(p, wanted)]
        if params:
            conn.execute(delete(table).where(table.c.resource_type == resource_type,
                                             table.c.param.in_(params)))


def reindex_params(conn: Connection, resource_type: str, codes: Iterable[str]) -> int:
    """(Re)write the index rows of the parameters ``codes`` for every current resource of
    ``resource_type`` (rows already there are replaced, so it may run again); returns how
    many resources were read. Pages by id so memory stays flat on a large county."""
    wanted = frozenset(codes)
    tables = _present(conn)
    drop_params(conn, resource_type, wanted, tables)
    done, after = 0, ""
    while True:
        page = conn.execute(select(R.c.id, R.c.content).where(
            R.c.resource_type == resource_type, R.c.deleted.is_(False), R.c.id > after,
        ).order_by(R.c.id).limit(BATCH)).all()
        if not page:
            return done
        found: dict[str, list[tuple[Any, ...]]] = {}
        for rid, content in page:
            rows = index_tuples(resource_type, rid, _only(index_rows(content), wanted))
            for kind, tuples in rows.items():
                found.setdefault(kind, []).extend(tuples)
        for kind, tuples in found.items():
            if kind in tables:
                bulk_insert_tuples(conn, tables[kind], schema.INDEX_COLUMNS[kind], tuples)
        done += len(page)
        after = page[-1].id


def _present(conn: Connection) -> dict[str, Table]:
    """The index tables the database has: a migration runs against the schema of its day,
    and a table a later migration creates (and fills) is not there yet."""
    names = set(inspect(conn).get_table_names())
    return {kind: t for kind, t in schema.INDEX_TABLES.items() if t.name in names}
