"""The Items view in a real browser (playwright + Debian's Chromium, headless, offline; see
tests/test_browser.py for the installs): run the demo and localization benchmarks, show the
failures, click one, and the Explore tab opens that item with its card and its crossed pairs.
Screenshots go to the test's temp dir (items-1-table.png, items-2-opened.png)."""

import os
from pathlib import Path

import pytest
from browser_helpers import watch

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000
SHOTS = Path(os.environ.get("EL_SCREENSHOTS", "/tmp"))  # where a failure's screenshot goes


def _wait_text(page, selector: str, text: str) -> None:
    try:
        page.wait_for_function(
            "([sel, t]) => (document.querySelector(sel)?.innerText || '').includes(t)",
            arg=[selector, text], timeout=TIMEOUT_MS)
    except Exception:
        page.screenshot(path=str(SHOTS / "items-failed.png"), full_page=True)
        raise


def test_items_view_opens_a_failure_on_explore(browser, app_server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    problems = watch(page)
    page.goto(app_server[1], wait_until="domcontentloaded")
    _wait_text(page, "#el-status", "demo 0..7: 16 pairs")
    page.get_by_role("tab", name="Benchmarks").click()
    page.locator("#el-bench-names").get_by_label("localization").check()
    limit = page.locator("#el-bench-limit input")
    limit.fill("8")
    limit.press("Tab")
    page.locator("#el-bench-run").click()
    _wait_text(page, "#el-items-localization", "Pointing game")
    _wait_text(page, "#el-items-note", "items, the smallest margin first")

    page.locator("#el-items-fail").get_by_label("Failures only").check()
    _wait_text(page, "#el-items-note", " of 16 items")  # 8 demo items, 8 with pointing only
    cell = lambda r, c: page.locator(f'#el-items-table [data-testid="cell-{r}-{c}"]')  # noqa
    cell(0, 0).wait_for(timeout=TIMEOUT_MS)
    verdicts = page.locator('#el-items-table [role="gridcell"][data-col="3"]')
    # the grid fills its cells after it draws them: wait until none is blank (a loaded machine
    # once read one before its text)
    page.wait_for_function(
        """() => { const c = [...document.querySelectorAll(
              '#el-items-table [role="gridcell"][data-col="3"]')];
              return c.length > 0 && c.every(e => e.innerText.trim() !== ''); }""",
        timeout=TIMEOUT_MS)
    assert set(verdicts.all_inner_texts()) == {"no"}  # failures only
    index = cell(0, 1).inner_text().strip()
    assert cell(0, 0).inner_text().strip() == "demo"
    assert "raw" in cell(0, 6).inner_text()  # the demo items carry the pointing game
    page.locator("#el-items").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "items-1-table.png"), full_page=True)

    cell(0, 0).click()
    _wait_text(page, "#el-status", f"indices {index}")
    _wait_text(page, "#el-item-card", f"demo #{index}")
    card = page.locator("#el-item-card").inner_text()
    assert "crossed" in card and "matching" in card and "Pointing game" in card
    page.locator("#el-item-card summary").click()  # the pointing game's cases, folded
    page.locator("#el-item-card details table").wait_for(timeout=TIMEOUT_MS)
    page.locator('#el-item-maps [data-testid="plotly"] .gtitle').wait_for(timeout=TIMEOUT_MS)
    page.locator("#el-gallery img").first.wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#el-gallery .caption-label").count() == 4  # 2 images x 2 captions
    page.screenshot(path=str(tmp_path / "items-2-opened.png"), full_page=True)
    page.close()
    assert not problems, "\n".join(problems)
