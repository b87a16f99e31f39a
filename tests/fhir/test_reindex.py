"""Index rows of parameters added after resources were stored: ``reindex_params`` and the
migration that indexes the platform's EpisodeOfCare parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kangqiao.fhir.store import schema
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.reindex import drop_params, reindex_params
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from tests.conftest import BACKENDS, store_at

REF = schema.search_reference
CODES = ("care-manager-role", "team")
EPISODE = {"resourceType": "EpisodeOfCare", "id": "e1", "status": "active",
           "patient": {"reference": "Patient/p1"},
           "careManager": {"reference": "PractitionerRole/r1"},
           "team": [{"reference": "CareTeam/t1"}, {"reference": "CareTeam/t2"}]}


def _put(engine: Engine, *resources: dict[str, Any]) -> None:
    with FhirStore(engine).write(SYSTEM) as uow:
        for r in resources:
            uow.update(r["resourceType"], r["id"], r)


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(
            REF.c.resource_id, REF.c.param, REF.c.target_type, REF.c.target_id).where(
            REF.c.resource_type == "EpisodeOfCare")))


def test_reindex_restores_what_a_write_indexes(engine: Engine) -> None:
    gone = dict(EPISODE, id="e2")
    _put(engine, EPISODE, gone)
    with FhirStore(engine).write(SYSTEM) as uow:
        uow.delete("EpisodeOfCare", "e2")
    written = _rows(engine)
    assert ("e1", "team", "CareTeam", "t2") in written
    with engine.begin() as conn:
        drop_params(conn, "EpisodeOfCare", CODES)
    assert {r[1] for r in _rows(engine)} == {"patient"}  # other parameters untouched
    with engine.begin() as conn:
        assert reindex_params(conn, "EpisodeOfCare", CODES) == 1  # the deleted one: no rows
        reindex_params(conn, "EpisodeOfCare", CODES)  # again: replaced, not doubled
    assert _rows(engine) == written


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_indexes_episodes_stored_before_it(backend: str, tmp_path: Path) -> None:
    with store_at(backend, tmp_path, "5e4a1c2b9d70", "reindex") as (url, engine):
        _put(engine, EPISODE)
        with engine.begin() as conn:  # as a store of before the parameters left it
            drop_params(conn, "EpisodeOfCare", CODES)
        upgrade(url)
        assert [r[1:] for r in _rows(engine) if r[1] in CODES] == [
            ("care-manager-role", "PractitionerRole", "r1"), ("team", "CareTeam", "t1"),
            ("team", "CareTeam", "t2")]
