"""Secondary indexes built once after the first load of an empty store, not kept up row by row.

Maintaining the search tables' B-trees during a bulk load is most of the database's work (on
SQLite the writer's time falls from ~185 to ~110 µs a resource without them); one sorted
build of each index afterwards is cheaper than millions of random inserts (PostgreSQL's
"Populating a Database", SQLite's CREATE INDEX sorts). Only an *empty* store is loaded this
way: it has nothing to search yet, and an index that is missing costs speed, never results.

Safe against a crash: the migrations restore any of these indexes that is missing
(``ensure``, called by ``migrate.upgrade``, which the server and ``kangqiao import`` run
first), so a store never stays without them for longer than the load that dropped them.
"""

from __future__ import annotations

from sqlalchemy import Engine, Index, inspect, select, text
from sqlalchemy.schema import CreateIndex, DropIndex

from kangqiao.fhir.store import schema

# Every secondary index of the search tables and of the history: the bulk of a load's rows.
# Primary keys stay: they refuse a resource stored twice.
TABLES = [*schema.INDEX_TABLES.values(), schema.resource_history]
# A load smaller than this takes seconds either way: the indexes are kept up as it goes.
MIN_BYTES = 64 * 1024 * 1024


def indexes() -> list[Index]:
    return [index for table in TABLES for index in sorted(table.indexes, key=_name)]


def _name(index: Index) -> str:
    return str(index.name)


def store_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(schema.resource.c.id).limit(1)).first() is None


def drop(engine: Engine) -> None:
    with engine.begin() as conn:
        for index in indexes():
            conn.execute(DropIndex(index, if_exists=True))


def missing(engine: Engine) -> list[Index]:
    inspector = inspect(engine)
    present = {str(ix["name"]) for table in TABLES for ix in inspector.get_indexes(table.name)}
    return [index for index in indexes() if str(index.name) not in present]


def ensure(engine: Engine) -> list[str]:
    """Build the indexes that are missing; returns their names."""
    todo = missing(engine)
    for index in todo:
        # one transaction each: SQLite's write-ahead log holds every page of a transaction
        # until it commits (gigabytes for a county's index), and an index built stays built
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # the default 64 MB makes a county's index sorts spill to disk
                conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            conn.execute(CreateIndex(index, if_not_exists=True))
    return [str(index.name) for index in todo]
