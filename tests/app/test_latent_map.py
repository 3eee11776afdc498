"""Latent map: rasterized points coloured by a label; a tap selects the nearest star."""
import holoviews as hv
import bokeh.models
import numpy as np
import panel as pn

from twinviz.app.latent_map import LatentMap


def test_a_tap_selects_the_nearest_star(state):
    view = LatentMap(state)
    xy = state.data.projections[state.projection]
    target = 33
    view.select_at(float(xy[target, 0]) + 1e-4, float(xy[target, 1]) - 1e-4)
    assert state.star == target


def test_colour_by_offers_labels_abundances_group_size_and_twin_rank(state):
    view = LatentMap(state)
    options = view.colour_select.options
    for name in ("Teff", "logg", "[Fe/H]", "[Mg/Fe]", "group size", "twin rank"):
        assert name in options


def test_points_carry_the_chosen_label(state):
    view = LatentMap(state)
    pts = view._points("pca", "[Fe/H]")
    np.testing.assert_allclose(pts.dimension_values("value"), state.data.fe_h)
    ranks = view._points("pca", "twin rank").dimension_values("value")
    assert np.nanmin(ranks) >= 1


def test_highlight_shows_the_star_and_its_k_twins(state):
    view = LatentMap(state)
    overlay = view._highlight(star=3, k=5, projection="pca", twin=-1)
    twins, sel = overlay.values()
    assert len(twins) == 5 and len(sel) == 2


def test_the_map_renders_with_datashader(state):
    view = LatentMap(state)
    root = pn.panel(view).get_root()
    assert root.select_one({"type": bokeh.models.Plot}) is not None  # the map became a Bokeh plot
    img = hv.render(view.plot)  # a bokeh figure with an image glyph (the raster) and a colour bar
    assert any(type(r.glyph).__name__ == "Image" for r in img.renderers)


def _lit(image) -> int:
    return int(np.isfinite(image.dimension_values(2, flat=False)).sum())


def _raster(n: int):
    import datashader as dsh
    from holoviews.operation.datashader import rasterize

    from twinviz.testing import synthetic_latents

    _, xy, which = synthetic_latents(n, seed=1)
    points = hv.Points((xy[:, 0], xy[:, 1], which.astype(np.float32)), kdims=["x", "y"], vdims=["value"])
    return rasterize(points, aggregator=dsh.mean("value"), width=900, height=520, dynamic=False)


def test_a_sparse_map_is_spread_into_points_and_a_dense_one_left_as_a_density():
    from twinviz.app.latent_map import spread_sparse

    sparse = _raster(4000)
    spread = spread_sparse(sparse, dynamic=False)
    assert _lit(spread) > 3 * _lit(sparse)  # single pixels became dots
    dense = _raster(1_000_000)
    assert _lit(spread_sparse(dense, dynamic=False)) == _lit(dense)  # a density stays as it is


def test_the_selection_markers_sit_at_the_exact_coordinates(state):
    view = LatentMap(state)
    xy = state.data.projections["pca"]
    twins, sel = view._highlight(star=7, k=5, projection="pca", twin=-1).values()
    np.testing.assert_array_equal(sel.dimension_values("x")[0], xy[7, 0])
    np.testing.assert_array_equal(sel.dimension_values("y")[0], xy[7, 1])
    pos, _ = state.data.neighbours(7, 5)
    np.testing.assert_array_equal(twins.dimension_values("x"), xy[pos, 0])


def test_the_colour_bar_title_follows_the_colouring(state):
    view = LatentMap(state)
    plot = hv.renderer("bokeh").get_plot(view.plot)

    def title():
        bars = [sub.handles["colorbar"] for sub in plot.subplots.values() if "colorbar" in sub.handles]
        assert len(bars) == 1
        return bars[0].title

    assert title() == state.colour_by == "Teff"
    state.colour_by = "logg"
    assert title() == "logg"
    state.colour_by = "recovered cluster"
    assert title() == "recovered cluster"


def _rendered(view):
    return hv.renderer("bokeh").get_plot(view.plot)


def test_hover_names_the_star_and_never_shows_nan(state):
    view = LatentMap(state)
    fig = _rendered(view).state
    tips = [t.tooltips for t in fig.select(bokeh.models.HoverTool)]
    assert [("star", "@{star}"), ("colour", "@{value}")] in tips
    assert not any(("x_y value" in str(t)) or ("@image" in str(t)) for t in tips)  # no raster mean (NaN off the points)
    values = view._hover_layer("pca", "recovered cluster").dimension_values("value")
    assert not any("nan" in v.lower() for v in values)


def test_recovered_clusters_get_a_categorical_colour_bar(state):
    view = LatentMap(state)
    plot = _rendered(view)
    state.colour_by = "recovered cluster"
    bar = next(sub.handles["colorbar"] for sub in plot.subplots.values() if "colorbar" in sub.handles)
    n = int(state.data.recovered_clusters().max()) + 1
    assert isinstance(bar.ticker, bokeh.models.FixedTicker) and bar.ticker.ticks[0] == 0
    assert all(float(t).is_integer() for t in bar.ticker.ticks)  # no ticks at 0.5, 1.5
    assert len(bar.color_mapper.palette) == n  # one colour per cluster
    assert (bar.color_mapper.low, bar.color_mapper.high) == (-0.5, n - 0.5)


def test_markers_at_the_edge_of_the_map_are_not_cut(state):
    view = LatentMap(state)
    fig = _rendered(view).state
    x = state.data.projections[state.projection][:, 0]
    y = state.data.projections[state.projection][:, 1]
    assert fig.x_range.start < x.min() - 0.02 * np.ptp(x) and fig.x_range.end > x.max() + 0.02 * np.ptp(x)
    assert fig.y_range.start < y.min() - 0.02 * np.ptp(y) and fig.y_range.end > y.max() + 0.02 * np.ptp(y)
