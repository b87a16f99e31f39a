"""The workbench over plain HTTP: sign-in redirect, CSRF, the policy's 404, plausibility."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from kangqiao.web import workbench
from tests.cds.builders import episode
from tests.conftest import csrf_of, form_login
from tests.security import conftest as security
from tests.security.conftest import PASSWORD, County
from tests.web.workbench_county import hypertensive_p1, today

county = security.county
app_client = security.app_client


_csrf = csrf_of


def _login(client: TestClient, username: str = "gp1") -> None:
    r = form_login(client, username, PASSWORD, "/workbench")
    assert r.status_code == 303


def _encounters(store: FhirStore) -> int:
    with store.read(SYSTEM) as uow:
        return len(uow.search("Encounter", [("patient", "p1")], count=100, total="none").items)


def test_pages_redirect_to_login_when_signed_out(app_client: TestClient, county: County
                                                 ) -> None:
    for path in ("/workbench", "/workbench/patients/p1", "/workbench/patients/p1/follow-up"):
        r = app_client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = app_client.post("/workbench/patients/p1/follow-up", data={}, follow_redirects=False)
    assert r.status_code == 303


def test_follow_up_needs_the_session_csrf_token(app_client: TestClient, county: County,
                                                store: FhirStore) -> None:
    hypertensive_p1(store)
    _login(app_client)
    before = _encounters(store)
    r = app_client.post("/workbench/patients/p1/follow-up", data={
        "csrf": "forged", "disease": "htn", "visit-date": "2026-01-01",
        "bp-systolic": "150", "bp-diastolic": "95"})
    assert r.status_code == 403
    assert _encounters(store) == before
    assert app_client.post("/workbench/patients/p1/referral",
                           data={"csrf": "x", "disease": "htn"}).status_code == 403


def test_today_lists_the_patients_of_the_doctors_team_episodes(
        app_client: TestClient, county: County, store: FhirStore) -> None:
    """p3 has no GP; its management episode names another care manager and gp1's team
    (found by the EpisodeOfCare ``team`` index): gp1's today page lists p3, by name, in
    the overdue list (enrolled 200 days ago, never seen)."""
    hypertensive_p1(store)
    ep = episode("eoc-p3", "p3", "htn", (today() - timedelta(days=200)).isoformat(),
                 team="CareTeam/team-01-01", manager="PractitionerRole/role-vd1")
    with store.write(SYSTEM) as uow:
        uow.update("EpisodeOfCare", "eoc-p3", ep)
    _login(app_client)
    html = app_client.get("/workbench").text
    overdue = html.split('id="list-overdue"', 1)[1].split("</section>", 1)[0]
    assert '<a href="/workbench/patients/p3">p3</a>' in overdue
    assert "/workbench/patients/p1" in html


def test_today_shows_each_lists_first_rows_and_links_to_the_whole_list(
        app_client: TestClient, county: County, store: FhirStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each list on "today" shows its first rows and a link to the whole list; the list's
    own page shows all of it and nothing else."""
    hypertensive_p1(store)
    ep = episode("eoc-p3", "p3", "htn", (today() - timedelta(days=200)).isoformat(),
                 team="CareTeam/team-01-01", manager="PractitionerRole/role-vd1")
    with store.write(SYSTEM) as uow:
        uow.update("EpisodeOfCare", "eoc-p3", ep)
    monkeypatch.setattr(workbench, "TODAY_ROWS", 1)
    _login(app_client)
    html = app_client.get("/workbench").text
    annual = html.split('id="list-annual_check_due"', 1)[1].split("</section>", 1)[0]
    assert annual.count("/workbench/patients/") == 1  # p1 and p3 are due; one is shown
    assert '<a class="more" href="/workbench?list=annual_check_due">查看全部 2</a>' in annual
    whole = app_client.get("/workbench", params={"list": "annual_check_due"}).text
    assert 'id="list-overdue"' not in whole and "返回今日工作" in whole
    listed = whole.split('id="list-annual_check_due"', 1)[1].split("</section>", 1)[0]
    assert {"/workbench/patients/p1", "/workbench/patients/p3"} <= set(
        re.findall(r"/workbench/patients/p\d", listed))
    assert 'class="more"' not in listed
    # an unknown list name is the whole day, not an error
    assert 'id="list-overdue"' in app_client.get("/workbench", params={"list": "x"}).text


