"""Bulk import's fast path (staged rows, kangqiao/fhir/bulk/staging.py + loading.py) stores
exactly what the per-resource path (``put_many``) stores, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from kangqiao.fhir.bulk.importer import fingerprint, import_ndjson
from kangqiao.fhir.bulk.prepare import prepare_lines
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore, Prepared
from kangqiao.fhir.validation import validate_resource
from kangqiao.security.gate import SYSTEM
from tests.conftest import _empty
from tests.search.data import RESOURCES

ODD: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "odd-1", "meta": {"profile": ["http://x.org/p"],
                                                       "lastUpdated": "2020-01-01T00:00:00Z"},
     "name": [{"family": "王", "given": ["小\\明"], "text": "tab\there\nnew\rline \\ end"}],
     "identifier": [{"system": "http://x.org/id", "value": "a\\b\tc"}],
     "birthDate": "1970-02"},
    {"resourceType": "Observation", "status": "final",  # no id: derived from the line
     "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
     "valueQuantity": {"value": 180, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                       "code": "mg/dL"},
     "effectivePeriod": {"start": "2024-01-01"}, "subject": {"reference": "Patient/odd-1"}},
]


def _resources() -> list[dict[str, Any]]:
    out = [r for r in [*RESOURCES, *ODD] if not any(
        i.severity in ("error", "fatal") for i in validate_resource(r, r["resourceType"]))]
    assert len(out) > 10
    return out


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's tables, with the commit's timestamps left out."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (schema.resource, schema.resource_history):
            rows = []
            for r in conn.execute(select(table)):
                content = dict(r.content)
                meta = {k: v for k, v in content.pop("meta").items() if k != "lastUpdated"}
                row = dict(r._mapping, content=orjson.dumps({**content, "meta": meta},
                                                            option=orjson.OPT_SORT_KEYS))
                row.pop("last_updated")
                rows.append(tuple(sorted(row.items())))
            out[table.name] = sorted(rows)
        out["outbox"] = sorted(conn.execute(select(
            schema.outbox.c.resource_type, schema.outbox.c.resource_id,
            schema.outbox.c.version_id, schema.outbox.c.action,
            schema.outbox.c.processed_at)).all())
        for table in schema.INDEX_TABLES.values():
            out[table.name] = sorted(conn.execute(select(table)).all(), key=repr)
    return out


def test_fast_path_stores_what_the_per_resource_path_stores(
        tmp_path: Path, store: FhirStore, engine: Engine) -> None:
    lines = [orjson.dumps(r) for r in _resources()]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = import_ndjson(store, SYSTEM, [path], workers=0, batch_size=7)
    assert report.accepted == len(lines) and not report.rejected
    fast = _dump(engine)
    assert sum(len(rows) for name, rows in fast.items() if name.startswith("search_")) > 100

    _empty(engine)
    with store.write(SYSTEM) as uow:
        results = prepare_lines((fingerprint(path), 1, lines))
        uow.put_many([r.outcome for r in results if isinstance(r.outcome, Prepared)])
    slow = _dump(engine)
    assert fast == slow


def test_the_batch_timestamp_is_stamped_everywhere(tmp_path: Path, store: FhirStore,
                                                   engine: Engine) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps({"resourceType": "Patient", "id": f"t{n}"})
                                for n in range(5)))
    import_ndjson(store, SYSTEM, [path], workers=0, batch_size=3)
    with engine.connect() as conn:
        rows = conn.execute(select(schema.resource)).all()
        history = {(r.id, r.last_updated) for r in conn.execute(select(schema.resource_history))}
        events = {(r.resource_id, r.occurred_at) for r in conn.execute(select(schema.outbox))}
    assert len(rows) == 5
    assert {(r.id, r.last_updated) for r in rows} == history == events
    assert len({r.last_updated for r in rows}) == 2  # one timestamp per batch (3 + 2 lines)
    for r in rows:
        assert r.content["meta"] == {
            "versionId": "1",
            "lastUpdated": r.last_updated.isoformat(timespec="microseconds") + "Z"}
    with store.read(SYSTEM) as uow:
        assert uow.read("Patient", "t4").version_id == 1
        assert uow.search("Patient", [("_id", "t1")], count=10).total == 1


def test_a_batch_with_existing_ids_is_versioned(tmp_path: Path, store: FhirStore,
                                                 engine: Engine) -> None:
    def patients(ids: range) -> bytes:
        return b"\n".join(orjson.dumps({"resourceType": "Patient", "id": f"m{n}",
                                        "gender": "male"}) for n in ids)

    (tmp_path / "a.ndjson").write_bytes(patients(range(5)))
    (tmp_path / "b.ndjson").write_bytes(patients(range(3, 8)))
    import_ndjson(store, SYSTEM, [tmp_path / "a.ndjson"], workers=0)
    report = import_ndjson(store, SYSTEM, [tmp_path / "b.ndjson"], workers=0)
    assert report.accepted == 5 and not report.rejected
    with engine.connect() as conn:
        versions = {r.id: r.version_id for r in conn.execute(
            select(schema.resource.c.id, schema.resource.c.version_id))}
        events = sorted(conn.execute(select(schema.outbox.c.resource_id,
                                            schema.outbox.c.action)).all())
        history = conn.execute(select(schema.resource_history.c.id)).all()
    assert versions == {"m0": 1, "m1": 1, "m2": 1, "m3": 2, "m4": 2, "m5": 1, "m6": 1, "m7": 1}
    assert len(history) == 10
    assert events.count(("m3", "update")) == 1 and events.count(("m3", "create")) == 1
    with store.read(SYSTEM) as uow:
        assert uow.search("Patient", [("gender", "male")], count=0).total == 8
