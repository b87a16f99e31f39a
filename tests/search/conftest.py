"""Engines for the search tests: every query runs for real on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, delete, false, insert, select

from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.query import build_search
from kangqiao.fhir.store import schema
from tests.conftest import PG_SERVER, _drop_pg, _worker


def _make(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if kind == "sqlite":
        return create_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'search.db'}")
    # a database of this process's own (dropped at the end), like every other store test; no
    # skip when the server is missing: CI must fail, not quietly test SQLite alone
    name = f"kangqiao_search_{_worker()}"
    _drop_pg(name, create=True)
    return create_engine(f"{PG_SERVER}/{name}")


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    eng = _make(request.param, tmp_path_factory)
    tables = [schema.resource, *schema.INDEX_TABLES.values()]
    schema.metadata.drop_all(eng, tables=tables)
    schema.metadata.create_all(eng, tables=tables)
    yield eng
    eng.dispose()
    if request.param == "postgresql":
        _drop_pg(f"kangqiao_search_{_worker()}")


def store(engine: Engine, resources: list[dict[str, Any]],
          last_updated: datetime = datetime(2024, 3, 10, 12, 0)) -> None:
    """Replace the store's content with ``resources`` (index rows from ``index_rows``)."""
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for table in (schema.resource, *schema.INDEX_TABLES.values()):
            conn.execute(delete(table))
        for r in resources:
            rt, rid = r["resourceType"], r["id"]
            conn.execute(insert(schema.resource), {
                "resource_type": rt, "id": rid, "version_id": 1, "last_updated": last_updated,
                "deleted": False, "content": r if pg else orjson.dumps(r).decode()})
            for key, rows in index_rows(r).items():
                if rows:
                    conn.execute(insert(schema.INDEX_TABLES[key]),
                                 [dict(row, resource_type=rt, resource_id=rid) for row in rows])


def search(engine: Engine, rtype: str | None, params: list[tuple[str, str]],
           strict: bool = True) -> list[str]:
    """Ids matching the search, in the spec's order (sorted by id when no _sort)."""
    spec = build_search(rtype, params, strict=strict)
    res = schema.resource
    stmt = select(res.c.id).where(res.c.deleted == false(), *spec.where)
    if rtype:
        stmt = stmt.where(res.c.resource_type == rtype)
    stmt = stmt.order_by(*spec.order_by) if spec.order_by else stmt.order_by(res.c.id)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())
