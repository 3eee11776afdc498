"""The app's second ranking: a pixel twin finder (`--pixel-finder DIR`) in the Twins tab, the
compared twin, the swap explorer and the map's twin markers — on real netCDF files and a finder
folder written by twinviz.evaluation.pixel_finder."""
from __future__ import annotations

import numpy as np
import pytest

import twinviz.app
from twinviz.app.loading import cached_pixel_path, clear_cache, load_app_data
from twinviz.app.metrics import MetricsView
from twinviz.app.state import PIXEL_TWIN_RANK, RANK_LATENT, RANK_PIXEL, AppDataError, ExplorerState
from twinviz.app.swap import SwapExplorer
from twinviz.app.twin_table import TwinTable, neighbour_table
from twinviz.spectra.dataset import load_spectra
from twinviz.testing import make_pixel_sample
from twinviz.twins.index import TwinIndex
from twinviz.evaluation.pixel_finder import PixelTwinFinder, load_pixel_finder


@pytest.fixture(scope="module")
def pixel_paths(tmp_path_factory):
    return make_pixel_sample(tmp_path_factory.mktemp("pixel-app"))


@pytest.fixture
def pixel_data(pixel_paths):
    clear_cache()
    model, data, finder = pixel_paths
    yield load_app_data(model, data, pixel_finder=finder)
    clear_cache()


def test_the_app_argument_reaches_the_loader(pixel_paths):
    model, data, finder = pixel_paths
    inputs, _ = twinviz.app.split_args(twinviz.app.main_args(
        ["--model", str(model), "--data", str(data), "--pixel-finder", str(finder)]))
    assert inputs == {"model": str(model), "data": str(data), "latents": None, "pixel_finder": str(finder)}


def test_the_stars_are_placed_in_the_finders_metric_and_cached_beside_the_data(pixel_paths, pixel_data, monkeypatch):
    model, data, finder = pixel_paths
    expected = load_pixel_finder(finder).vectors(load_spectra(data))
    np.testing.assert_allclose(pixel_data.pixel_z, expected, rtol=1e-5, atol=1e-6)
    cache = cached_pixel_path(data, finder)
    assert cache.parent == data.parent and cache.exists()
    clear_cache()

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed although the cache holds these stars")

    monkeypatch.setattr(PixelTwinFinder, "vectors", refuse)
    again = load_app_data(model, data, pixel_finder=finder)
    np.testing.assert_array_equal(again.pixel_z, pixel_data.pixel_z)


def test_the_twin_table_ranks_by_the_finder_when_asked(pixel_data):
    state = ExplorerState(pixel_data, star=4)
    view = TwinTable(state)
    assert view.rank_select is not None and view.rank_select.value == RANK_LATENT
    latent_first = view.table.value["star"].tolist()
    state.rank_by = RANK_PIXEL
    table = view.table.value
    pos, dist = TwinIndex(pixel_data.pixel_z).search(4, state.k)
    assert table["star"].tolist() == [str(v) for v in pixel_data.star_ids[pos]]
    np.testing.assert_allclose(table["distance"], np.round(dist, 4))
    assert table["star"].tolist() != latent_first
    assert "P(twin)" not in table.columns and "pixel finder" in view.p_note.object
    assert "(pixel finder)" in view.figures["spectrum"].title.text
    # the finder finds these low-d twins; the untrained network's latent does not
    ranks = {how: TwinIndex(pixel_data.twin_vectors(how)).twin_ranks(pixel_data.group) for how in (RANK_LATENT, RANK_PIXEL)}
    assert np.mean(ranks[RANK_PIXEL] == 1) > 0.8 > np.mean(ranks[RANK_LATENT] == 1)


def test_switching_the_ranking_moves_the_compared_twin_everywhere(pixel_data):
    data = pixel_data
    ranks_latent = TwinIndex(data.twin_vectors(RANK_LATENT)).twin_ranks(data.group)
    star = int(np.flatnonzero(ranks_latent > 1)[0])  # a star whose latent nearest is not its twin
    state = ExplorerState(data, star=star)
    swap = SwapExplorer(state)
    state.twin = int(data.neighbours(star, 3)[0][2])  # an explicit choice, then the switch
    state.rank_by = RANK_PIXEL
    assert state.twin == -1
    mate = data.true_twin(star, RANK_PIXEL)
    assert state.compared_twin() == mate and data.group[mate] == data.group[star]
    swap_curve = np.asarray(swap.sources["swap"].data["swap"], dtype=float)
    expected = data.decode(mate, float(data.teff[star]), float(data.logg[star]))
    np.testing.assert_allclose(swap_curve[np.isfinite(swap_curve)], expected, atol=1e-6)
    assert str(data.star_ids[mate]) in swap.figures["swap"].title.text


