"""The explorer in a real browser: Chromium (Playwright) against `panel serve app.py`.

Every test fails on a browser console error (``console_errors``) or a server traceback, and
saves a screenshot in test-artifacts/ for a person to look at.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from twinviz.testing import make_sample, wait_for

pytestmark = pytest.mark.ui

VIEWPORT = {"width": 1400, "height": 1000}

# Sum of the finite values of one column of a named ColumnDataSource in the page's Bokeh document.
CHECKSUM_JS = """([name, column]) => {
  for (const doc of Bokeh.documents) {
    const src = doc.get_model_by_name(name);
    if (!src) continue;
    const data = src.data instanceof Map ? Object.fromEntries(src.data) : src.data;
    let s = 0;
    for (const v of data[column]) if (Number.isFinite(v)) s += v;
    return s;
  }
  return null;
}"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("ui-sample"), n_pairs=60)


@pytest.fixture(scope="module")
def served(panel_serve, sample):
    model, data, latents = sample
    return panel_serve("--model", model, "--data", data, "--latents", latents)


@pytest.fixture
def no_server_errors(served):
    yield
    assert not served.tracebacks(), "server tracebacks:\n" + served.log()


def _open(page, url):
    page.set_viewport_size(VIEWPORT)
    page.goto(url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                           "Bokeh.documents[0].get_model_by_name('tv-spectrum') !== null", timeout=60_000)
    page.wait_for_function(f"() => ({CHECKSUM_JS})(['tv-spectrum', 'model']) !== 0", timeout=20_000)


def _checksum(page, name, column):
    return page.evaluate(CHECKSUM_JS, [name, column])


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _slider_handle(page, title: str):
    titles = page.locator(".bk-slider-title")
    for i in range(titles.count()):
        if titles.nth(i).inner_text().startswith(title):
            return page.locator(".noUi-handle").nth(i), titles.nth(i)
    raise AssertionError(f"no slider titled {title!r}")


def _tab(page, name):
    tab = page.locator(".bk-tab", has_text=re.compile(f"^{name}$"))
    tab.click()
    expect(tab).to_have_class(re.compile(r"\bbk-active\b"), timeout=10_000)


def _map_canvas_box(page):
    """The bounding box of the largest visible canvas (the map), or None while it is not drawn."""
    canvases = page.locator("canvas")
    boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count()) if canvases.nth(i).is_visible()]
    return max((b for b in boxes if b and b["width"] > 200), key=lambda b: b["width"] * b["height"], default=None)


