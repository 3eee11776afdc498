"""Real APOGEE stars in the browser: `panel serve app.py` on a dataset imported from the
repository's DR12 files with the bundled demo model. Checks, from the Bokeh models in the page:
the observed spectrum (its values equal the file's at the good pixels), masked pixels as gaps
(NaN), the ±1σ flux_err band, and the out-of-distribution badge and table column."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.ui.test_app import _tab

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "data" / "demo" / "model"

# Finite count, NaN count and finite sum of one column of a named ColumnDataSource.
COLUMN_JS = """([name, column]) => {
  for (const doc of Bokeh.documents) {
    const src = doc.get_model_by_name(name);
    if (!src) continue;
    const data = src.data instanceof Map ? Object.fromEntries(src.data) : src.data;
    let finite = 0, nan = 0, sum = 0;
    for (const v of data[column]) { if (Number.isFinite(v)) { finite++; sum += v; } else nan++; }
    return {finite, nan, sum};
  }
  return null;
}"""


def _open(page, url):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    page.wait_for_function(f"() => window.Bokeh && Bokeh.documents.length > 0 && "
                           f"({COLUMN_JS})(['tv-swap', 'observed']) !== null && "
                           f"({COLUMN_JS})(['tv-swap', 'observed']).finite > 0", timeout=60_000)


# The Bokeh model of the swap explorer's OOD badge (a Panel HTML pane with css class tv-ood-badge).
BADGE_JS = """() => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.css_classes && m.css_classes.includes('tv-ood-badge')) return {text: m.text, visible: m.visible};
  return null;
}"""


@pytest.fixture(scope="module")
def real_app(tmp_path_factory, panel_serve):
    d = tmp_path_factory.mktemp("real-ui")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for argv in (["import", "apogee", ROOT / "tests" / "data" / "apogee", "--out", d / "stars.nc",
                  "--labels", "fparam", "--no-progress"],
                 ["embed", "--model", DEMO_MODEL, "--data", d / "stars.nc", "--out", d / "stars.latents.nc",
                  "--projections", "pca"]):
        subprocess.run([sys.executable, "-m", "twinviz", *map(str, argv)], cwd=d, env=env, check=True,
                       capture_output=True, timeout=600)
    served = panel_serve("--model", DEMO_MODEL, "--data", d / "stars.nc", "--latents", d / "stars.latents.nc")
    from twinviz.spectra.dataset import load_spectra

    return served, load_spectra(d / "stars.nc")


def test_real_star_observed_line_gaps_band_and_ood_badge(page, real_app, console_errors, artifacts):
    served, ds = real_app
    _open(page, served.url)
    # the selected star is the first one (position 0)
    flux, mask, err = ds["flux"].values[0], ds["mask"].values[0], ds["flux_err"].values[0]
    assert mask.any() and (~mask).any()
    n_chip_gaps = 2  # three chips on the ASPCAP grid: two NaN separators in every curve
    observed = page.evaluate(COLUMN_JS, ["tv-swap", "observed"])
    # the observed line: exactly the good pixels, with the file's values …
    assert observed["finite"] == int((~mask).sum())
    assert observed["sum"] == pytest.approx(float(flux[~mask].astype(np.float64).sum()), rel=1e-6)
    # … and every masked pixel a gap
    assert observed["nan"] == int(mask.sum()) + n_chip_gaps
    # the ±1σ band: each good pixel twice (upper edge, then lower edge back), broken at the gaps
    band_x = page.evaluate(COLUMN_JS, ["tv-observed-band", "x"])
    band_y = page.evaluate(COLUMN_JS, ["tv-observed-band", "y"])
    assert band_x["finite"] == band_y["finite"] == 2 * int((~mask).sum())
    assert band_y["sum"] == pytest.approx(2 * float(flux[~mask].astype(np.float64).sum()), rel=1e-6)
    runs = np.count_nonzero(np.diff(np.concatenate(([0], (~mask).astype(np.int8), [0]))) == 1)
    assert band_x["nan"] >= runs - 1 and band_x["nan"] > 0
    assert float(err[~mask].max()) <= 0.1  # masked pixels' placeholder errors (100) never widen the band
    # the out-of-distribution badge, with the numbers
    star = str(ds["star"].values[0])
    model = page.evaluate(BADGE_JS)
    assert model is not None and model["visible"], model
    assert f"out of distribution — star {star}" in model["text"]
    shown = page.get_by_text(f"out of distribution — star {star}", exact=False).first
    shown.wait_for(state="visible", timeout=10_000)  # rendered, not only in the model
    text = shown.inner_text()
    assert f"Teff {ds['teff'].values[0]:.0f} K outside the training range 4000–5500 K" in text
    assert "× validation p99" in text
    page.screenshot(path=artifacts / "app_real_star_swap.png", full_page=True)
    # zoomed on a stretch with masked pixels, for a person to see the gaps and the band
    bad = np.flatnonzero(mask[:2900])
    centre = float(ds["wavelength"].values[bad[len(bad) // 2]])
    zoom = """([a, b]) => { let n = 0; for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (m.type === 'Range1d' && m.start > 15000 && m.end < 17500 && m.end - m.start > 1000) {
          m.start = a; m.end = b; n++; } return n; }"""
    assert page.evaluate(zoom, [centre - 12.0, centre + 12.0]) >= 1
    page.wait_for_function("""(a) => { for (const doc of Bokeh.documents) for (const m of doc.all_models)
        if (m.type === 'Range1d' && Math.abs(m.start - a) < 1e-6) return true; return false; }""",
                           arg=centre - 12.0, timeout=10_000)
    page.screenshot(path=artifacts / "app_real_star_swap_zoom.png", full_page=True)
    # the twin table's OOD column
    _tab(page, "Twins")
    page.wait_for_selector(".tabulator-row", timeout=20_000)
    cells = page.locator(".tabulator-row .tabulator-cell[tabulator-field='OOD']")
    assert cells.count() >= 1 and all(cells.nth(i).inner_text().startswith("⚠") for i in range(cells.count()))
    compare = page.evaluate(COLUMN_JS, ["tv-compare", "star"])
    assert compare["finite"] == int((~mask).sum())  # the comparison plot keeps the gaps too
    page.screenshot(path=artifacts / "app_real_star_twins.png", full_page=True)
    assert not served.tracebacks(), "server tracebacks:\n" + served.log()