def test_patient_outside_the_view_is_404_not_500(app_client: TestClient, county: County,
                                                 store: FhirStore) -> None:
    hypertensive_p1(store)
    _login(app_client)
    assert app_client.get("/workbench/patients/p2").status_code == 404  # gp2's patient
    assert app_client.get("/workbench/patients/nobody").status_code == 404
    assert app_client.get("/workbench/patients/p2/follow-up").status_code == 404
    page = app_client.get("/workbench/patients/p1")
    assert page.status_code == 200
    csrf = _csrf(page.text)
    r = app_client.post("/workbench/patients/p2/follow-up", data={
        "csrf": csrf, "disease": "htn", "bp-systolic": "150", "bp-diastolic": "95"})
    assert r.status_code == 404


def test_patient_page_masks_the_id_number_and_shows_shared_results(
        app_client: TestClient, county: County, store: FhirStore) -> None:
    hypertensive_p1(store)
    _login(app_client)
    html = app_client.get("/workbench/patients/p1").text
    assert "110101********1234" in html and "110101196001011234" not in html
    assert "血脂四项" in html and "org-county-hospital" in html  # another institution's
    assert "氨氯地平片" in html and "王秀英" in html
    # Statuses in the interface's words; each encounter names the institution it was at.
    assert "<td>I10</td><td>活动</td>" in html  # the condition's clinical status
    assert "每日1次，每次5mg</td><td>在用</td>" in html  # the prescription's
    assert re.search(r"<td>高血压患者随访</td><td>org-thc-01</td><td>已完成</td>", html)
    english = app_client.get("/workbench/patients/p1", params={"lang": "en"}).text
    assert "<td>I10</td><td>active</td>" in english and "<td>finished</td>" in english
    # Without JavaScript the BP trend is a text summary (latest reading, targets) and a table;
    # the ECharts option next to it is for the browser.
    box = re.search(r'<div class="echart" data-echart="chart-bp-option"[^>]*>([^<]*)</div>',
                    html)
    assert box is not None and "132 / 82 mmHg" in box.group(1)
    assert "目标 &lt; 150" in box.group(1)  # HTML-escaped "<"
    assert re.search(r"<td>132</td><td>82</td>", html)
    assert '<script src="/assets/echarts-' in html
    found = app_client.get("/workbench", params={"q": "110101196001011234"}).text
    assert "/workbench/patients/p1" in found
    assert "/workbench/patients/p1" in app_client.get("/workbench", params={"q": "王"}).text


def test_implausible_values_are_shown_inline_and_nothing_is_saved(
        app_client: TestClient, county: County, store: FhirStore) -> None:
    hypertensive_p1(store)
    _login(app_client)
    csrf = _csrf(app_client.get("/workbench/patients/p1/follow-up").text)
    before = _encounters(store)
    r = app_client.post("/workbench/patients/p1/follow-up", data={
        "csrf": csrf, "disease": "htn", "visit-mode": "1", "bp-systolic": "300",
        "bp-diastolic": "95", "heart-rate": "abc"})
    assert r.status_code == 422
    assert 'data-error="bp-systolic"' in r.text and 'data-error="heart-rate"' in r.text
    assert 'value="300"' in r.text  # what was typed is kept
    assert _encounters(store) == before
    r = app_client.post("/workbench/patients/p1/follow-up?lang=en", data={
        "csrf": csrf, "disease": "htn", "bp-systolic": "120"})
    assert r.status_code == 422 and "enter both SBP and DBP" in r.text


def test_urgent_follow_up_offers_one_click_referral(app_client: TestClient, county: County,
                                                    store: FhirStore) -> None:
    hypertensive_p1(store)
    _login(app_client)
    csrf = _csrf(app_client.get("/workbench/patients/p1/follow-up").text)
    r = app_client.post("/workbench/patients/p1/follow-up", data={
        "csrf": csrf, "disease": "htn", "visit-date": today().isoformat(),
        "visit-mode": "1", "bp-systolic": "186",
        "bp-diastolic": "112"})
    assert r.status_code == 201, r.text[-1500:]
    assert "/workbench/patients/p1/referral" in r.text
    r = app_client.post("/workbench/patients/p1/referral", data={"csrf": csrf,
                                                                 "disease": "htn"})
    assert r.status_code == 201, r.text
    with store.read(SYSTEM) as uow:
        [sr] = [s.content for s in uow.search("ServiceRequest", [("patient", "p1")], count=5,
                                              total="none").items]
    assert sr["performer"] == [{"reference": "Organization/org-county-hospital"}]


def test_echarts_is_served_from_node_modules(app_client: TestClient) -> None:
    from kangqiao.web.assets import ECHARTS_DIR, echarts_url

    r = app_client.get(echarts_url())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.content == (ECHARTS_DIR / "dist" / "echarts.min.js").read_bytes()
    assert "immutable" in r.headers["cache-control"]
    assert app_client.get("/assets/echarts-0.0.1.min.js").status_code == 404
    assert "echarts.init" in app_client.get("/assets/charts.js").text
