"""The dashboards over plain HTTP on both databases: who may open which, numbers that are
the indicator engine's over the user's view (a resident who refused sharing drops out of the
county's figures), exports with small cells suppressed, refresh after a change, and clear
4xx pages for bad queries."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import openpyxl
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kangqiao.analytics.indicators import compute_indicators
from kangqiao.app import create_app
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import passwords
from kangqiao.security.gate import SYSTEM
from kangqiao.settings import Settings
from kangqiao.web.dashboard_data import DashboardCache, Snapshot
from tests.conftest import form_login
from tests.web import dashboard_county as dash
from tests.web.dashboard_county import PASSWORD, county_files, load_county


def _login(client: TestClient, username: str) -> None:
    r = form_login(client, username, PASSWORD)
    assert r.status_code == 303, r.text


def _managed_hypertensive(store: FhirStore) -> str:
    with store.read(SYSTEM) as uow:
        page = uow.search("EpisodeOfCare", [("status", "active")], count=200, total="none")
    for s in page.items:
        content = s.content or {}
        kinds = [c.get("code") for t in content.get("type") or [] for c in t.get("coding") or []]
        if "htn-management" in kinds:
            return str(content["patient"]["reference"]).split("/")[1]
    raise AssertionError("no hypertensive under management in the test county")


def _deny(pid: str) -> dict[str, Any]:
    return {"resourceType": "Consent", "id": f"deny-{pid}", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "v3-ActCode", "code": "OPTOUT"}]},
            "provision": {"type": "deny"}}


def _without(pid: str, folder: Path) -> Path:
    """The county's NDJSON with every resource of ``pid`` left out (the test's own reading
    of 'refused sharing': nothing of that resident reaches a county-wide user)."""
    folder.mkdir()
    needle = f'"Patient/{pid}"'.encode()
    for f in county_files():
        keep = [line for line in f.read_bytes().splitlines()
                if needle not in line and orjson.loads(line).get("id") != pid]
        (folder / f.name).write_bytes(b"\n".join(keep) + b"\n")
    return folder


def _ready(client: TestClient, path: str) -> Any:
    """The page once its snapshot is built (202 "computing" until then)."""
    deadline = time.monotonic() + 300
    while (r := client.get(path)).status_code == 202:
        assert "正在计算" in r.text and 'http-equiv="refresh"' in r.text
        assert time.monotonic() < deadline, "the snapshot was not built"
        time.sleep(0.2)
    return r


def _snapshot(app: Any, role: str) -> Snapshot:
    cache: DashboardCache = app.state.dashboards
    found = [e.snapshot for k, e in cache._entries.items() if role in k and e.snapshot]
    assert len(found) == 1
    return found[0]


def test_dashboards(engine: Engine, store: FhirStore, settings: Settings,
                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(passwords, "hash_password", dash._hash)
    load_county(store, engine, settings)
    hidden = _managed_hypertensive(store)
    with store.write(SYSTEM) as uow:
        uow.update("Consent", f"deny-{hidden}", _deny(hidden))
    app = create_app(settings, store)

    with TestClient(app) as client:
        r = client.get("/dashboard/county", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        _login(client, "countyadmin")
        r = _ready(client, "/dashboard/county")
        assert r.status_code == 200 and "县域指标看板" in r.text
        snap = _snapshot(app, "county-admin")
        year = str(max(snap.years))
        # The engine over the record minus the resident who refused sharing, computed here
        # from the generated files: the dashboard's figures are exactly these.
        expected = {(x["indicator_id"], x["stratum_id"]): x for x in compute_indicators(
            [_without(hidden, tmp_path / "visible")], year, ("county", "township"), 0)
            if x["period"] == year}
        everyone = {(x["indicator_id"], x["stratum_id"]): x for x in compute_indicators(
            [dash.county_folder()], year, ("county",), 0) if x["period"] == year}
        key = ("nbphs-htn-bp-control", "county")
        shown = snap.row(key[0], year, "county")
        assert shown is not None
        assert (shown["numerator"], shown["denominator"]) == (
            expected[key]["numerator"], expected[key]["denominator"])
        assert shown["denominator"] == everyone[key]["denominator"] - 1
        for (ind, unit), row in expected.items():
            mine = snap.row(ind, year, unit)
            assert mine is not None and mine["numerator"] == row["numerator"], (ind, unit)

        # The page: the county figure, the townships ranked with links one level down.
        value = re.search(r'data-field="value">([^<]+)<', r.text)
        assert value is not None
        assert value.group(1).strip() == f"{round(shown['rate'] * 100, 1):g}%"
        towns = [u for u in snap.kids("county") if snap.row(key[0], year, u.id)]
        assert len(towns) >= 2 and all(f'data-unit="{u.id}"' in r.text for u in towns)
        r = client.get(f"/dashboard/county?unit={towns[0].id}&period={year}")
        assert r.status_code == 200 and "全县</a> › <b" in r.text
        villages = [v for v in snap.kids(towns[0].id) if snap.row(key[0], year, v.id)]
        assert villages and all(f'data-unit="{v.id}"' in r.text for v in villages)

        # Exports: the shown table, small cells suppressed.
        r = client.get(f"/dashboard/county/export.csv?period={year}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[0][:3] == ["指标编码", "指标", "期间"] and "抑制" in rows[-1][0]
        table = rows[1:-1]
        assert [x[4] for x in table[:1]] == ["county"] and len(table) == 1 + len(
            [t for t in towns if snap.row(key[0], year, t.id)])
        for x in table:
            num = snap.row(key[0], year, x[4])
            assert num is not None
            small = 0 < num["numerator"] < 10 or num["denominator"] < 10
            assert (x[-1] == "True") == small and (x[7] == "") == small
        r = client.get(f"/dashboard/county/export.xlsx?period={year}&lang=en")
        assert r.status_code == 200
        sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
        assert sheet is not None
        cells = [[c.value for c in row] for row in sheet.iter_rows()]
        assert cells[0][0] == "indicator_id" and len(cells) == len(table) + 3
        assert [c[4] for c in cells[1:len(table) + 1]] == [x[4] for x in table]

        # Bad queries: clear 400s, never a 500.
        for query in ("indicator=nope", "unit=nope", "period=1999"):
            assert client.get(f"/dashboard/county?{query}").status_code == 400
        assert client.get("/dashboard/county/export.pdf").status_code == 400
        assert client.get("/dashboard/clinic").status_code == 403  # not clinic staff

        # A change to the record reaches the dashboard without a restart.
        app.state.dashboards.check_seconds = 0
        before = snap.resources
        with store.write(SYSTEM) as uow:
            uow.update("Observation", "dash-new", {
                "resourceType": "Observation", "id": "dash-new", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": f"Patient/{towns_patient(store)}"},
                "effectiveDateTime": f"{year}-06-01", "valueQuantity": {"value": 70}})
        client.get("/dashboard/county")  # sees the new version, rebuilds in the background
        deadline = time.monotonic() + 120
        while _snapshot(app, "county-admin").resources == before:
            assert time.monotonic() < deadline, "the snapshot was not rebuilt"
            time.sleep(0.2)
        assert _snapshot(app, "county-admin").resources == before + 1

    with TestClient(app) as client:
        _login(client, "gp")
        assert client.get("/dashboard/county").status_code == 403
        r = _ready(client, "/dashboard/clinic")
        assert r.status_code == 200 and "慢病管理看板" in r.text
        mine = _snapshot(app, "gp")
        county = _snapshot(app, "county-admin")
        # The GP's view is their township's: fewer residents than the county's.
        assert 0 < mine.resources < county.resources
        home = next(u for u in mine.kids("county") if u.id == "org-thc-01")
        for village in county.kids("org-thc-01"):
            assert village.level == "doctor" or village.name in r.text
        others = [v for t in county.kids("county") if t.id != home.id
                  for v in county.kids(t.id) if v.level == "village"]
        assert not any(v.name in r.text for v in others)
        assert client.get("/dashboard/clinic?year=1999").status_code == 400


def towns_patient(store: FhirStore) -> str:
    with store.read(SYSTEM) as uow:
        page = uow.search("Patient", [], count=1, total="none")
    return page.items[0].id


def test_a_served_county_builds_the_county_dashboard_at_start(
        engine: Engine, store: FhirStore, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``dashboard_warmup`` (what `kangqiao serve` sets) the county administrators'
    snapshot is built when the app starts: the first of them to open the dashboard gets the
    page, not the "computing" one."""
    app = create_app(settings.model_copy(update={"dashboard_warmup": True}), store)
    with TestClient(app):  # no county-admin account yet: nothing to build
        assert not getattr(app.state, "dashboards", None)
    monkeypatch.setattr(passwords, "hash_password", dash._hash)
    load_county(store, engine, settings)
    app = create_app(settings.model_copy(update={"dashboard_warmup": True}), store)
    with TestClient(app) as client:
        cache: DashboardCache = app.state.dashboards
        deadline = time.monotonic() + 300
        while not any(e.snapshot for e in cache._entries.values()):
            assert time.monotonic() < deadline, "the warm-up built nothing"
            time.sleep(0.2)
        assert [k[0] for k in cache._entries] == ["county-admin"]
        _login(client, "countyadmin")
        r = client.get("/dashboard/county")
        assert r.status_code == 200 and "县域指标看板" in r.text
