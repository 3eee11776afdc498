"""Issue 28 in a real browser (Chromium, Playwright) against `panel serve app.py`: permalinks that
keep an abundance colouring, a server log that says what went wrong, no Bokeh warning when the
metrics are computed after another tab, and every tab readable at two window sizes (no truncated
header, no empty plot). Screenshots in test-artifacts/.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from twinviz.testing import make_sample, wait_for

pytestmark = pytest.mark.ui

TABS = ("Swap explorer", "Latent map", "Twins", "Metrics", "Training")
SIZES = ({"width": 1100, "height": 800}, {"width": 1600, "height": 1000})

# Texts that the page cuts (an ellipsis or a clipped box): tab headers, table column titles,
# widget and slider titles, the sidebar's lines.
TRUNCATED_JS = """() => {
  const out = [];
  const roots = [];
  const walk = (root) => { roots.push(root); for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot); };
  walk(document);
  const seen = new Set();
  for (const root of roots) {
    for (const el of root.querySelectorAll(
        '.bk-tab, .tabulator-col-title, .bk-slider-title, .bk-input-group label, label')) {
      if (seen.has(el)) continue;
      seen.add(el);
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;  // not shown
      const text = (el.innerText || el.textContent).trim();
      if (text && el.scrollWidth > el.clientWidth + 1) out.push(text);
    }
    // a table column whose header lies (partly) past the table's right edge
    for (const table of root.querySelectorAll('.tabulator')) {
      const t = table.getBoundingClientRect();
      if (t.width === 0) continue;
      for (const col of table.querySelectorAll('.tabulator-col')) {
        const r = col.getBoundingClientRect();
        const title = col.innerText.trim();
        if (title && r.width > 0 && r.right > t.right + 1) out.push('column ' + title);
      }
    }
  }
  return out;
}"""

# Bokeh plot titles longer than their plot is wide (measured with the title's font).
CUT_TITLES_JS = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const out = [];
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models) {
      const t = m.title;
      if (!t || typeof t !== 'object' || !('text' in t) || !(m.inner_width > 0)) continue;
      ctx.font = `${t.text_font_style || 'normal'} ${t.text_font_size || '13px'} sans-serif`;
      for (const line of String(t.text || '').split('\\n'))
        if (ctx.measureText(line).width > m.inner_width + 5) out.push(line);
    }
  return out;
}"""