def test_app_loads_and_a_slider_changes_the_reconstruction(page, served, console_errors, no_server_errors,
                                                           artifacts):
    _open(page, served.url)
    assert page.title() == "twinviz"
    assert page.get_by_text("Swap explorer.", exact=False).first.is_visible()
    before = _checksum(page, "tv-spectrum", "model")
    page.screenshot(path=artifacts / "app_swap_before.png", full_page=True)
    handle, title = _slider_handle(page, "Teff (K)")
    start = title.inner_text()
    handle.focus()
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {{ const s = ({CHECKSUM_JS})(['tv-spectrum', 'model']); "
                           f"return s !== null && Math.abs(s - {before}) > 1e-9; }}", timeout=10_000)
    assert title.inner_text() != start
    # the permalink follows the slider (the URL sync may arrive after the plot's data)
    page.wait_for_function("() => new URLSearchParams(window.location.search).has('teff')", timeout=10_000)
    page.screenshot(path=artifacts / "app_swap_after_slider.png", full_page=True)


def test_picking_a_twin_row_shows_the_comparison(page, served, console_errors, no_server_errors, artifacts):
    _open(page, served.url)
    _tab(page, "Twins")
    page.wait_for_selector(".tabulator-row", timeout=20_000)
    before = _checksum(page, "tv-compare", "twin")
    row = page.locator(".tabulator-row").nth(3)
    star_id = row.locator(".tabulator-cell[tabulator-field='star']").inner_text()
    row.click()
    page.wait_for_function(f"() => Math.abs(({CHECKSUM_JS})(['tv-compare', 'twin']) - {before}) > 1e-9",
                           timeout=10_000)
    # the URL is synced by a separate message that may arrive after the plot's data
    page.wait_for_function("() => new URLSearchParams(window.location.search).has('twin')", timeout=10_000)
    assert int(_query(page)["twin"]) == int(star_id) - 1000  # sample ids are 1000 + position
    page.screenshot(path=artifacts / "app_twins_row_selected.png", full_page=True)


@pytest.fixture(scope="module")
def served_calibrated(panel_serve, sample, tmp_path_factory):
    """The sample with a calibrated copy of its model (P(twin) column)."""
    import shutil

    from twinviz.latents import load_latents
    from twinviz.twins.confidence import fit_calibration, save_calibration, weights_sha256

    model, data, latents = sample
    copy = shutil.copytree(model, tmp_path_factory.mktemp("calibrated") / "model")
    lat = load_latents(latents)
    save_calibration(fit_calibration(lat["z"].values, lat["group"].values, lat["teff"].values, lat["logg"].values,
                                     k=5, model_sha256=weights_sha256(copy), data="sample", distance="z"), copy)
    return panel_serve("--model", copy, "--data", data, "--latents", latents)


def test_twins_tab_shows_p_twin_and_the_chemical_difference(page, served_calibrated, console_errors, artifacts):
    _open(page, served_calibrated.url)
    _tab(page, "Twins")
    page.wait_for_selector(".tabulator-cell[tabulator-field='P(twin)']", timeout=20_000)
    values = [float(c.inner_text()) for c in page.locator(".tabulator-cell[tabulator-field='P(twin)']").all()]
    assert values and all(0 <= v <= 1 for v in values) and values == sorted(values, reverse=True)
    assert page.get_by_text("isotonic calibration on sample", exact=False).first.is_visible()
    assert page.get_by_text("Chemical difference, neighbour", exact=False).first.is_visible()
    before = _checksum(page, "tv-compare", "chemical")
    page.locator(".tabulator-row").nth(4).click()
    page.wait_for_function(f"() => Math.abs(({CHECKSUM_JS})(['tv-compare', 'chemical']) - {before}) > 1e-9",
                           timeout=10_000)
    page.screenshot(path=artifacts / "app_twins_confidence_chemical.png", full_page=True)
    page.get_by_text("Chemical difference, neighbour", exact=False).first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=artifacts / "app_twins_chemical_lines.png")
    assert not served_calibrated.tracebacks(), "server tracebacks:\n" + served_calibrated.log()


def test_tapping_the_map_selects_a_star(page, served, console_errors, no_server_errors, artifacts):
    _open(page, served.url)
    _tab(page, "Latent map")
    box = wait_for(lambda: _map_canvas_box(page), timeout=20)
    star_input = page.locator("input[placeholder='a star id, then Enter']")
    assert star_input.input_value() == "1000"
    # Tap away from the selected star (which sits wherever star 0 projects); one of these hits elsewhere.
    for fx, fy in ((0.3, 0.35), (0.6, 0.6)):
        page.mouse.click(box["x"] + fx * box["width"] * 0.85, box["y"] + fy * box["height"])
        try:
            page.wait_for_function("() => document.querySelector('body') && "
                                   "new URLSearchParams(window.location.search).has('star')", timeout=8_000)
            break
        except Exception:
            continue
    page.wait_for_function("""() => {
        const q = new URLSearchParams(window.location.search);
        return q.has('star');
    }""", timeout=5_000)
    star = int(_query(page)["star"])
    assert star != 0
    expect(star_input).to_have_value(str(1000 + star), timeout=10_000)
    page.screenshot(path=artifacts / "app_map_after_tap.png", full_page=True)


