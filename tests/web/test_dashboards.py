"""The dashboards as people see them, in headless Chromium: the county-admin opens the
county dashboard from the home page, drills county -> township -> village by clicking a bar
and a row, goes back up with the breadcrumb, switches indicator, downloads CSV and Excel;
a GP opens the clinic dashboard from the workbench. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import passwords
from kangqiao.settings import Settings
from tests.web import dashboard_county as dash
from tests.web.conftest import ARTIFACTS, svg_text, wait_for_charts


def _sign_in(page: Page, username: str) -> None:
    page.wait_for_url("**/login?next=*")
    page.fill("#username", username)
    page.fill("#password", dash.PASSWORD)
    page.click("button[type=submit]")


def _click_bar(page: Page, chart: str, index: int) -> None:
    """A real mouse click on the ``index``-th bar from the top of a ranking chart.

    A full-page screenshot resizes the viewport and back, so the charts re-layout after
    it: wait two animation frames for that to settle, then take the bar's place and the
    chart's box in one go."""
    x, y = page.evaluate(
        """([id, index]) => new Promise(resolve => requestAnimationFrame(
            () => requestAnimationFrame(() => {
                const box = document.getElementById(id);
                const chart = echarts.getInstanceByDom(box);
                const option = chart.getOption();
                const n = option.yAxis[0].data.length;
                const value = option.series[0].data[n - 1 - index].value;
                const [x, y] = chart.convertToPixel({seriesIndex: 0}, [value / 2, n - 1 - index]);
                const rect = box.getBoundingClientRect();
                resolve([rect.left + x, rect.top + y]);
            })))""", [chart, index])
    page.mouse.move(x, y)
    page.mouse.click(x, y)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_county_admin_drills_down_and_exports(
        browser: Browser, live_server: str, engine: Engine, store: FhirStore,
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "hash_password", dash._hash)
    dash.load_county(store, engine, settings)
    page = browser.new_page(viewport={"width": 1360, "height": 1000}, locale="zh-CN",
                            accept_downloads=True)
    page.goto(live_server + "/")
    page.get_by_role("link", name="县域指标看板").click()
    _sign_in(page, "countyadmin")
    page.wait_for_url("**/dashboard/county")
    # The first visit computes the snapshot: a "computing" page that reloads itself.
    page.wait_for_selector("#chart-ranking[data-ready] svg", timeout=180_000)
    assert page.locator("h1").inner_text() == "县域指标看板"
    assert page.locator(".crumbs").inner_text() == "全县"
    # The county's own target line (规范管理 / 控制率 have no national value) on the charts.
    assert "目标 ≥ 60%" in svg_text(page, "#chart-ranking")
    assert "目标 ≥ 60%" in svg_text(page, "#chart-years")
    page.wait_for_selector("#chart-map[data-ready] svg")
    page.screenshot(path=str(ARTIFACTS / "dashboard-county-zh.png"), full_page=True)

    # County -> township: a click on the top bar of the ranking.
    top = page.locator("#ranking tbody tr").first
    town, town_name = top.get_attribute("data-unit"), top.locator("td").nth(1).inner_text()
    _click_bar(page, "chart-ranking", 0)
    page.wait_for_url(f"**unit={town}**")
    assert page.locator(".crumbs").inner_text() == f"全县 › {town_name}"
    page.wait_for_selector("#chart-ranking[data-ready] svg")
    # Township -> village: a click on a row of the ranking table.
    row = page.locator("#ranking tbody tr.link").first
    village, village_name = row.get_attribute("data-unit"), row.locator("td a").inner_text()
    row.locator("td").first.click()
    page.wait_for_url(lambda u: f"unit={village}" in u)
    assert page.locator(".crumbs").inner_text() == f"全县 › {town_name} › {village_name}"
    page.wait_for_selector("#chart-years[data-ready] svg")
    assert "医生排名" in (page.locator("#ranking").get_attribute("aria-label") or "")
    assert page.locator("#ranking tbody tr[data-unit^=role-]").count() >= 1  # its doctors
    page.screenshot(path=str(ARTIFACTS / "dashboard-village-zh.png"), full_page=True)
    # Back up to the township with the breadcrumb, then another indicator.
    page.locator(".crumbs").get_by_role("link", name=town_name).click()
    page.wait_for_url(f"**unit={town}**")
    page.select_option("#indicator", "hearts-controlled")
    page.wait_for_url("**indicator=hearts-controlled**")
    page.wait_for_selector("#chart-months[data-ready] svg")
    assert "目标 ≥ 50%" in svg_text(page, "#chart-months")
    assert page.locator("#indicator").input_value() == "hearts-controlled"
    page.screenshot(path=str(ARTIFACTS / "dashboard-township-hearts-zh.png"), full_page=True)

    # The exports hold what the table shows.
    shown = [r.get_attribute("data-unit") for r in page.locator("#ranking tbody tr").all()]
    with page.expect_download() as done:
        page.click("#export-csv")
    rows = list(csv.reader(io.StringIO(
        done.value.path().read_bytes().decode("utf-8-sig"))))
    assert rows[1][:1] == ["hearts-controlled"] and rows[1][4] == town
    assert [r[4] for r in rows[2:-1]] == shown
    with page.expect_download() as done:
        page.click("#export-xlsx")
    assert done.value.suggested_filename.endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(done.value.path().read_bytes())).active
    assert sheet is not None
    cells = [[c.value for c in r] for r in sheet.iter_rows()]
    assert cells[0][0] == "指标编码" and [r[4] for r in cells[2:2 + len(shown)]] == shown

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en**")
    assert page.locator("h1").inner_text() == "County indicator dashboard"
    page.wait_for_selector("#chart-ranking[data-ready] svg")
    assert "target ≥ 50%" in svg_text(page, "#chart-months")
    page.screenshot(path=str(ARTIFACTS / "dashboard-township-hearts-en.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_gp_opens_the_clinic_dashboard(
        browser: Browser, live_server: str, engine: Engine, store: FhirStore,
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "hash_password", dash._hash)
    dash.load_county(store, engine, settings)
    page = browser.new_page(viewport={"width": 1360, "height": 1000}, locale="zh-CN")
    page.goto(live_server + "/workbench")
    _sign_in(page, "gp")
    page.wait_for_url("**/workbench")
    page.locator("nav.links").get_by_role("link", name="机构看板").click()
    page.wait_for_url("**/dashboard/clinic")
    page.wait_for_selector("#chart-cohort[data-ready] svg", timeout=180_000)
    assert page.locator("h1").inner_text().startswith("慢病管理看板 · ")
    assert page.locator(".kpi").count() == 5
    page.wait_for_selector("#chart-cohort[data-ready] svg")
    wait_for_charts(page, 7)
    assert "目标 ≥ 60%" in svg_text(page, "#chart-nbphs-htn-bp-control")
    cohort = svg_text(page, "#chart-cohort")
    assert "血压控制" in cohort and "失访" in cohort
    page.screenshot(path=str(ARTIFACTS / "dashboard-clinic-zh.png"), full_page=True)
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en**")
    page.wait_for_selector("#chart-cohort[data-ready] svg")
    assert "Lost to follow-up" in svg_text(page, "#chart-cohort")
    page.screenshot(path=str(ARTIFACTS / "dashboard-clinic-en.png"), full_page=True)
    page.close()
