"""A code and a date searched together (kangqiao/fhir/search/combos.py): the joint index
drives exactly when it should and returns what the two parameters' own probes return, for
every date prefix at the boundaries of instants, days, months and periods, on SQLite and
PostgreSQL; the migration fills it for resources stored before it, as a write would."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert, select

from kangqiao.fhir.search import plan
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.query import build_search
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.migrate import upgrade
from tests.conftest import BACKENDS, PG_SERVER, _drop_pg, _worker
from tests.search.conftest import search, store

LOINC = "http://loinc.org"
HBA1C = {"coding": [{"system": LOINC, "code": "4548-4"},
                    {"system": "http://kangqiao/lab", "code": "HBA1C"}]}
GLUCOSE = {"coding": [{"system": LOINC, "code": "2345-7"}]}


def _obs(rid: str, code: dict[str, Any], **when: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final", "code": code,
            "subject": {"reference": "Patient/p1" if rid < "o5" else "Patient/p2"}, **when}


RESOURCES = [
    _obs("o1", HBA1C, effectiveDateTime="2024-03-05T10:00:00+08:00"),
    _obs("o2", HBA1C, effectivePeriod={"start": "2024-02-28", "end": "2024-03-02"}),
    _obs("o3", HBA1C, effectiveDateTime="2024-03"),
    _obs("o4", GLUCOSE, effectiveDateTime="2024-03-05"),
    _obs("o5", HBA1C),  # no date: never in a dated search
    _obs("o6", {"text": "HbA1c"}, effectiveDateTime="2024-03-05"),  # text only: no code
    _obs("o7", {"coding": [{"code": "4548-4"}]}, effectiveDateTime="2024-03-10"),
    _obs("o8", HBA1C, effectiveDateTime="2024-03-01T00:00:00+08:00"),
    _obs("o9", HBA1C, effectivePeriod={"start": "2024-03-31T23:00:00+08:00"}),  # open end
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
     "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
     "onsetDateTime": "2023-06"},
    {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"},
     "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
     "onsetPeriod": {"start": "2023-12-20", "end": "2024-01-10"}},
]
CODES = ["4548-4", f"{LOINC}|4548-4", "|4548-4", "HBA1C", "4548-4,2345-7"]
DAYS = ["2024-03", "2024-03-05", "2024-03-01", "2024-03-02", "2024-02-29T16:00:00Z",
        "2024-03-05T02:00:00Z", "2024"]
PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    store(engine, RESOURCES)
    return engine


def _probes_only(engine: Engine, rtype: str, params: list[tuple[str, str]],
                 monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with monkeypatch.context() as m:
        m.setattr(plan, "driver", lambda conds: None)
        return search(engine, rtype, params)


def _drives_from_the_pair(params: list[tuple[str, str]], rtype: str = "Observation") -> bool:
    ids = build_search(rtype, params).driver_ids
    return ids is not None and "search_token_date" in str(ids)


@pytest.mark.parametrize("code", CODES)
def test_every_prefix_and_boundary_finds_what_the_probes_find(
        db: Engine, monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    found = 0
    for prefix, day in itertools.product(PREFIXES, DAYS):
        params = [("code", code), ("date", prefix + day)]
        assert _drives_from_the_pair(params)
        driven = search(db, "Observation", params)
        assert driven == _probes_only(db, "Observation", params, monkeypatch), params
        found += bool(driven)
    assert found >= len(PREFIXES) * len(DAYS) // 3  # the equivalence is about real answers


@pytest.mark.parametrize("params", [
    [("code", "4548-4"), ("date", "ge2024-03-05,lt2024-03-01")],  # OR of dates
    [("code", "4548-4"), ("date", "ge2024-03-01"), ("date", "le2024-03-05")],  # AND
    [("date", "le2024-03-05"), ("code", "4548-4,2345-7"), ("status", "final")],
    [("code", "4548-4"), ("date", "2024-03"), ("_sort", "-date")],
])
def test_combined_parameters_find_what_the_probes_find(
        db: Engine, monkeypatch: pytest.MonkeyPatch, params: list[tuple[str, str]]) -> None:
    assert _drives_from_the_pair(params)
    driven = search(db, "Observation", params)
    assert driven and driven == _probes_only(db, "Observation", params, monkeypatch)


def test_the_answers_themselves(db: Engine) -> None:
    def find(code: str, date: str, rtype: str = "Observation") -> list[str]:
        return search(db, rtype, [("code", code), ("date" if rtype != "Condition"
                                                   else "onset-date", date)])
    # dates without a zone are UTC: o8 (midnight +08:00) is on 29 February; o9 begins in
    # March and runs on (not contained)
    assert find("4548-4", "2024-03") == ["o1", "o3", "o7"]
    assert find(f"{LOINC}|4548-4", "ge2024-03-05") == ["o1", "o3", "o9"]
    assert find("|4548-4", "ge2024-03-01") == ["o7"]  # no system: only the system-less coding
    assert find("HBA1C", "lt2024-03-01") == ["o2", "o8"]
    assert find("I10", "ge2024-01-01", "Condition") == ["c2"]
    assert find("I10", "2023", "Condition") == ["c1"]


def test_a_more_selective_parameter_keeps_driving() -> None:
    # one patient's readings: the patient drives, the pair is probed as two parameters
    assert not _drives_from_the_pair([("subject", "Patient/p1"), ("code", "4548-4"),
                                      ("date", "ge2024-03-01")])
    assert not _drives_from_the_pair([("_id", "o1"), ("code", "4548-4"), ("date", "2024")])
    # modifiers and code-less tokens are not in the joint index's terms
    assert not _drives_from_the_pair([("code:not", "4548-4"), ("date", "2024")])
    assert not _drives_from_the_pair([("code", f"{LOINC}|"), ("date", "2024")])
    assert not _drives_from_the_pair([("code", "4548-4")])
    assert _drives_from_the_pair([("code", "I10"), ("onset-date", "2024")], "Condition")
    assert not _drives_from_the_pair([("code", "I10"), ("recorded-date", "2024")],
                                     "Condition")


def test_a_write_indexes_each_coding_with_each_date() -> None:
    rows = {r["id"]: index_rows(r)["token_date"] for r in RESOURCES}
    assert sorted((r["system"], r["code"]) for r in rows["o1"]) == [
        ("http://kangqiao/lab", "HBA1C"), (LOINC, "4548-4")]
    assert {r["param"] for r in rows["o1"]} == {"code+date"}
    assert rows["o5"] == [] and rows["o6"] == []  # no date; no code
    assert [r["param"] for r in rows["c2"]] == ["code+onset-date"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_fills_the_index_as_a_write_would(backend: str, tmp_path: Path) -> None:
    name = f"kangqiao_combo_{_worker()}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        _drop_pg(name, create=True)
        url = f"{PG_SERVER}/{name}"
    upgrade(url, "a3b5c7d9e1f2")
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:  # stored as the code of before the table wrote them
            for r in RESOURCES:
                conn.execute(insert(schema.resource), {
                    "resource_type": r["resourceType"], "id": r["id"], "version_id": 1,
                    "last_updated": datetime(2024, 3, 10, 12),
                    "deleted": False, "content": r if pg else orjson.dumps(r).decode()})
                for kind, rows in index_rows(r).items():
                    if rows and kind != "token_date":
                        conn.execute(insert(schema.INDEX_TABLES[kind]), [
                            dict(row, resource_type=r["resourceType"], resource_id=r["id"])
                            for row in rows])
        upgrade(url)
        t = schema.search_token_date
        with engine.connect() as conn:
            filled = sorted(tuple(row) for row in conn.execute(select(
                t.c.resource_id, t.c.param, t.c.system, t.c.code, t.c.low, t.c.high)))
        written = sorted((r["id"], x["param"], x["system"], x["code"], x["low"], x["high"])
                         for r in RESOURCES for x in index_rows(r)["token_date"])
        assert filled == written and len(written) > len(RESOURCES)
    finally:
        engine.dispose()
        if backend != "sqlite":
            _drop_pg(name)
