"""Pages are tested as a person sees them: Debian's headless Chromium driven by playwright.
Screenshots go to ``test-artifacts/`` to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The flags keep Chromium off the network (this machine has none) and quiet.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def svg_text(page: Page, chart: str) -> str:
    """The text ECharts drew in a chart (axis labels, target lines, legends)."""
    return page.locator(f"{chart} svg").text_content() or ""


def wait_for_charts(page: Page, count: int) -> None:
    """Wait until ``count`` charts are on the page and ECharts has finished drawing each."""
    page.wait_for_function(
        """n => { const boxes = document.querySelectorAll(".echart");
                  return boxes.length === n && [...boxes].every(
                      b => b.hasAttribute("data-ready") && b.querySelector("svg")); }""",
        arg=count)