def test_colouring_by_recovered_cluster_lists_its_members_and_a_click_selects_one(page, served, sample, console_errors,
                                                                                   no_server_errors, artifacts):
    import numpy as np

    from twinviz.evaluation.clusters import find_clusters
    from twinviz.latents import load_latents

    found = find_clusters(load_latents(sample[2])["z"].values, min_cluster_size=5)
    star = int(np.flatnonzero(found >= 0)[0])
    members = np.flatnonzero(found == found[star])
    _open(page, served.url + f"?star={star}")
    _tab(page, "Latent map")
    page.locator("select").filter(has=page.locator("option", has_text="recovered cluster")).select_option(
        "recovered cluster")
    page.wait_for_selector(f"text={members.size} members", timeout=30_000)
    # the members table: the rows without a twin-table rank column (Tabulator renders the visible ones)
    rows = page.locator(".tabulator-row").filter(has_not=page.locator(".tabulator-cell[tabulator-field='rank']"))
    rows.first.wait_for(timeout=20_000)
    listed = [int(r.locator(".tabulator-cell[tabulator-field='star']").inner_text()) for r in rows.all()]
    assert len(listed) >= 3 and set(listed) <= set((1000 + members).tolist())
    other = next(s_id - 1000 for s_id in listed if s_id - 1000 != star)
    rows.filter(has_text=str(1000 + other)).first.click()
    page.wait_for_function(f"() => window.location.search.includes('star={other}')", timeout=30_000)
    page.wait_for_timeout(800)
    page.screenshot(path=artifacts / "app_map_recovered_clusters.png", full_page=True)


def test_a_permalink_reopens_the_same_view(page, served, console_errors, no_server_errors, artifacts):
    # a stale or hand-edited value (rank=bogus) drops only itself; the twin comes back with its star
    _open(page, served.url + "?rank=bogus&star=17&teff=4500.0&logg=2.0&tab=0&twin=20")
    star_input = page.locator("input[placeholder='a star id, then Enter']")
    assert star_input.input_value() == "1017"
    _, teff_title = _slider_handle(page, "Teff (K)")
    _, logg_title = _slider_handle(page, "logg (dex)")
    assert teff_title.inner_text().endswith("4500") and logg_title.inner_text().endswith("2.00")
    q = _query(page)
    assert q["star"] == "17" and float(q["teff"]) == 4500.0 and q["twin"] == "20"
    page.screenshot(path=artifacts / "app_permalink.png", full_page=True)


def test_the_permalink_names_the_model_and_a_link_for_another_model_says_so(page, served, console_errors,
                                                                              no_server_errors, artifacts):
    _open(page, served.url)
    page.wait_for_function("() => new URLSearchParams(window.location.search).has('model')", timeout=10_000)
    q = _query(page)
    shown = q["model"]
    assert len(shown) == 12 and q["data"].endswith(".nc") and q["model_dir"]
    assert page.locator(".tv-ranked-on").inner_text().startswith("twins ranked on:")
    assert not page.get_by_text("This link was made with").is_visible()
    # a link made with another model bundle: the page says so instead of silently showing this one
    _open(page, served.url + "?star=17&model=0123456789ab&model_dir=runs%2Fother%2Fmodel&data=" + q["data"])
    warning = page.get_by_text("This link was made with model runs/other/model")
    warning.wait_for(timeout=10_000)
    assert "0123456789ab" in warning.inner_text() and shown in warning.inner_text()
    page.screenshot(path=artifacts / "app_permalink_other_model.png", full_page=True)


def test_typing_a_star_id_selects_it(page, served, console_errors, no_server_errors):
    _open(page, served.url)
    star_input = page.locator("input[placeholder='a star id, then Enter']")
    star_input.fill("1042")
    star_input.press("Enter")
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('star') === '42'",
                           timeout=10_000)


@pytest.mark.parametrize("bad", ["model", "data"])
def test_a_bad_path_gives_a_readable_error_page(page, panel_serve, sample, tmp_path, console_errors, artifacts,
                                                bad):
    model, data, _ = sample
    args = ["--model", tmp_path / "no-model", "--data", data] if bad == "model" else \
        ["--model", model, "--data", tmp_path / "missing.nc"]
    app = panel_serve(*args)
    page.set_viewport_size(VIEWPORT)
    page.goto(app.url)
    page.wait_for_selector("text=twinviz could not start", timeout=30_000)
    assert page.get_by_text(f"--{bad}", exact=False).first.is_visible()
    assert "Traceback" not in page.content()
    page.screenshot(path=artifacts / f"app_error_bad_{bad}.png", full_page=True)
    assert not app.tracebacks(), app.log()
