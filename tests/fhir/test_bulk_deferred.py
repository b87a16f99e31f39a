"""Bulk import into an empty store with the search indexes built once at the end
(kangqiao/fhir/bulk/deferred.py), on SQLite and PostgreSQL: the indexes are really gone during
the load, all back afterwards with their definitions, searches answer as usual, a store with
data is never loaded this way, and a load killed half-way leaves nothing that the next
migration or import does not restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, inspect, select, text

from kangqiao.fhir.bulk import deferred, importer
from kangqiao.fhir.bulk.importer import import_ndjson
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from tests.conftest import _empty
from tests.fhir.killed_import import kill_import_after


def _lines(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        out.append(orjson.dumps({"resourceType": "Patient", "id": f"p{i}",
                                 "name": [{"family": "王" if i % 2 else "李", "given": ["明"]}],
                                 "gender": "female" if i % 3 else "male"}))
        out.append(orjson.dumps({
            "resourceType": "Observation", "id": f"o{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "subject": {"reference": f"Patient/p{i}"}, "effectiveDateTime": "2026-10-01",
            "valueQuantity": {"value": 120 + i % 40, "unit": "mmHg",
                              "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}))
    return out


def _file(tmp_path: Path, n: int = 150) -> Path:
    path = tmp_path / "county.ndjson"
    path.write_bytes(b"\n".join(_lines(n)) + b"\n")
    return path


def _index_names(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    return {str(ix["name"]) for t in deferred.TABLES for ix in inspector.get_indexes(t.name)}


def test_the_indexes_are_built_after_the_load(tmp_path: Path, store: FhirStore, engine: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    every = {str(ix.name) for ix in deferred.indexes()}
    assert _index_names(engine) == every
    during: list[set[str]] = []
    real = importer._commit_batch

    def spy(*args: Any, **kwargs: Any) -> None:
        during.append(_index_names(engine))
        real(*args, **kwargs)

    monkeypatch.setattr(importer, "_commit_batch", spy)
    report = import_ndjson(store, SYSTEM, [_file(tmp_path)], workers=0, batch_size=100,
                           defer_indexes=True)
    assert report.accepted == 300 and not report.rejected
    assert during and all(names == set() for names in during)  # none kept up row by row
    assert _index_names(engine) == every
    if engine.dialect.name == "postgresql":  # rebuilt as the migration made it
        with engine.connect() as conn:
            ddl = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                    "'ix_search_string_lookup'")).scalar_one()
        assert "varchar_pattern_ops" in ddl
    with store.read(SYSTEM) as uow:
        assert uow.search("Patient", [("family", "王")], count=0).total == 75
        assert uow.search("Observation", [("value-quantity", "ge150")], count=0).total == 30
        assert uow.search("Observation", [("subject.gender", "male")], count=0).total == 50


def test_a_store_with_data_keeps_its_indexes(tmp_path: Path, store: FhirStore, engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "x", {"resourceType": "Patient", "id": "x"})
    dropped: list[int] = []
    monkeypatch.setattr(deferred, "drop", lambda engine: dropped.append(1))
    report = import_ndjson(store, SYSTEM, [_file(tmp_path, 10)], workers=0,
                           defer_indexes=True)
    assert report.accepted == 20 and not dropped


def test_by_default_only_a_large_input_defers(tmp_path: Path, store: FhirStore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[int] = []
    real = deferred.drop
    monkeypatch.setattr(deferred, "drop", lambda engine: dropped.append(1) or real(engine))
    path = _file(tmp_path, 10)
    monkeypatch.setattr(deferred, "MIN_BYTES", path.stat().st_size + 1)
    import_ndjson(store, SYSTEM, [path], workers=0, defer_indexes=None)
    assert not dropped
    _empty(store.engine)
    monkeypatch.setattr(deferred, "MIN_BYTES", path.stat().st_size)
    import_ndjson(store, SYSTEM, [path], workers=0, defer_indexes=None, restart=True)
    assert dropped == [1]


def test_the_cli_says_when_it_builds_the_indexes(tmp_path: Path, engine: Engine) -> None:
    from typer.testing import CliRunner

    from kangqiao.cli import app
    from kangqiao.settings import get_settings

    path = _file(tmp_path, 20)
    env = {"KANGQIAO_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["import", str(path), "--workers", "0",
                                          "--defer-indexes"], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "40 imported; building the search indexes ..." in result.output
    assert "40 resources imported" in result.output
    assert "search indexes built in" in result.output
    assert _index_names(engine) == {str(ix.name) for ix in deferred.indexes()}


def test_a_killed_load_is_repaired_by_the_next_migration(tmp_path: Path, store: FhirStore,
                                                         engine: Engine) -> None:
    path = _file(tmp_path, 100)
    url = engine.url.render_as_string(hide_password=False)
    kill_import_after(url, path, 2, batch_size=50, defer_indexes=True)
    assert _index_names(engine) == set()  # killed before it could build them
    upgrade(url)  # what the server and `kangqiao import` run first
    assert _index_names(engine) == {str(ix.name) for ix in deferred.indexes()}
    report = import_ndjson(store, SYSTEM, [path], workers=0, batch_size=50,
                           defer_indexes=True)
    assert report.skipped == 100 and report.accepted == 100
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.resource_history)
                            ).scalar_one() == 200
