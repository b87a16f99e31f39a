"""``_total=estimate``: the driver's candidates counted in its index and a random sample of
them tested; exact with few candidates or no driving parameter. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from kangqiao.fhir.store import searching
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM

N = 600
LOINC = "http://loinc.org"


def _observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"o{i:04d}", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "4548-4" if i < N - 40 else "2345-7"}]},
        "subject": {"reference": f"Patient/p{i % 7}"},
        # a quarter of the HbA1c results at 9 % or above
        "valueQuantity": {"value": 9.5 if i % 4 == 0 else 6.5, "unit": "%",
                          "system": "http://unitsofmeasure.org", "code": "%"},
    }


@pytest.fixture
def results(store: FhirStore, monkeypatch: pytest.MonkeyPatch) -> FhirStore:
    monkeypatch.setattr(searching, "ESTIMATE_SAMPLE", 100)
    with store.write(SYSTEM) as uow:
        for i in range(N):
            uow.update("Observation", f"o{i:04d}", _observation(i))
    return store


def _total(store: FhirStore, params: list[tuple[str, str]], mode: str) -> int | None:
    with store.read(SYSTEM) as uow:
        return uow.search("Observation", params, count=10, total=mode).total


def test_an_estimate_is_close_to_the_accurate_total(
    results: FhirStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 560 HbA1c candidates (> 2 x 100 sampled), 140 of them at 9 % or above
    params = [("code", f"{LOINC}|4548-4"), ("value-quantity", "ge9")]
    accurate = _total(results, params, "accurate")
    assert accurate == 140
    counted: list[int] = []
    real = searching.SearchMixin._count

    def spy(self: Any, where: list[Any]) -> int:
        found = real(self, where)
        counted.append(found)
        return found

    monkeypatch.setattr(searching.SearchMixin, "_count", spy)
    estimates = [_total(results, params, "estimate") for _ in range(3)]
    # each estimate tested a sample of 100, not the 560 candidates
    assert len(counted) == 3 and all(c <= 100 for c in counted), counted
    # binomial, n = 100, p = 0.25: a standard error of 24 results; 4 of them allowed
    assert all(e is not None and abs(e - accurate) <= 96 for e in estimates), estimates


def test_an_estimate_is_exact_with_few_candidates_or_no_driver(results: FhirStore) -> None:
    few = [("code", f"{LOINC}|2345-7")]  # 40 candidates
    assert _total(results, few, "estimate") == _total(results, few, "accurate") == 40
    undriven = [("status", "final")]  # a low-cardinality token never drives
    assert _total(results, undriven, "estimate") == N


def test_an_estimate_counts_a_page_that_shows_every_match(results: FhirStore) -> None:
    params = [("code", f"{LOINC}|4548-4"), ("value-quantity", "ge100")]
    assert _total(results, params, "estimate") == 0


def test_the_sample_is_tested_without_the_drivers_own_clause(
    results: FhirStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sampled ids are candidates already: their count reads no driver range
    wheres: list[list[Any]] = []
    real = searching.SearchMixin._count

    def spy(self: Any, where: list[Any]) -> int:
        wheres.append(where)
        return real(self, where)

    monkeypatch.setattr(searching.SearchMixin, "_count", spy)
    assert _total(results, [("code", f"{LOINC}|4548-4"), ("value-quantity", "ge9")],
                  "estimate")
    (where,) = wheres
    text = " ".join(str(w) for w in where)
    assert "search_token" not in text and "search_quantity" in text