# Visible Bokeh plots' drawing areas: [width, height] of each canvas that is shown (not in a
# hidden tab).
CANVASES_JS = """() => {
  const out = [];
  const roots = [];
  const walk = (root) => { roots.push(root); for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot); };
  walk(document);
  for (const root of roots)
    for (const c of root.querySelectorAll('canvas')) {
      const r = c.getBoundingClientRect();  // canvases of hidden tabs keep their size: skip them
      if (r.width > 0 && r.height > 0 && c.checkVisibility({visibilityProperty: true})) out.push([r.width, r.height]);
    }
  return out;
}"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate

    model, data, latents = make_sample(tmp_path_factory.mktemp("survey-sample"), n_pairs=60)
    data_dir = tmp_path_factory.mktemp("survey-data")
    save_spectra(simulate(10, seed=1), data_dir / "train.nc")
    return {"model": model, "data": data, "latents": latents, "data_dir": data_dir,
            "runs": tmp_path_factory.mktemp("survey-runs")}


@pytest.fixture(scope="module")
def served(panel_serve, inputs):
    return panel_serve("--model", inputs["model"], "--data", inputs["data"], "--latents", inputs["latents"],
                       "--runs", inputs["runs"], "--data-dir", inputs["data_dir"])


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _tab(page, name):
    tab = page.locator(".bk-tab", has_text=re.compile(f"^{name}$"))
    tab.click()
    expect(tab).to_have_class(re.compile(r"\bbk-active\b"), timeout=10_000)


def test_a_permalink_colours_the_map_by_an_abundance_and_keeps_it(page, served, console_errors, artifacts):
    page.set_viewport_size(SIZES[1])
    page.goto(served.url + "?tab=1&colour=%5BFe%2FH%5D")
    select = page.locator("select").filter(has=page.locator("option", has_text="[Fe/H]")).first
    select.wait_for(timeout=60_000)
    wait_for(lambda: select.input_value() == "[Fe/H]", timeout=20)
    page.screenshot(path=str(artifacts / "issue28_permalink_fe_h.png"), full_page=True)
    # any later change of the address (here: another tab) keeps the colouring beside it
    _tab(page, "Swap explorer")
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('tab') === '0'", timeout=20_000)
    assert _query(page)["colour"] == "[Fe/H]", page.url
    assert "-1.0" not in page.url
    assert "Could not parse" not in served.log()  # the app reads the value itself
    assert not served.tracebacks(), served.log()


def test_metrics_computed_after_another_tab_give_no_bokeh_warning(page, served, console_errors, artifacts):
    page.set_viewport_size(SIZES[1])
    page.goto(served.url + "?tab=2")
    page.wait_for_selector(".tabulator-row", timeout=60_000)
    _tab(page, "Metrics")
    button = page.get_by_role("button", name="compute metrics")
    button.wait_for(timeout=30_000)
    button.click()
    page.wait_for_selector(".tabulator-row >> text=published", timeout=120_000)
    page.screenshot(path=str(artifacts / "issue28_metrics_computed.png"), full_page=True)
    log = served.log()
    assert "reference already known" not in log, log
    assert not served.tracebacks(), log


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s['width']}x{s['height']}")
def test_every_tab_is_readable_without_cut_headers_or_empty_plots(page, served, console_errors, artifacts, size):
    page.set_viewport_size(size)
    page.goto(served.url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    for name in TABS:
        _tab(page, name)
        if name == "Twins":
            page.wait_for_selector(".tabulator-row", timeout=60_000)
        if name == "Metrics":  # the table and the rank curve (computed here if not cached yet)
            button = page.get_by_role("button", name="compute metrics")
            page.wait_for_selector("button:has-text('compute metrics'):visible, .tabulator-row:has-text('published')",
                                   timeout=60_000)
            if button.is_visible():
                button.click()
            page.wait_for_selector(".tabulator-row >> text=published", timeout=120_000)
        if name == "Training":
            page.get_by_role("button", name="Launch").wait_for(timeout=90_000)

        def plots_drawn():
            boxes = page.evaluate(CANVASES_JS)
            return name == "Training" or any(w > 200 and h > 100 for w, h in boxes)

        wait_for(plots_drawn, timeout=60)
        page.screenshot(path=str(artifacts / f"issue28_{name.split()[0].lower()}_{size['width']}.png"),
                        full_page=True)
        assert page.evaluate(TRUNCATED_JS) == [], f"{name} at {size}: cut texts"
        assert page.evaluate(CUT_TITLES_JS) == [], f"{name} at {size}: cut plot titles"
        for w, h in page.evaluate(CANVASES_JS):  # no plot squeezed to nothing (icons are 20 px)
            assert w <= 40 or (w >= 150 and h >= 60), (name, size, w, h)
        if name == "Swap explorer":
            widths = [page.locator(".noUi-target").nth(i).bounding_box()["width"]
                      for i in range(page.locator(".noUi-target").count())]
            assert widths and min(widths) >= 150, widths  # sliders long enough to aim with
    assert not served.tracebacks(), served.log()


@pytest.mark.parametrize("case", ["missing model", "missing data", "corrupt data"])
def test_a_start_that_fails_is_logged(panel_serve, inputs, tmp_path, case):
    """Readable error pages were shown, but the server's log said nothing."""
    if case == "missing model":
        args = ["--model", tmp_path / "no-model", "--data", inputs["data"]]
    elif case == "missing data":
        args = ["--model", inputs["model"], "--data", tmp_path / "missing.nc"]
    else:
        corrupt = tmp_path / "corrupt.nc"
        corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really a netCDF file" * 10)
        args = ["--model", inputs["model"], "--data", corrupt]
    app = panel_serve(*args)  # answers its first page (the error page) before returning
    wait_for(lambda: "twinviz could not start" in app.log(), timeout=20)
    line = next(l for l in app.log().splitlines() if "twinviz could not start" in l)
    assert str(args[1 if case == "missing model" else 3].name) in line, line
    assert not app.tracebacks(), app.log()
