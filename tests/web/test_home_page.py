"""The home page as a person sees it: headless Chromium (Debian) driven by playwright."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.web.conftest import ARTIFACTS


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_home_page_in_chinese_then_english(browser: Browser, live_server: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page.goto(live_server + "/")
    assert page.title() == "康桥 · 县域医共体健康信息平台"
    assert page.locator("h1").inner_text() == "康桥 · 县域医共体健康信息平台"
    page.screenshot(path=str(ARTIFACTS / "home-zh.png"), full_page=True)
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**?lang=en")
    assert "County Medical Community" in page.locator("h1").inner_text()
    page.get_by_role("link", name="Capability statement").click()
    assert '"fhirVersion":"4.0.1"' in page.content().replace(" ", "")
    page.close()