def test_stars_outside_the_finders_training_labels_are_flagged(pixel_data):
    outside = pixel_data.pixel_outside()
    assert outside.shape == (pixel_data.n_stars,)
    lo, hi = pixel_data.pixel_finder.teff_range
    expected = (pixel_data.teff < lo) | (pixel_data.teff > hi) | (pixel_data.logg < pixel_data.pixel_finder.logg_range[0]) \
        | (pixel_data.logg > pixel_data.pixel_finder.logg_range[1])
    np.testing.assert_array_equal(outside, expected)
    star = 0
    table = neighbour_table(pixel_data, star, pixel_data.n_stars - 1, RANK_PIXEL)
    pos = table.attrs["positions"]
    assert list(table["OOD"] != "") == list(outside[pos])


def test_without_a_finder_there_is_no_switch_and_pixel_falls_back_to_latent(app_data):
    state = ExplorerState(app_data, rank_by=RANK_PIXEL)  # e.g. a permalink from a server that had one
    view = TwinTable(state)
    assert view.rank_select is None
    pos, _ = app_data.neighbours(state.star, state.k)
    assert view.table.value["star"].tolist() == [str(v) for v in app_data.star_ids[pos]]


def test_a_folder_that_is_not_a_finder_gives_a_readable_error(pixel_paths, tmp_path):
    model, data, _ = pixel_paths
    clear_cache()
    with pytest.raises(AppDataError, match=r"--pixel-finder: .*not a pixel finder folder.*Fix"):
        load_app_data(model, data, pixel_finder=tmp_path)
    clear_cache()


def test_the_map_can_colour_by_the_finders_twin_ranks(pixel_data):
    assert PIXEL_TWIN_RANK in pixel_data.label_names()
    expected = TwinIndex(pixel_data.pixel_z).twin_ranks(pixel_data.group).astype(np.float32)
    np.testing.assert_array_equal(pixel_data.label_values(PIXEL_TWIN_RANK), expected)


def test_the_metrics_tab_adds_the_finders_row_on_the_same_stars(pixel_data):
    n = pixel_data.n_stars
    report = {"n_stars": n, "n_with_twin": n, "thresholds": {"rank_0p1": n // 1000, "rank_1": n // 100},
              "methods": [{"label": "fader", "mse": 1e-4, "swapped_mse": 2e-4, "rank1": 0.1, "within_0p1": 0.1,
                           "within_1": 0.3}]}
    view = MetricsView(ExplorerState(pixel_data))
    view._render(report)
    frame = view.table.value
    assert frame["method"].tolist() == ["fader (this model/data)", "pixel finder: pixel-finder (this model/data)"]
    ranks = TwinIndex(pixel_data.pixel_z).twin_ranks(pixel_data.group)
    assert frame["rank 1"].iloc[1] == f"{100 * np.mean(ranks[ranks >= 1] == 1):.1f} %"
    assert frame["MSE"].iloc[1] == ""
    view._render({**report, "n_stars": n + 1})  # a report on other stars: no row of the finder
    assert len(view.table.value) == 1
    view._render(None)  # no cached report: the button, and the finder's row on its own
    assert view.compute_button.visible and not view.table.visible
    assert view.finder.objects[1].value["method"].tolist() == ["pixel finder: pixel-finder (this model/data)"]


def test_the_rank_curve_draws_every_method_even_past_the_palette():
    from bokeh.models import GlyphRenderer

    from twinviz.app.metrics import METHOD_COLOURS, rank_curve_figure

    n = len(METHOD_COLOURS) + 4  # a suite report has ten rows with curves, the app's finder adds one
    curve = {"rank": [1, 10, 100], "fraction": [0.2, 0.5, 1.0]}
    fig = rank_curve_figure({"n_stars": 100, "methods": [{"label": f"m{i}", "cumulative_rank_curve": curve}
                                                          for i in range(n)]})
    lines = [r for r in fig.renderers if isinstance(r, GlyphRenderer) and r.glyph.__class__.__name__ == "Line"]
    assert len(lines) == n
    styles = {(r.glyph.line_color, tuple(r.glyph.line_dash)) for r in lines}
    assert len(styles) == n  # no two methods look alike
