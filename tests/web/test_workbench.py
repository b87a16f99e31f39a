"""The workbench as a GP sees it, in headless Chromium (Debian) driven by playwright: sign in,
"today", find and open the patient, record an uncontrolled follow-up on the national form,
see the classification, the next date and the work list change, then switch to English."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page

from kangqiao.fhir.store.store import FhirStore
from tests.security import conftest as security
from tests.security.conftest import PASSWORD, County
from tests.web.conftest import ARTIFACTS, svg_text, wait_for_charts
from tests.web.workbench_county import hypertensive_p1, today

county = security.county



def _count(page: Page, key: str) -> int:
    return int(page.locator(f'a.count[data-list="{key}"] b').inner_text())


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_gp_records_an_uncontrolled_follow_up(browser: Browser, live_server: str,
                                              county: County, store: FhirStore) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    hypertensive_p1(store)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.goto(live_server + "/workbench")
    page.wait_for_url("**/login?next=*")
    page.fill("#username", "gp1")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/workbench")
    assert page.locator("h1").inner_text().startswith("今日工作")
    assert _count(page, "recheck_2w") == 0 and _count(page, "annual_check_due") == 1
    page.screenshot(path=str(ARTIFACTS / "workbench-today-zh.png"), full_page=True)

    page.fill("input[name=q]", "王秀英")
    page.click("form.search button")
    page.get_by_role("link", name="王秀英").first.click()
    page.wait_for_url("**/workbench/patients/p1")
    assert page.locator("[data-field=id-number]").inner_text() == "110101********1234"
    # Both trends drawn by ECharts (SVG renderer), the targets as labelled lines.
    page.wait_for_selector("#chart-glucose[data-ready] svg")
    wait_for_charts(page, 2)
    bp_text = svg_text(page, "#chart-bp")
    assert "目标 < 150" in bp_text and "目标 < 90" in bp_text
    assert "目标 < 7" in svg_text(page, "#chart-glucose")
    page.locator("#chart-bp + script + details summary").click()
    assert "132" in page.locator("#chart-bp ~ details table").inner_text()
    assert "血脂四项" in page.content()
    page.screenshot(path=str(ARTIFACTS / "workbench-patient-zh.png"), full_page=True)

    page.get_by_role("link", name="高血压随访").click()
    page.wait_for_url("**/follow-up?disease=htn")
    assert page.input_value("#f-visit-date") == today().isoformat()
    page.fill("#f-bp-systolic", "150")
    page.fill("#f-bp-diastolic", "95")
    page.fill("#f-heart-rate", "76")
    page.screenshot(path=str(ARTIFACTS / "workbench-follow-up-zh.png"), full_page=True)
    page.get_by_role("button", name="保存随访").click()
    page.wait_for_selector("[data-field=classification]")
    assert page.locator("[data-field=classification]").inner_text() == "控制不满意"
    due = today() + timedelta(days=14)
    assert page.locator("[data-field=next-visit]").inner_text() == due.isoformat()
    page.screenshot(path=str(ARTIFACTS / "workbench-result-zh.png"), full_page=True)

    page.get_by_role("link", name="返回今日工作").click()
    page.wait_for_url("**/workbench")
    assert _count(page, "recheck_2w") == 1 and _count(page, "uncontrolled") == 1
    assert page.locator("#list-recheck_2w").get_by_role("link", name="王秀英").count() == 1

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en")
    assert page.locator("h1").inner_text().startswith("Today")
    assert "Awaiting 2-week recheck" in page.locator("#list-recheck_2w h2").inner_text()
    page.screenshot(path=str(ARTIFACTS / "workbench-today-en.png"), full_page=True)
    page.locator("#list-recheck_2w").get_by_role("link", name="王秀英").click()
    page.wait_for_url("**/workbench/patients/p1?lang=en")
    assert "Blood pressure trend" in page.content()
    page.screenshot(path=str(ARTIFACTS / "workbench-patient-en.png"), full_page=True)
    page.close()
