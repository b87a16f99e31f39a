"""A code and a date searched together (kangqiao/fhir/search/combos.py): the joint index
drives exactly when it should and returns what the two parameters' own probes return, for
every date prefix at the boundaries of instants, days, months and periods, on SQLite and
PostgreSQL; the migration fills it for resources stored before it, as a write would."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from kangqiao.fhir.search import plan
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.query import build_search
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.migrate import upgrade
from tests.conftest import BACKENDS, store_at
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
UCUM = "http://unitsofmeasure.org"


def _bp(rid: str, systolic: float, diastolic: float, unit: str = "mm[Hg]",
        system: str | None = LOINC) -> dict[str, Any]:
    def comp(code: str, value: float) -> dict[str, Any]:
        coding = {"code": code, **({"system": system} if system else {})}
        return {"code": {"coding": [coding]},
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-05",
            "component": [comp("8480-6", systolic), comp("8462-4", diastolic)]}


BPS = [
    _bp("b1", 160, 100), _bp("b2", 159.4, 95), _bp("b3", 159.5, 90),
    _bp("b4", 150, 165),  # the diastolic (an odd reading) is >= 160, the systolic is not
    _bp("b5", 21.5, 12, unit="kPa"),  # 161 mmHg
    _bp("b6", 170, 80, system=None),  # a system-less code
    {**_obs("h1", HBA1C),  # no date: out of the code+date answers
     "valueQuantity": {"value": 7.0, "unit": "%", "system": UCUM, "code": "%"}},
    {**_obs("h2", HBA1C),
     "valueQuantity": {"value": 6.9, "unit": "%", "system": UCUM, "code": "%"}},
]
CODES = ["4548-4", f"{LOINC}|4548-4", "|4548-4", "HBA1C", "4548-4,2345-7"]
DAYS = ["2024-03", "2024-03-05", "2024-03-01", "2024-03-02", "2024-02-29T16:00:00Z",
        "2024-03-05T02:00:00Z", "2024"]
PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    store(engine, RESOURCES + BPS)
    return engine


def _probes_only(engine: Engine, rtype: str, params: list[tuple[str, str]],
                 monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with monkeypatch.context() as m:
        m.setattr(plan, "driver", lambda conds: None)
        return search(engine, rtype, params)


def _drives_from_the_pair(params: list[tuple[str, str]], rtype: str = "Observation",
                          table: str = "search_token_date") -> bool:
    ids = build_search(rtype, params).driver_ids
    return ids is not None and table in str(ids)


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


SYS = f"{LOINC}|8480-6"


@pytest.mark.parametrize(("param", "value", "expect"), [
    # without a unit the number is compared as recorded: b5's 21.5 kPa is not >= 160
    ("component-code-value-quantity", f"{SYS}$ge160", ["b1"]),
    ("component-code-value-quantity", "8480-6$ge160", ["b1", "b6"]),
    ("component-code-value-quantity", "8480-6$160", ["b1", "b3"]),  # [159.5, 160.5)
    ("component-code-value-quantity", "8480-6$gt160", ["b6"]),
    ("component-code-value-quantity", "8480-6$lt159.5", ["b2", "b4", "b5"]),
    ("component-code-value-quantity", "|8480-6$ge160", ["b6"]),
    # with a unit, in canonical units: 21.5 kPa is 161.3 mmHg; 20 kPa is 150.01 mmHg
    ("component-code-value-quantity", f"{SYS}$ge160|{UCUM}|mm[Hg]", ["b1", "b5"]),
    ("component-code-value-quantity", f"{SYS}$ge21|{UCUM}|kPa", ["b1", "b2", "b3", "b5"]),
    ("component-code-value-quantity", f"{SYS}$ge20|{UCUM}|kPa", ["b1", "b2", "b3", "b5"]),
    ("component-code-value-quantity", f"{SYS}$ge160,8462-4$ge160", ["b1", "b4"]),
    ("component-code-value-quantity", f"{LOINC}|$ge160", ["b1", "b4"]),  # no code
    ("code-value-quantity", "4548-4$ge7", ["h1"]),
    ("code-value-quantity", f"{LOINC}|4548-4$lt7|{UCUM}|%", ["h2"]),
])
def test_a_composite_of_a_code_and_a_quantity_is_one_range(
        db: Engine, monkeypatch: pytest.MonkeyPatch, param: str, value: str,
        expect: list[str]) -> None:
    params = [(param, value)]
    assert search(db, "Observation", params) == expect
    assert search(db, "Observation", params) == _probes_only(db, "Observation", params,
                                                             monkeypatch)
    joint = "$" in value and value.split("$")[0].split("|")[-1] != ""
    assert _drives_from_the_pair(params, table="search_token_quantity") is joint


def test_a_write_indexes_each_coding_with_each_date() -> None:
    rows = {r["id"]: index_rows(r)["token_date"] for r in RESOURCES}
    assert sorted((r["system"], r["code"]) for r in rows["o1"]) == [
        ("http://kangqiao/lab", "HBA1C"), (LOINC, "4548-4")]
    assert {r["param"] for r in rows["o1"]} == {"code+date"}
    assert rows["o5"] == [] and rows["o6"] == []  # no date; no code
    assert [r["param"] for r in rows["c2"]] == ["code+onset-date"]
    joint = index_rows(BPS[3])["token_quantity"]
    assert sorted((r["param"], r["token_code"], r["value"]) for r in joint) == [
        ("component-code-value-quantity", "8462-4", 165),
        ("component-code-value-quantity", "8480-6", 150)]
    assert sorted((r["param"], r["token_code"]) for r in index_rows(BPS[6])["token_quantity"]
                  ) == [("code-value-quantity", "4548-4"), ("code-value-quantity", "HBA1C")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_fills_the_index_as_a_write_would(backend: str, tmp_path: Path) -> None:
    with store_at(backend, tmp_path, "a3b5c7d9e1f2", "combo") as (url, engine):  # before both
        pg = engine.dialect.name == "postgresql"
        everything = RESOURCES + BPS
        with engine.begin() as conn:  # stored as the code of before the table wrote them
            for r in everything:
                conn.execute(insert(schema.resource), {
                    "resource_type": r["resourceType"], "id": r["id"], "version_id": 1,
                    "last_updated": datetime(2024, 3, 10, 12),
                    "deleted": False, "content": r if pg else orjson.dumps(r).decode()})
                for kind, rows in index_rows(r).items():
                    if rows and kind not in ("token_date", "token_quantity"):
                        conn.execute(insert(schema.INDEX_TABLES[kind]), [
                            dict(row, resource_type=r["resourceType"], resource_id=r["id"])
                            for row in rows])
        upgrade(url)
        t = schema.search_token_date
        with engine.connect() as conn:
            filled = sorted(tuple(row) for row in conn.execute(select(
                t.c.resource_id, t.c.param, t.c.system, t.c.code, t.c.low, t.c.high)))
            q = schema.search_token_quantity
            joint = sorted(tuple(row) for row in conn.execute(select(
                q.c.resource_id, q.c.param, q.c.token_system, q.c.token_code, q.c.value,
                q.c.system, q.c.code, q.c.canonical_value, q.c.canonical_code, q.c.grp)))
        written = sorted((r["id"], x["param"], x["system"], x["code"], x["low"], x["high"])
                         for r in everything for x in index_rows(r)["token_date"])
        assert filled == written and len(written) > len(everything)
        by_write = sorted((r["id"], *(x[k] for k in ("param", "token_system", "token_code",
                                                     "value", "system", "code",
                                                     "canonical_value", "canonical_code",
                                                     "grp")))
                          for r in everything for x in index_rows(r)["token_quantity"])
        assert joint == by_write and len(joint) == 2 * 6 + 2 * 2


# ---- random stores and searches: the joint indexes drive to the probes' answers ----------

_DAY = st.dates(date(2023, 12, 25), date(2024, 1, 8)).map(date.isoformat)
_WHEN = st.one_of(
    _DAY, _DAY.map(lambda d: d + "T23:30:00+08:00"), st.just("2024-01"), st.just("2023"),
    st.tuples(_DAY, _DAY).map(lambda p: {"start": min(p), "end": max(p)}),
    _DAY.map(lambda d: {"start": d}), _DAY.map(lambda d: {"end": d}))
_CODINGS = st.lists(st.sampled_from([
    {"system": LOINC, "code": "4548-4"}, {"code": "4548-4"}, {"system": LOINC, "code": "2345-7"},
    {"system": "http://kangqiao/lab", "code": "4548-4"}]), min_size=0, max_size=2)
_VALUES = st.floats(150, 170).map(lambda v: round(v, 1))


@st.composite
def _observation(draw: st.DrawFn, i: int) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Observation", "id": f"r{i:02d}", "status": "final",
                         "code": {"coding": draw(_CODINGS)}}
    when = draw(st.one_of(st.none(), _WHEN))
    if isinstance(when, dict):
        r["effectivePeriod"] = when
    elif when is not None:
        r["effectiveDateTime"] = when
    r["component"] = [{"code": {"coding": [c]}, "valueQuantity": {
        "value": draw(_VALUES), "system": UCUM, "code": "mm[Hg]"}} for c in draw(_CODINGS)]
    return r


@pytest.fixture
def scratch(engine: Engine) -> Iterator[Engine]:
    """The session's engine for random stores, with the module's resources put back after."""
    yield engine
    store(engine, RESOURCES + BPS)


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(*(_observation(i) for i in range(n)))),
       st.sampled_from(["4548-4", f"{LOINC}|4548-4", "|4548-4", "4548-4,2345-7"]),
       st.sampled_from(PREFIXES), st.one_of(_DAY, st.just("2024-01"),
                                            _DAY.map(lambda d: d + "T16:00:00Z")),
       _VALUES)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_stores_find_what_the_probes_find(
        scratch: Engine, monkeypatch: pytest.MonkeyPatch, resources: tuple[dict[str, Any], ...],
        code: str, prefix: str, day: str, value: float) -> None:
    store(scratch, list(resources))
    for params in ([("code", code), ("date", prefix + day)],
                   [("component-code-value-quantity", f"{code.split(',')[0]}${prefix}{value}")]):
        assert search(scratch, "Observation", params) == _probes_only(
            scratch, "Observation", params, monkeypatch), params
