"""The Compare tab in a real browser (Playwright driving /usr/bin/chromium, as test_browser.py):
a deep link opens the tab, runs the comparison and draws every plot with no console error; the
Benchmarks tab's flipped items open in it. Screenshots go to the test's temp dir (set
EL_SCREENSHOTS=DIR to keep them)."""

import os
from pathlib import Path

import pytest
from browser_helpers import watch

pytestmark = pytest.mark.slow

PLOT = '[data-testid="plotly"]'
TIMEOUT_MS = 90_000
PLOTS = ["patch-a", "patch-b", "words-a", "words-b", "diff", "emphasis", "agreement",
         "correlation"]


@pytest.fixture(scope="module")
def small(tiny_clip_small_grid):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EL_MODEL_DIRS", tiny_clip_small_grid)
        yield "local:" + Path(tiny_clip_small_grid).name


def _shots(tmp_path) -> Path:
    folder = Path(os.environ.get("EL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_plots(page, ids) -> None:
    for name in ids:
        page.locator(f"#el-compare-{name} {PLOT} .main-svg").first.wait_for(timeout=TIMEOUT_MS)


def test_a_compare_link_opens_the_tab_and_draws_every_plot(browser, app_server, small,
                                                           tmp_path):
    url = app_server[1]
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    problems = watch(page)
    page.goto(f"{url}?tab=compare&model_b={small}&start=3&count=2&eig=2&mode=joint",
              wait_until="domcontentloaded")
    # the link selects the tab and presses Run: every plot is drawn
    page.wait_for_function(
        "() => (document.querySelector('#el-compare-note')?.innerText || '').includes('pairs')",
        timeout=TIMEOUT_MS)
    _wait_plots(page, PLOTS)
    note = page.locator("#el-compare-note").inner_text()
    assert "4 pairs, joint mode" in note and "tiny_clip_64" in note and "4x4" in note
    page.locator('#el-compare-matches [data-testid="cell-0-0"]').wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#el-compare-start input").input_value() == "3"
    titles = page.locator(f"#el-compare-patch-a {PLOT} .gtitle").all_text_contents()
    assert any("eigenvector 2" in t for t in titles), titles
    heat_b = page.locator(f"#el-compare-words-b {PLOT} .ytick text").all_text_contents()
    assert heat_b, "the word heatmap of B has no words"
    page.screenshot(path=str(_shots(tmp_path) / "compare-1-link.png"), full_page=True)

    # another pair from the dropdown: the pair views follow
    before = page.locator(f"#el-compare-words-a {PLOT} .ytick text").all_text_contents()
    page.locator("#el-compare-pair input").click()
    page.get_by_role("option").nth(1).click()
    page.wait_for_function(
        """([sel, before]) => {
            const t = [...document.querySelectorAll(sel)].map(e => e.textContent).join('|');
            return t.length > 0 && t !== before;
        }""", arg=[f"#el-compare-words-a {PLOT} .ytick text", "|".join(before)],
        timeout=TIMEOUT_MS)
    page.screenshot(path=str(_shots(tmp_path) / "compare-2-pair.png"))

    # a bad layer: a message, the page stays
    page.locator("#el-compare-layer-b input").fill("99")
    page.locator("#el-compare-layer-b input").press("Tab")
    page.locator("#el-compare-run").click()
    page.get_by_text("Model b").first.wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(_shots(tmp_path) / "compare-3-error.png"))
    page.close()
    assert not problems, "\n".join(problems)


def test_a_flipped_benchmark_item_opens_in_the_compare_tab(browser, app_server, small,
                                                           tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    problems = watch(page)
    page.goto(app_server[1], wait_until="domcontentloaded")
    page.wait_for_function(
        "() => (document.querySelector('#el-status')?.innerText || '').includes('16 pairs')",
        timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Benchmarks").click()
    compare = page.locator("#el-bench-compare input")
    compare.click()
    compare.fill(small)
    compare.press("Enter")
    page.locator("#el-bench-run").click()
    cell = lambda c: page.locator(f'#el-bench-flips [data-testid="cell-0-{c}"]')  # noqa: E731
    cell(0).wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => (document.querySelector('#el-bench-table')?.innerText || '').includes('paired')",
        timeout=TIMEOUT_MS)
    page.screenshot(path=str(_shots(tmp_path) / "compare-4-bench.png"))
    indices = cell(5).inner_text().strip()
    cell(3).click()
    # the Compare tab opens with the item and both models, and runs it
    page.wait_for_function(
        "() => (document.querySelector('#el-compare-note')?.innerText || '').includes('pairs')",
        timeout=TIMEOUT_MS)
    _wait_plots(page, PLOTS)
    assert page.locator("#el-compare-indices textarea, #el-compare-indices input").first \
        .input_value() == indices
    note = page.locator("#el-compare-note").inner_text()
    assert "4 pairs" in note and "tiny_clip_64" in note  # both images with both captions
    page.screenshot(path=str(_shots(tmp_path) / "compare-5-flip.png"), full_page=True)
    page.close()
    assert not problems, "\n".join(problems)
