"""The search planner (kangqiao/fhir/search/plan.py): driving a search from its most selective
index condition returns exactly what the all-probes shape returns (the shape before the
planner), on SQLite and PostgreSQL; and on SQLite the plans of the workbench's query shapes
read index ranges, never a whole table (plan-shape tests, not timings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, false, func, select

from kangqiao.fhir.search import plan
from kangqiao.fhir.search.query import build_search
from kangqiao.fhir.store import schema
from tests.search.conftest import search, store
from tests.search.data import RESOURCES
from tests.search.test_query import CASES

SYS_BP = "http://loinc.org|8480-6"

# Combinations where the driver and the probes differ in kind: OR inside a parameter, AND
# across repeats, negations, chains, reverse chains and sorting.
MIXED: list[tuple[str, list[tuple[str, str]]]] = [
    ("Observation", [("code", "85354-9,2345-7"), ("subject", "Patient/p1")]),
    ("Observation", [("subject", "Patient/p1,Patient/p2"), ("code:not", "85354-9")]),
    ("Observation", [("code", "85354-9"), ("date", "ge2024-03-05"), ("_sort", "-date")]),
    ("Observation", [("code", "http://loinc.org|"), ("value-quantity:missing", "true")]),
    ("Observation", [("value-quantity:missing", "false"), ("subject", "Patient/p2")]),
    ("Observation", [("subject.name", "张"), ("code", "85354-9")]),
    ("Observation", [("subject:Patient.gender", "male"), ("date", "2024-03")]),
    ("Observation", [("subject.identifier", "urn:oid:2.16.156.10011.1.2|110101196005120011"),
                     ("_sort", "date")]),
    ("Observation", [("subject.gender:missing", "false"), ("code:not", "2345-7")]),
    ("Observation", [("component-code-value-quantity", f"{SYS_BP}$ge140"),
                     ("subject", "Patient/p1,Patient/p3")]),
    ("Patient", [("_has:Observation:patient:code", "2345-7"), ("gender", "female")]),
    ("Patient", [("_has:Observation:patient:code", "2345-7"), ("name", "张")]),
    ("Patient", [("_has:Condition:subject:code", "I10"),
                 ("_has:Observation:patient:code", "2345-7")]),
    ("Patient", [("name", "j"), ("name", "smi"), ("gender:missing", "true")]),
    ("Patient", [("identifier", "urn:oid:2.16.156.10011.1.2|110101196005120011"),
                 ("_id", "p1,p2")]),
    ("Patient", [("_id", "p1,p2,p3"), ("name", "j,张")]),
    ("Patient", [("gender", "male,female"), ("_sort", "-birthdate")]),
    ("Organization", [("_has:Patient:organization:_has:Observation:patient:code",
                       "2345-7")]),
]


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    store(engine, RESOURCES)
    return engine


def _probes_only(engine: Engine, rtype: str | None, params: list[tuple[str, str]],
                 monkeypatch: pytest.MonkeyPatch) -> list[str]:
    with monkeypatch.context() as m:
        m.setattr(plan, "driver", lambda conds: None)
        return search(engine, rtype, params, strict=False)


@pytest.mark.parametrize(("rtype", "params"), [(c[0], c[1]) for c in CASES] + MIXED)
def test_driving_returns_what_the_probes_return(db: Engine, monkeypatch: pytest.MonkeyPatch,
                                                rtype: str | None,
                                                params: list[tuple[str, str]]) -> None:
    driven = search(db, rtype, params, strict=False)
    assert driven == _probes_only(db, rtype, params, monkeypatch)


def test_mixed_cases_find_something(db: Engine) -> None:
    # the equivalence above proves little on empty answers: most mixed cases match rows
    found = [bool(search(db, rtype, params, strict=False)) for rtype, params in MIXED]
    assert sum(found) >= len(MIXED) - 4


def test_sorted_pages_are_the_same_driven_or_not(db: Engine,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    params = [("code", "http://loinc.org|"), ("_sort", "-date,_id")]
    spec = build_search("Observation", params)
    res = schema.resource
    pages: list[str] = []
    for offset in (0, 2, 4, 6, 8):
        stmt = (select(res.c.id).where(res.c.deleted == false(),
                                       res.c.resource_type == "Observation", *spec.where)
                .order_by(*spec.order_by, res.c.id).limit(2).offset(offset))
        with db.connect() as conn:
            pages.extend(conn.execute(stmt).scalars())
    assert pages == _probes_only(db, "Observation", params, monkeypatch)
    assert len(pages) == 7


def test_the_most_selective_condition_drives() -> None:
    spec = build_search("Observation", [("date", "ge2024-01-01"), ("code", "85354-9"),
                                        ("subject", "Patient/p1")])
    assert spec.driver_rank == plan.IDENTIFIER
    sql = str(spec.where[0])
    assert "resource.id IN" in sql and "search_reference" in sql  # the subject drives
    assert build_search("Patient", [("gender:missing", "true")]).driver_rank > plan.PRESENT
    assert build_search("Patient", [("_id", "a")]).driver_rank == plan.BY_ID


@pytest.mark.parametrize("chain", [("patient.general-practitioner", "PractitionerRole/r1"),
                                   ("patient.organization", "Organization/o1")])
def test_a_chain_through_a_directory_reference_drives_before_a_common_token(
        chain: tuple[str, str]) -> None:
    # "overdue appointments of my patients": one doctor's (one centre's) patients, not the
    # county's booked appointments, are read first, whatever the order of the parameters.
    for params in ([("status", "booked"), ("date", "lt2024-11-01"), chain],
                   [chain, ("status", "booked")]):
        spec = build_search("Appointment", params)
        assert spec.driver_rank == plan.RANGE
        driven = str(spec.where[0])
        assert driven.startswith("resource.id IN") and "target_id IN" in driven
    assert plan.chained(plan.RANGE) == plan.RANGE
    assert plan.chained(plan.IDENTIFIER) == plan.EXACT  # a chain to one patient stays narrow


# ---- plan shapes on SQLite -----------------------------------------------------------------

SHAPES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Patient", [("identifier", "urn:oid:2.16.156.10011.1.2|110101196005120011")]),
    ("Patient", [("identifier", "110101196005120011")]),
    ("Patient", [("name", "王")]),
    ("Patient", [("family", "mul"), ("gender", "female")]),
    ("Observation", [("subject", "Patient/p1"), ("code", "http://loinc.org|85354-9"),
                     ("_sort", "-date")]),
    ("Observation", [("code", "http://loinc.org|4548-4"), ("date", "ge2024-08-03")]),
    ("Observation", [("category", "laboratory"), ("date", "ge2024-08-03"),
                     ("performer:Organization.partof", "Organization/o1")]),
    ("Appointment", [("status", "booked"), ("date", "lt2024-11-01"),
                     ("patient.general-practitioner", "PractitionerRole/r1")]),
    ("Appointment", [("status", "booked"), ("date", "lt2024-11-01"),
                     ("patient.organization", "Organization/o1")]),
    ("Condition", [("code", "I10")]),
    ("Patient", [("_has:Observation:patient:code", "4548-4")]),
    ("Observation", [("component-code-value-quantity", f"{SYS_BP}$ge160")]),
]
BIG = r"(resource|search_[a-z]+)(_\d+)?"


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path: Path = tmp_path_factory.mktemp("plan") / "plan.db"
    eng = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(eng, tables=[schema.resource, *schema.INDEX_TABLES.values()])
    store(eng, RESOURCES)
    return eng


def _plan_lines(engine: Engine, rtype: str, params: list[tuple[str, str]],
                walk: bool = False) -> list[str]:
    spec = build_search(rtype, params, walk=walk)
    res = schema.resource
    stmt = select(func.count()).select_from(res).where(
        res.c.deleted == false(), res.c.resource_type == rtype, *spec.where)
    with engine.connect() as conn:
        compiled = stmt.compile(conn)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                    tuple(compiled.params[k] for k in compiled.positiontup or [])
                                    ).all()
    return [str(r[-1]) for r in rows]


@pytest.mark.parametrize(("rtype", "params"), SHAPES)
def test_sqlite_plans_read_index_ranges(sqlite_db: Engine, rtype: str,
                                        params: list[tuple[str, str]]) -> None:
    lines = _plan_lines(sqlite_db, rtype, params)
    text = "\n".join(lines)
    # no full scan of the resource table or an index table
    assert not [s for s in lines if re.match(rf"SCAN {BIG}\b", s)], text
    # the resource table is read by its key, not by type alone (which reads every row)
    assert re.search(r"SEARCH resource USING (COVERING )?INDEX sqlite_autoindex_resource_1 "
                     r"\(resource_type=\? AND id=\?\)", text), text
    # every lookup-index read is narrowed beyond (type, param): a value, a target, a range
    wide = [s for s in lines if re.search(r"_lookup \(resource_type=\? AND param=\?\)$", s)]
    assert not wide, text


def test_sqlite_probes_use_the_resource_index(sqlite_db: Engine) -> None:
    lines = _plan_lines(sqlite_db, "Observation", [("code", "http://loinc.org|4548-4"),
                                                   ("value-quantity", "ge7")])
    text = "\n".join(lines)
    assert re.search(r"SEARCH search_token_\d+ USING INDEX ix_search_token_lookup", text), text
    assert re.search(r"SEARCH search_quantity_\d+ USING INDEX "
                     r"ix_search_quantity_resource_type_resource_id", text), text


def test_a_code_in_a_period_is_one_range_of_the_joint_index(sqlite_db: Engine) -> None:
    lines = _plan_lines(sqlite_db, "Observation", [("code", "http://loinc.org|4548-4"),
                                                   ("date", "ge2024-08-03")])
    text = "\n".join(lines)
    assert re.search(r"SEARCH search_token_date_\d+ USING COVERING INDEX "
                     r"ix_search_token_date_lookup \(resource_type=\? AND param=\? AND "
                     r"code=\? AND high>\?\)", text), text
    assert not re.search(r"search_token_\d+ |search_date", text), text


@pytest.mark.parametrize(("rtype", "params"), SHAPES)
def test_sqlite_walks_probe_the_rows_of_one_resource(sqlite_db: Engine, rtype: str,
                                                     params: list[tuple[str, str]]) -> None:
    """A walk tests rows one by one: each probe reads the index rows of the resource at hand,
    a referenced resource by its key, or (``_has``) the rows that refer to the resource at
    hand; never the rows of a value or a target, which are the same for every row walked."""
    lines = _plan_lines(sqlite_db, rtype, [p for p in params if p[0] != "_sort"], walk=True)
    text = "\n".join(lines)
    reads = [s for s in lines if s.startswith(("SEARCH", "SCAN"))]
    assert reads, text
    for line in reads[1:]:  # after the walked table itself
        assert (re.search(r"USING INDEX ix_search_[a-z]+_resource_type_resource_id "
                          r"\(resource_type=\? AND resource_id=\?\)", line)
                or re.search(r"sqlite_autoindex_resource_1 \(resource_type=\? AND id=\?\)",
                             line)
                or (re.search(r"ix_search_reference_lookup \(resource_type=\? AND param=\? AND "
                             r"target_id=\?", line) and "_has:" in params[0][0])), text


def test_a_component_composite_is_one_range_of_the_joint_index(sqlite_db: Engine) -> None:
    """``component-code-value-quantity=…8480-6$ge160``: the component code is in every BP
    reading and the value range holds both components of every reading; the joint index
    (``combos.JOINT``) holds them together, so the ids are one range of (code, value) and
    nothing is probed per reading."""
    text = "\n".join(_plan_lines(sqlite_db, "Observation",
                                 [("component-code-value-quantity", f"{SYS_BP}$ge160")]))
    assert re.search(r"SEARCH search_token_quantity_\d+ USING COVERING INDEX "
                     r"ix_search_token_quantity_lookup \(resource_type=\? AND param=\? AND "
                     r"token_code=\? AND value>\?\)", text), text
    assert not re.search(r"search_token_\d+ |search_quantity_\d+ ", text), text


def test_a_unit_less_quantity_range_reads_an_index_range(sqlite_db: Engine) -> None:
    text = "\n".join(_plan_lines(sqlite_db, "Observation", [("value-quantity", "ge7")]))
    assert re.search(r"ix_search_quantity_lookup \(resource_type=\? AND param=\? AND "
                     r"value>\?\)", text), text


def test_keys_are_read_by_seeks_not_a_scan_of_the_key_index(sqlite_db: Engine) -> None:
    """SQLite answers ``(type, id) IN (VALUES …)`` by reading every key; ``keys_in`` seeks."""
    R = schema.resource
    keys = [("Patient", "p1"), ("Observation", "bp1"), ("Patient", "p2"), ("Patient", "nope")]
    stmt = select(R.c.resource_type, R.c.id).where(schema.keys_in(R.c.resource_type, R.c.id,
                                                                  keys))
    with sqlite_db.connect() as conn:
        sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        plan_text = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}").all())
        found = set(conn.execute(stmt).all())
        none = conn.execute(select(R.c.id).where(
            schema.keys_in(R.c.resource_type, R.c.id, []))).all()
    assert "SCAN" not in plan_text, plan_text
    assert found == {("Patient", "p1"), ("Observation", "bp1"), ("Patient", "p2")}
    assert none == []
