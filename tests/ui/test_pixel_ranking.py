"""The Twins tab's second ranking in a real browser: `panel serve app.py --args … --pixel-finder DIR`,
the "rank twins by" switch, and the permalink that keeps it."""
from __future__ import annotations

import pytest

from tests.ui.test_app import _open, _query, _tab
from twinviz.spectra.dataset import load_spectra
from twinviz.testing import make_pixel_sample, wait_for
from twinviz.twins.index import TwinIndex
from twinviz.evaluation.pixel_finder import load_pixel_finder

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def pixel_sample(tmp_path_factory):
    return make_pixel_sample(tmp_path_factory.mktemp("ui-pixel"))


@pytest.fixture(scope="module")
def served_pixel(panel_serve, pixel_sample):
    model, data, finder = pixel_sample
    return panel_serve("--model", model, "--data", data, "--pixel-finder", finder)


def _table_stars(page) -> list[str]:
    cells = page.locator(".tabulator-row .tabulator-cell[tabulator-field='star']")
    return [cells.nth(i).inner_text() for i in range(cells.count())]


def test_switching_the_twin_ranking_to_the_pixel_finder(page, served_pixel, pixel_sample, console_errors,
                                                        artifacts):
    model, data, finder = pixel_sample
    ds = load_spectra(data)
    ids = ds["star"].values
    vectors = load_pixel_finder(finder).vectors(ds)
    pos, _ = TwinIndex(vectors).search(0, 10)  # the page opens on the first star, k = 10
    expected = [str(v) for v in ids[pos]]

    _open(page, served_pixel.url)
    _tab(page, "Twins")
    page.wait_for_selector(".tabulator-row", timeout=20_000)
    latent = _table_stars(page)
    assert latent != expected  # an untrained network's latent does not rank like the finder
    page.get_by_role("button", name="pixel finder").click()
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('rank') === 'pixel'",
                           timeout=10_000)
    try:
        wait_for(lambda: _table_stars(page) == expected, timeout=10)
    except Exception:
        raise AssertionError(f"the table shows {_table_stars(page)}, the finder ranks {expected}") from None
    assert page.get_by_text("Ranked by the pixel finder", exact=False).first.is_visible()
    assert page.locator(".tabulator-col[tabulator-field='P(twin)']").count() == 0
    # the rank-1 row is the star's twin (same group): the comparison plot's title names it
    groups = ds["group"].values
    assert groups[pos[0]] == groups[0]
    page.screenshot(path=artifacts / "app_twins_pixel_finder.png", full_page=True)

    # the permalink reopens the page with the same ranking
    url = page.url
    assert _query(page)["rank"] == "pixel"
    assert _query(page)["tab"] == "2"  # the Twins tab, which the page opens on
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_selector(".tabulator-row", timeout=60_000)
    wait_for(lambda: _table_stars(page) == expected, timeout=10)
    assert not served_pixel.tracebacks(), "server tracebacks:\n" + served_pixel.log()
