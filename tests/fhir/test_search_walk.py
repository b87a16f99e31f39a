"""The walk (``SearchMixin._walk``): a search with no selective condition, in key order and
without a total, tests the next rows of the type one by one before its driver reads the rest.
Whatever the length of the walk, the page size or the page, the matches must be exactly those
of the driver-only path (a ``_total=accurate`` search never walks), on SQLite and PostgreSQL;
and the walk must really run for such searches and not for selective ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import ColumnElement, event, or_, true

from kangqiao.fhir.store import searching
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM, Access, TrustedGate

N = 60
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"o{i:03d}",
        "status": "final" if i % 5 else "amended",
        "category": [{"coding": [{"system": CATEGORY,
                                  "code": "laboratory" if i % 3 == 0 else "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7" if i % 2
                             else "8867-4"}]},
        "subject": {"reference": f"Patient/p{i % 4}"},
        # units of the county hospital (org-h1, org-h2) and a township centre
        "performer": [{"reference": f"Organization/{('org-h1', 'org-h2', 'org-thc')[i % 3]}"}],
        "effectiveDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
    }


@pytest.fixture
def county(store: FhirStore) -> FhirStore:
    with store.write(SYSTEM) as uow:
        uow.update("Organization", "org-hosp", {"resourceType": "Organization",
                                                "id": "org-hosp"})
        for unit in ("org-h1", "org-h2"):
            uow.update("Organization", unit, {"resourceType": "Organization", "id": unit,
                                              "partOf": {"reference": "Organization/org-hosp"}})
        uow.update("Organization", "org-thc", {"resourceType": "Organization", "id": "org-thc"})
        for p in range(4):
            uow.update("Patient", f"p{p}", {"resourceType": "Patient", "id": f"p{p}",
                                            "gender": "female" if p % 2 else "male"})
        for i in range(N):
            uow.update("Observation", f"o{i:03d}", _observation(i))
        # deleted rows lie inside the walked range and must never be found
        uow.delete("Observation", "o003")
        uow.delete("Observation", "o030")
    return store


WEAK: list[list[tuple[str, str]]] = [
    [("category", "laboratory")],
    [("category", "laboratory"), ("date", "ge2026-06-01")],
    [("performer:Organization.partof", "Organization/org-hosp"), ("category", "laboratory")],
    [("subject:Patient.gender", "female"), ("status", "final")],
    [("status", "final"), ("code:not", "2345-7")],
    [("date", "lt2026-03-01")],
    [("category", "imaging")],  # no match at all
]


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many walks ran (each call records how many rows it returned)."""
    runs: list[int] = []
    real = searching.SearchMixin._walk

    def spy(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        rows = real(self, *args, **kwargs)
        runs.append(len(rows))
        return rows

    monkeypatch.setattr(searching.SearchMixin, "_walk", spy)
    yield runs


def _pages(store: FhirStore, params: list[tuple[str, str]], count: int) -> list[str]:
    ids: list[str] = []
    after = None
    with store.read(SYSTEM) as uow:
        while True:
            page = uow.search("Observation", params, count=count, total="none", after=after)
            assert page.total is None
            ids += [s.id for s in page.items]
            if not page.more_after:
                return ids
            assert len(page.items) == count
            after = page.last_key


@pytest.mark.parametrize("params", WEAK, ids=lambda p: "&".join(f"{k}={v}" for k, v in p))
def test_walked_pages_hold_exactly_the_matches(county: FhirStore, params: list[tuple[str, str]],
                                               walks: list[int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with county.read(SYSTEM) as uow:
        expected = [s.id for s in uow.search("Observation", params, count=500).items]
    assert not walks  # an accurate total never walks
    assert "o003" not in expected and "o030" not in expected
    # walks shorter than a page, across page ends, longer than the type (exhaustive)
    for rows in (1, 4, 13, 29, 200):
        monkeypatch.setattr(searching, "WALK_ROWS", rows)
        for count in (1, 3, 7, 50):
            walks.clear()
            assert _pages(county, params, count) == expected, (rows, count)
            assert walks, "the walk did not run"


def test_a_page_walked_in_full_reads_no_driver(county: FhirStore, walks: list[int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Laboratory results are every third row: a walk of 13 rows finds a page of 3."""
    monkeypatch.setattr(searching, "WALK_ROWS", 13)
    with county.read(SYSTEM) as uow:
        page = uow.search("Observation", [("category", "laboratory")], count=3, total="none")
    assert [s.id for s in page.items] == ["o000", "o006", "o009"] and page.more_after
    assert walks == [4]  # the page and the row that tells more follow


@pytest.mark.parametrize("params,total", [
    ([("subject", "Patient/p1")], "none"),  # a selective driver
    ([("category", "laboratory"), ("_sort", "date")], "none"),  # pages by offset
    ([("category", "laboratory")], "accurate"),  # the count reads the driver's set anyway
])
def test_no_walk_where_it_cannot_help(county: FhirStore, walks: list[int],
                                      params: list[tuple[str, str]], total: str) -> None:
    with county.read(SYSTEM) as uow:
        assert uow.search("Observation", params, count=5, total=total).items
    assert not walks


class _RecordingGate(TrustedGate):
    """Lets everything through and records how the search asked for its filter."""

    def __init__(self) -> None:
        self.asked: list[tuple[bool, bool]] = []

    def search_filter(self, access: Access, resource_type: str | None, *,
                      anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        self.asked.append((anchored, few))
        return true()


@pytest.mark.parametrize(("few_rows", "params", "few"), [
    (1000, [("subject", "Patient/p1")], True),  # one patient's rows: always few
    (0, [("subject", "Patient/p1")], True),
    (29, [("code", "8867-4")], True),  # 29 rows of the code (o030 deleted), counted
    (28, [("code", "8867-4")], False),
    (1000, [("date", "ge2026-01-01")], False),  # a range is never counted
])
def test_the_policy_tests_few_candidates_row_by_row(
        county: FhirStore, monkeypatch: pytest.MonkeyPatch, few_rows: int,
        params: list[tuple[str, str]], few: bool) -> None:
    """``searching._few_candidates``: the gate is asked for its filter for few rows when the
    driver is one identifier, or one value whose index range holds at most FEW_ROWS rows."""
    monkeypatch.setattr(searching, "FEW_ROWS", few_rows)
    gate = _RecordingGate()
    with FhirStore(county.engine, gate).read(SYSTEM) as uow:
        page = uow.search("Observation", params, count=100, total="accurate")
    assert page.total == len(page.items) > 0
    assert gate.asked[-1][1] is few


@pytest.mark.parametrize(("per_row", "few"), [(1, True), (10**9, False)])
def test_a_larger_store_tests_more_candidates_row_by_row(
        county: FhirStore, monkeypatch: pytest.MonkeyPatch, per_row: int, few: bool) -> None:
    """On PostgreSQL the threshold grows above FEW_ROWS with the stored resources (one
    candidate per ``RESOURCES_PER_FEW_ROW``): with one per resource the code's 29 rows are
    few, with none they are not. SQLite keeps FEW_ROWS."""
    monkeypatch.setattr(searching, "FEW_ROWS", 0)
    monkeypatch.setattr(searching, "RESOURCES_PER_FEW_ROW", per_row)
    if county.engine.dialect.name == "postgresql":  # its estimate needs statistics
        with county.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE resource")
    gate = _RecordingGate()
    with FhirStore(county.engine, gate).read(SYSTEM) as uow:
        page = uow.search("Observation", [("code", "8867-4")], count=100, total="accurate")
    assert page.total == len(page.items) == 29
    assert gate.asked[-1][1] is (few and county.engine.dialect.name == "postgresql")


class _SomeGate(TrustedGate):
    """Hides the resources whose id ends in 4 or 8."""

    def search_filter(self, access: Access, resource_type: str | None, *,
                      anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        return ~or_(*(searching.R.c.id.like(f"%{d}") for d in "48"))

    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        return str(resource.get("id", ""))[-1:] not in "48"


@pytest.mark.parametrize(("few_rows", "listed_max", "counted"),
                         [(0, 0, False), (1000, 0, True), (0, searching.LISTED_MAX, "pg"),
                          (0, 28, False)])
def test_the_first_page_of_few_candidates_counts_them_in_the_same_query(
        county: FhirStore, monkeypatch: pytest.MonkeyPatch, few_rows: int, listed_max: int,
        counted: bool | str) -> None:
    """Few candidates (each tested against the policy), or on PostgreSQL a few thousand
    listed ones (``searching.COUNTED_MAX``): the first page's query counts the matches too
    (a window count) - the same total as the separate count query gives, and one statement
    fewer. (The code has 29 candidates: more than 28 are not listed.)"""
    monkeypatch.setattr(searching, "FEW_ROWS", few_rows)
    monkeypatch.setattr(searching, "LISTED_MAX", listed_max)
    if counted == "pg":
        counted = county.engine.dialect.name == "postgresql"
    statements: list[str] = []
    store = FhirStore(county.engine, _SomeGate())

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    with store.read(SYSTEM) as uow:
        event.listen(uow.conn, "before_cursor_execute", record)
        page = uow.search("Observation", [("code", "8867-4")], count=5, total="accurate")
        event.remove(uow.conn, "before_cursor_execute", record)
    with FhirStore(county.engine, TrustedGate()).read(SYSTEM) as uow:
        every = uow.search("Observation", [("code", "8867-4")], count=100, total="accurate")
    seen = [s.id for s in every.items if s.id[-1] not in "48"]
    assert [s.id for s in page.items] == seen[:5] and page.total == len(seen) > 5
    separate = [s for s in statements if s.lstrip().upper().startswith("SELECT COUNT(*)")
                and "search_token" in s and "LIMIT" not in s.upper()]
    assert bool(separate) is not counted


@pytest.mark.parametrize("listed_max", [0, 28, 29])
def test_postgresql_drives_from_the_listed_ids_of_more_candidates(
        county: FhirStore, monkeypatch: pytest.MonkeyPatch, listed_max: int) -> None:
    """Above the few-candidates threshold and up to ``LISTED_MAX``, PostgreSQL reads the
    driver's ids first and drives from them as one array value: same page and total."""
    monkeypatch.setattr(searching, "FEW_ROWS", 0)
    monkeypatch.setattr(searching, "LISTED_MAX", listed_max)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    with FhirStore(county.engine, _SomeGate()).read(SYSTEM) as uow:
        event.listen(uow.conn, "before_cursor_execute", record)
        pages = [uow.search("Observation", [("code", "8867-4")], count=5, total=total)
                 for total in ("accurate", "estimate", "none")]
        event.remove(uow.conn, "before_cursor_execute", record)
    with FhirStore(county.engine, TrustedGate()).read(SYSTEM) as uow:
        every = uow.search("Observation", [("code", "8867-4")], count=100, total="accurate")
    seen = [s.id for s in every.items if s.id[-1] not in "48"]
    for page, total in zip(pages, (len(seen), len(seen), None), strict=True):
        assert [s.id for s in page.items] == seen[:5] and page.total == total
    listed = county.engine.dialect.name == "postgresql" and listed_max >= 29
    assert any("= ANY (" in s for s in statements) is listed
