"""The Train tab in a real browser (Playwright driving /usr/bin/chromium, as test_browser.py): a
10-step run's curves grow while it trains, it finishes, the model appears in the Explore model
picker, and "Compare with the base model" runs the Compare tab with both models. Screenshots
go to the test's temp dir (set EL_SCREENSHOTS=DIR to keep them)."""

import os
import time
from pathlib import Path

import pytest
from browser_helpers import watch

pytestmark = pytest.mark.slow

PLOT = '[data-testid="plotly"]'
# steps enough to see curves grow (>= 4 points drawn, then more) at 0.3 s a step
STEPS = 10
TIMEOUT_MS = int(os.environ.get("EL_TRAIN_TIMEOUT_MS", 120_000))


def _shots(tmp_path) -> Path:
    folder = Path(os.environ.get("EL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _points(page, plot: str) -> int:
    """Markers drawn in the first subplot of a plot."""
    return page.locator(f"#{plot} {PLOT} .scatterlayer .trace").first.locator(
        ".point").count()


@pytest.fixture()
def server(tiny_clip, tmp_path, monkeypatch):
    from engineered_latents.finetune import loop
    from engineered_latents.ui.testing import serve

    real = loop.train_step

    def paced(*args, **kwargs):  # steps long enough to screenshot a run in progress
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", paced)
    with serve(tiny_clip, tmp_path / "srv") as (demo, url):
        monkeypatch.setenv("EL_CACHE_DIR", demo.explorer.settings.cache_dir)
        yield demo, url


def _fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def test_a_run_draws_growing_curves_and_its_model_is_listed(browser, server, tmp_path):
    url = server[1]
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    problems = watch(page)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Train").click()
    _fill(page, "el-train-name", "browser-run")
    for elem_id, value in (("el-train-count", 32), ("el-train-steps", STEPS),
                           ("el-train-batch", 8), ("el-train-lr", 0.001),
                           ("el-train-warmup", 2)):
        _fill(page, elem_id, value)
    page.locator("#el-train-run").click()
    page.screenshot(path=str(_shots(tmp_path) / "train-0-clicked.png"))
    # the curves grow while it runs
    page.wait_for_function(
        "() => (document.querySelector('#el-train-note')?.innerText || '').includes('Training')",
        timeout=TIMEOUT_MS)
    page.wait_for_function(
        f"""() => document.querySelectorAll('#el-train-loss {PLOT} .scatterlayer .trace')[0]
                  ?.querySelectorAll('.point').length >= 4""", timeout=TIMEOUT_MS)
    first = _points(page, "el-train-loss")
    page.screenshot(path=str(_shots(tmp_path) / "train-1-running.png"))
    assert page.locator("#el-train-progress progress").count() == 1
    page.wait_for_function(
        "() => (document.querySelector('#el-train-note')?.innerText || '').includes('finished')",
        timeout=TIMEOUT_MS)
    page.locator("#el-train-compare").wait_for(timeout=TIMEOUT_MS)
    assert _points(page, "el-train-loss") == STEPS > first
    assert _points(page, "el-train-val") == 2  # the base model (step 0) and the last step
    page.screenshot(path=str(_shots(tmp_path) / "train-2-finished.png"), full_page=True)

    # the model is in the Explore model picker
    page.get_by_role("tab", name="Explore").click()
    page.locator("#el-model input").click()
    page.get_by_role("option", name="local: browser-run").wait_for(timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")

    # Compare with the base model: the Compare tab runs with both models
    page.get_by_role("tab", name="Train").click()
    page.locator("#el-train-compare").click()
    page.wait_for_function(
        "() => (document.querySelector('#el-compare-note')?.innerText || '').includes('pairs')",
        timeout=TIMEOUT_MS)
    note = page.locator("#el-compare-note").inner_text()
    assert "browser-run" in note, note
    page.screenshot(path=str(_shots(tmp_path) / "train-3-compare.png"))
    assert not problems, problems

    # a link opens the Train tab with its configuration (the run is not started by it)
    page.goto(f"{url}?tab=train&t_name=linked&t_steps=7&t_lr=0.0002", wait_until="domcontentloaded")
    page.wait_for_function(
        "() => document.querySelector('#el-train-name textarea, #el-train-name input')"
        "?.value === 'linked'", timeout=TIMEOUT_MS)
    assert page.locator("#el-train-steps input").input_value() == "7"
    assert page.locator("#el-train-lr input").input_value() == "0.0002"
    assert page.locator("#el-train-run").is_visible()  # the Train tab is the one shown
    # the reopened page shows the server's latest run: its curves, from its train.json
    page.wait_for_function(
        f"""() => document.querySelectorAll('#el-train-loss {PLOT} .scatterlayer .trace')[0]
                  ?.querySelectorAll('.point').length === {STEPS}""", timeout=TIMEOUT_MS)
    assert "browser-run" in page.locator("#el-train-note").inner_text()
    page.screenshot(path=str(_shots(tmp_path) / "train-4-link.png"))
    assert not problems, problems
    page.close()
