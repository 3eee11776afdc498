"""End to end in a real browser: train a tiny model from the Training tab of the full app
(`panel serve app.py --args --model … --data … --runs … --data-dir …`), then "Open in explorer"
and see the explorer switch to that model and its validation data.

Fails on any browser console error or server traceback; leaves screenshots in test-artifacts/.
"""
from __future__ import annotations

import re

import pytest

from twinviz.testing import make_sample, wait_for

pytestmark = pytest.mark.ui

VIEWPORT = {"width": 1400, "height": 1000}
RUN = "e2e-run"

# Number of pixels of every data source named 'tv-spectrum' in the page (the swap explorer's
# spectra): the list tells whether the plot exists and how many copies the page holds.
SPECTRUM_SOURCES_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.name === 'tv-spectrum') {
        const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
        out.push(Object.values(data)[0].length);
      }
  return out;
}"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The app's start model/data (the tiny sample), a data folder for training (real
    synthesizer, 20 + 8 twin pairs) and an empty runs folder."""
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate

    model, data, _ = make_sample(tmp_path_factory.mktemp("start"), n_pairs=30)
    data_dir = tmp_path_factory.mktemp("data")
    save_spectra(simulate(20, seed=1), data_dir / "train.nc")
    val = simulate(8, seed=2)
    save_spectra(val, data_dir / "val.nc")
    runs = tmp_path_factory.mktemp("runs")
    return {"model": model, "data": data, "data_dir": data_dir, "runs": runs,
            "val_first_id": str(val["star"].values[0].item()), "val_stars": val.sizes["star"]}


@pytest.fixture(scope="module")
def served(panel_serve, inputs):
    return panel_serve("--model", inputs["model"], "--data", inputs["data"],
                       "--runs", inputs["runs"], "--data-dir", inputs["data_dir"])


def _set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def _active_tab(page) -> str:
    return page.locator(".bk-tab.bk-active").first.inner_text().strip()


def test_a_run_trained_in_the_training_tab_opens_in_the_explorer(page, served, inputs, console_errors,
                                                                 artifacts):
    page.set_viewport_size(VIEWPORT)
    page.goto(served.url)
    source = page.locator(".tv-source-line")  # inside the pane's shadow root
    star_input = page.locator("input[placeholder='a star id, then Enter']")
    # At start: the sample model and its 60 stars.
    source.get_by_text("data: sample.nc").wait_for(timeout=60_000)
    assert "60 stars" in source.inner_text()
    assert star_input.input_value() == "1000"

    # Launch a tiny run (2 epochs of 40 spectra: two optimiser steps) on the CPU.
    page.locator(".bk-tab", has_text=re.compile("^Training$")).click()
    page.get_by_role("button", name="Launch").wait_for()
    page.get_by_label("Run name (optional)").fill(RUN)
    _set_number(page, "Epochs", 2)
    _set_number(page, "Latent dim", 4)
    page.get_by_role("button", name="Launch").click()
    page.get_by_text(f"Launched {RUN}").wait_for(timeout=30_000)  # launch checks open the data files
    page.get_by_text(f"{RUN} — done").wait_for(timeout=120_000)
    page.get_by_role("gridcell", name="done").wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "open_in_explorer_run_done.png"), full_page=True)

    page.get_by_role("button", name="Open in explorer").click()
    page.get_by_text(f"Opened the best model of {RUN}").wait_for(timeout=90_000)  # once loaded

    # The explorer switches: the sidebar names the run's model and its validation data, the
    # star picker holds the new dataset's first star, and the swap explorer is in front.
    source.get_by_text(f"model: {RUN}/model").wait_for(timeout=60_000)
    line = source.inner_text()
    assert "data: val.nc" in line and f"{inputs['val_stars']} stars" in line, line
    assert star_input.input_value() == inputs["val_first_id"]
    assert _active_tab(page) == "Swap explorer"
    page.wait_for_function(f"() => ({SPECTRUM_SOURCES_JS})().length > 0", timeout=20_000)
    assert all(n > 0 for n in page.evaluate(SPECTRUM_SOURCES_JS))
    plots = page.locator(".bk-Canvas, canvas")

    def drawn():
        visible = [plots.nth(i).bounding_box() for i in range(plots.count()) if plots.nth(i).is_visible()]
        return any(b and b["width"] > 300 and b["height"] > 100 for b in visible)

    wait_for(drawn, timeout=20)  # the new plots are laid out before the screenshot
    # the permalink follows the new state; no value re-written as a float (twin=-1.0)
    page.wait_for_function("() => new URLSearchParams(window.location.search).has('twin') && "
                           "new URLSearchParams(window.location.search).has('teff')", timeout=20_000)
    assert "=-1.0" not in page.url and "twin=-1" in page.url, page.url
    page.screenshot(path=str(artifacts / "open_in_explorer_after.png"), full_page=True)

    # No server traceback, and the load did not fail quietly (a warning, not an error).
    log = served.log()
    assert not served.tracebacks(), "server tracebacks:\n" + log
    assert "could not open" not in log, log
