"""The demo county: generated and loaded once, reused on the next start."""

from __future__ import annotations

from pathlib import Path

import pytest

from kangqiao import demo
from kangqiao.fhir.store.store import FhirStore


def test_demo_county_loads_once_and_is_reused(store: FhirStore, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    seen: list[tuple[int, int]] = []
    first = demo.ensure_demo_county(store, 300, 5,
                                    on_import=lambda r, total: seen.append((r.accepted, total)))
    total = demo.total_resources(first.folder)
    assert first.generated and first.report.accepted == total > 300
    assert not first.report.rejected
    assert seen[-1] == (total, total)
    again = demo.ensure_demo_county(store, 300, 5)
    assert not again.generated
    assert again.report.accepted == 0 and again.report.skipped == total
    # one account per role, each staff account a named practitioner of the county
    by_role = {a.role: a for a in again.accounts}
    assert set(by_role) == {"village-doctor", "gp", "specialist", "nurse", "public-health",
                            "county-admin", "platform-admin", "resident"}
    for role in ("village-doctor", "gp", "specialist", "nurse", "public-health"):
        account = by_role[role]
        assert account.name and account.linked.startswith("Practitioner/")
        assert (account.organization or "").startswith("Organization/")
    assert by_role["resident"].linked.startswith("Patient/")


def test_progress_bar() -> None:
    assert demo.progress_bar(0, 10, width=10) == "[----------]   0%"
    assert demo.progress_bar(5, 10, width=10) == "[#####-----]  50%"
    assert demo.progress_bar(12, 10, width=10) == "[##########] 100%"
