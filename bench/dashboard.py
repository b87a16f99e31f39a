"""Time the dashboards on a loaded county (default: the configured store, e.g. the demo's
``var/kangqiao.db``): the first page of a user (its snapshot is built: export of the user's
view + the indicator engine), a cached page, a drill-down and the exports.

Run: .venv/bin/python bench/dashboard.py
Creates two bench accounts (county-admin, and a GP linked to the first GP of
org-thc-01) if missing; prints seconds per step.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kangqiao.app import create_app
from kangqiao.fhir.store.db import make_engine
from kangqiao.security import accounts, rules
from kangqiao.security.directory import staff_with_role
from kangqiao.settings import Settings, get_settings

PASSWORD = "Bench-Pa55word-dash"


def ensure(engine: Engine, settings: Settings, username: str, role: str) -> None:
    if accounts.find(engine, username=username) is not None:
        accounts.set_password(engine, username, PASSWORD, must_change=False)
        return
    if role == rules.GP:
        staff = staff_with_role(engine, "gp", "Organization/org-thc-01")
        assert staff is not None, "no GP at org-thc-01: load a county first"
        accounts.create(engine, settings, username=username, password=PASSWORD, role=role,
                        organization=staff.organization, practitioner=staff.practitioner,
                        practitioner_role=staff.practitioner_role, must_change=False)
    else:
        accounts.create(engine, settings, username=username, password=PASSWORD, role=role,
                        organization="Organization/org-health-commission", must_change=False)


def login(client: TestClient, username: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf": csrf.group(1), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


def timed(client: TestClient, label: str, path: str) -> None:
    started = time.perf_counter()
    while (r := client.get(path)).status_code == 202:  # the snapshot is being built
        time.sleep(0.2)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    print(f"{label:<44} {time.perf_counter() - started:8.2f} s  ({len(r.content):,} bytes)")


def main() -> None:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    ensure(engine, settings, "bench-countyadmin", rules.COUNTY_ADMIN)
    ensure(engine, settings, "bench-gp", rules.GP)
    app = create_app(settings)
    for username, pages in (
        ("bench-countyadmin", [
            ("county dashboard, first (builds the snapshot)", "/dashboard/county"),
            ("county dashboard, cached", "/dashboard/county"),
            ("drill-down to a township", "/dashboard/county?unit=org-thc-01"),
            ("another indicator (HEARTS, a month)",
             "/dashboard/county?indicator=hearts-controlled&unit=org-thc-01"),
            ("export CSV", "/dashboard/county/export.csv?unit=org-thc-01"),
            ("export XLSX", "/dashboard/county/export.xlsx?unit=org-thc-01")]),
        ("bench-gp", [
            ("clinic dashboard, first (builds the snapshot)", "/dashboard/clinic"),
            ("clinic dashboard, cached", "/dashboard/clinic")])):
        with TestClient(app) as client:
            login(client, username)
            for label, path in pages:
                timed(client, f"{username}: {label}", path)
    for key, entry in app.state.dashboards._entries.items():
        if entry.snapshot is not None:
            print(f"snapshot {key[0]}: {entry.snapshot.resources:,} resources in "
                  f"{entry.snapshot.seconds} s")

if __name__ == "__main__":
    main()
