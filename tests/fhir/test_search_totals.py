"""``Bundle.total`` on every kind of page. A page that shows the last of the matches gives
the total without a count query; every other page counts. Either way the figure must be the
number of matches, whatever the page, its size, its order or the paging style."""

from __future__ import annotations

import pytest

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM

N = 5


@pytest.fixture
def five(store: FhirStore) -> FhirStore:
    with store.write(SYSTEM) as uow:
        for i in range(N):
            uow.update("Patient", f"p{i}", {"resourceType": "Patient", "id": f"p{i}",
                                            "gender": "female", "birthDate": f"196{i}-01-01"})
        uow.update("Patient", "other", {"resourceType": "Patient", "id": "other",
                                        "gender": "male"})
    return store


@pytest.mark.parametrize("count", [1, 2, 4, 5, 6, 50])
@pytest.mark.parametrize("sort", [None, "birthdate", "-birthdate"])
def test_every_page_reports_all_matches(five: FhirStore, count: int, sort: str | None) -> None:
    params = [("gender", "female")] + ([("_sort", sort)] if sort else [])
    seen: list[str] = []
    with five.read(SYSTEM) as uow:
        if sort:  # pages by offset, and one beyond the end
            for offset in range(0, N + count + 1, count):
                page = uow.search("Patient", params, count=count, offset=offset)
                assert page.total == N, (offset, count)
                seen += [s.id for s in page.items]
        else:  # pages by key, forwards then back from the last
            after = None
            while True:
                page = uow.search("Patient", params, count=count, after=after)
                assert page.total == N
                seen += [s.id for s in page.items]
                if not page.more_after:
                    break
                after = page.last_key
            if page.first_key is not None and page.more_before:
                back = uow.search("Patient", params, count=count, before=page.first_key)
                assert back.total == N and back.items
    assert sorted(seen) == [f"p{i}" for i in range(N)]


def test_total_none_and_count_only(five: FhirStore) -> None:
    with five.read(SYSTEM) as uow:
        assert uow.search("Patient", [("gender", "female")], count=2, total="none").total is None
        summary = uow.search("Patient", [("gender", "female")], count=0)
        assert summary.total == N and summary.items == []
        assert uow.search("Patient", [("gender", "unknown")], count=10).total == 0
        assert uow.search("Patient", [("gender", "unknown")], count=10, offset=20).total == 0
