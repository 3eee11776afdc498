"""Latent map: every star's latent on a 2-D projection (UMAP or PCA), rasterized by datashader.

``rasterize`` (not ``shade``) keeps the aggregate as numbers, so Bokeh draws a real colour bar
and hover shows the mean label under the cursor; re-aggregation on zoom takes tens of ms even at
a million stars. A tap selects the star nearest the tapped point (KD-tree, shared by sessions);
the selected star and its top-k twins are drawn on top.
"""
from __future__ import annotations

import datashader as dsh
from bokeh.models import BasicTicker, FixedTicker, PrintfTickFormatter
import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews.operation.datashader import dynspread, rasterize

from twinviz.app import theme, triage
from twinviz.app.state import PIXEL_TWIN_RANK, RECOVERED_CLUSTER, ExplorerState

__all__ = ["LatentMap", "SPREAD", "spread_sparse"]

HELP = """**Latent map.** Each pixel is the mean label of the stars whose latents project there
(2-D UMAP or PCA of z). A good model shows *no* Teff/logg structure here — colour by Teff or logg
to check — but does sort by chemistry ([Fe/H], abundances). Click to select the nearest star; the
selection (red star) and its top-k twins (orange) are highlighted. Colour by *recovered cluster*
to see the groups HDBSCAN finds in z (noise left blank; colours are cluster numbers) and list the
selected star's cluster below the map."""

LOG_SCALED = {"twin rank", PIXEL_TWIN_RANK, "group size", "recon MSE"}
#: Up to this many stars, hovering shows the star under the cursor (id and value) from an
#: invisible layer of the points themselves; above, the raster's mean value per pixel.
HOVER_POINTS_MAX = 50_000
#: Colours of the recovered clusters: a categorical palette, repeated past its length.
CLUSTER_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                   "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]
MAP_PADDING = 0.04  # of each axis' span on each side: markers at the edge are drawn whole


# datashader's dynspread grows each non-empty pixel by 1, 2, … px until the fraction of non-empty
# pixels with a neighbour (within twice that radius) passes the threshold. Measured on the
# 4 000-star demo (900×520 raster): 0.6 left the PCA map as single pixels (3 839 lit) and spread
# UMAP once; 0.8 with at most 2 px spreads both into readable dots (PCA 26 190, UMAP 71 687 lit);
# a 10⁶-point map is dense already and stays an unspread density at the same setting. "max"
# merges overlapping spread pixels without adding their mean labels together.
SPREAD = dict(threshold=0.8, max_px=2, how="max")


def spread_sparse(raster, dynamic: bool = True):
    """The map's spreading of a rasterized aggregate: sparse maps read as points, dense ones
    are left as they are. The selection markers are drawn on top at exact coordinates."""
    return dynspread(raster, dynamic=dynamic, **SPREAD)


class LatentMap(pn.viewable.Viewer):
    """Rasterized 2-D map of the latents, coloured by a chosen label; tap to select."""

    state = param.ClassSelector(class_=ExplorerState)
    height = param.Integer(default=520)

    def __init__(self, state: ExplorerState, **params):
        theme.ensure_extensions()
        super().__init__(state=state, **params)
        d = state.data
        names = triage.colour_choices(d)  # labels, then OOD / recon MSE / SNR / label source
        if state.colour_by not in names:
            state.colour_by = names[0]
        self.colour_select = pn.widgets.Select.from_param(state.param.colour_by, label="colour by",
                                                          options=names, width=180)
        self.projection_select = pn.widgets.RadioButtonGroup.from_param(
            state.param.projection, options=list(d.projections), width=160)
        # triage: show all stars, or only those in (out of) distribution
        self.show_select = pn.widgets.Select(name="show", options=triage.SHOW, value="all", width=180,
                                             visible=d.ood is not None)
        # ... and only the stars whose colouring lies in a range (recon MSE, SNR, any label)
        self.value_filter = pn.widgets.RangeSlider(name="show values", width=280,
                                                   format=PrintfTickFormatter(format="%.3g"))
        self._reset_value_filter()
        state.param.watch(self._reset_value_filter, ["colour_by"])
        points = hv.DynamicMap(pn.bind(self._points, projection=state.param.projection,
                                       colour_by=state.param.colour_by, show=self.show_select,
                                       within=self.value_filter.param.value))
        raster = rasterize(points, aggregator=dsh.mean("value"), width=500, height=400, dynamic=True)
        self.hover_points = d.n_stars <= HOVER_POINTS_MAX
        self.raster = spread_sparse(raster).opts(
            cmap=theme.MAP_CMAP, colorbar=True, tools=["tap"] if self.hover_points else ["hover", "tap"],
            responsive=True,
            height=self.height, min_width=400, active_tools=["wheel_zoom"],
            framewise=False, default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
            hooks=[self._colour_bar_title])
        colour = state.param.colour_by
        self.raster = self.raster.apply(self._style, colour_by=colour, projection=state.param.projection)
        highlight = hv.DynamicMap(pn.bind(self._highlight, star=state.param.star, k=state.param.k,
                                          projection=state.param.projection, twin=state.param.twin,
                                          rank_by=state.param.rank_by))
        self.tap = hv.streams.Tap(source=self.raster, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        layers = self.raster * highlight
        if self.hover_points:
            layers = self.raster * hv.DynamicMap(pn.bind(self._hover_layer, projection=state.param.projection,
                                                         colour_by=colour, show=self.show_select,
                                                         within=self.value_filter.param.value)) * highlight
        self.plot = layers.opts(hv.opts.Overlay(responsive=True, height=self.height))

    # ---- colouring -----------------------------------------------------------------------
    def _style(self, element, colour_by: str, projection: str):
        """The raster's colouring and extent for the session's colour-by and map."""
        return element.opts(clabel=colour_by, cnorm="log" if colour_by in LOG_SCALED else "linear",
                            cmap=self._cmap(colour_by), clim=self._clim(colour_by),
                            color_levels=self._levels(colour_by),
                            xlim=self._limits(projection, 0), ylim=self._limits(projection, 1))

    def _n_clusters(self) -> int:
        found = self.state.data.recovered_clusters()
        return max(int(found.max()) + 1, 1) if found.size else 1

    def _cmap(self, colour_by: str):
        """Recovered clusters: one categorical colour per cluster; anything else: the map's cmap."""
        if colour_by != RECOVERED_CLUSTER:
            return theme.MAP_CMAP
        n = self._n_clusters()
        return [CLUSTER_PALETTE[i % len(CLUSTER_PALETTE)] for i in range(n)]

    def _clim(self, colour_by: str):
        if colour_by != RECOVERED_CLUSTER:
            return (np.nan, np.nan)
        return (-0.5, self._n_clusters() - 0.5)  # each cluster number in the middle of its colour

    def _levels(self, colour_by: str):
        return self._n_clusters() if colour_by == RECOVERED_CLUSTER else None

    def _limits(self, projection: str, axis: int):
        values = self.state.data.projections[projection][:, axis]
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = MAP_PADDING * (hi - lo) if hi > lo else 1.0
        return (lo - pad, hi + pad)

    def _reset_value_filter(self, *events) -> None:
        """The range filter spans the new colouring's known values (all stars shown)."""
        span = triage.value_range(self.state.data, self.state.colour_by) or (0.0, 1.0)
        lo, hi = span if span[1] > span[0] else (span[0], span[0] + 1.0)
        step = (hi - lo) / 200
        self.value_filter.param.update(start=lo, end=hi, step=step, value=(lo, hi))

    def _hover_layer(self, projection: str, colour_by: str, show: str = "all", within=None):
        """Invisible points under the cursor's hover: the star's id and its value (no NaN)."""
        d = self.state.data
        keep = triage.kept(d, colour_by, show, within)
        xy = d.projections[projection][keep]
        value = triage.colour_values(d, colour_by)[keep]
        text = np.where(np.isfinite(value), np.char.mod("%.4g", np.nan_to_num(value)), "unknown")
        if colour_by == RECOVERED_CLUSTER:
            text = np.where(np.isfinite(value), np.char.mod("%d", np.nan_to_num(value).astype(int)), "noise")
        text = np.char.add(f"{colour_by}: ", text.astype(str))  # the tooltip is built once: name in the value
        return hv.Points((xy[:, 0], xy[:, 1], d.star_ids[keep].astype(str), text), kdims=["x", "y"],
                         vdims=["star", "value"]).opts(
            alpha=0.0, size=7, tools=["hover"], hover_tooltips=[("star", "@star"), ("colour", "@value")],
            nonselection_alpha=0.0, selection_alpha=0.0)

    def _colour_bar_title(self, plot, element):
        """HoloViews sets the colour bar's title when the plot is first drawn only; keep it on
        the current colouring (the hook runs on every update)."""
        bar = plot.handles.get("colorbar")
        if bar is None:
            return
        if bar.title != self.state.colour_by:
            bar.title = self.state.colour_by
        # recovered clusters: ticks on the cluster numbers, one colour each (no 0.5, 1.5 …)
        categorical = self.state.colour_by == RECOVERED_CLUSTER
        n = self._n_clusters() if categorical else 0
        ticks = list(range(0, n, max(1, n // 20))) if categorical else None
        if categorical and getattr(bar.ticker, "ticks", None) != ticks:
            bar.ticker = FixedTicker(ticks=ticks)
        elif not categorical and isinstance(bar.ticker, FixedTicker):
            bar.ticker = BasicTicker()

    def _points(self, projection: str, colour_by: str, show: str = "all", within=None):
        d = self.state.data
        keep = triage.kept(d, colour_by, show, within)
        xy, value = d.projections[projection][keep], triage.colour_values(d, colour_by)[keep]
        label = "UMAP" if projection == "umap" else "PC"
        return hv.Points((xy[:, 0], xy[:, 1], value),
                         kdims=[hv.Dimension("x", label=f"{label} 1"), hv.Dimension("y", label=f"{label} 2")],
                         vdims=[hv.Dimension("value", label=colour_by)])

    def _highlight(self, star: int, k: int, projection: str, twin: int, rank_by: str = "latent"):
        d = self.state.data
        xy = d.projections[projection]
        pos, _ = d.neighbours(star, k, rank_by)
        twins = hv.Points((xy[pos, 0], xy[pos, 1], d.star_ids[pos]), kdims=["x", "y"], vdims=["star"],
                          label="twins").opts(color=theme.TWIN, size=8, line_color="black", line_width=0.6,
                                              tools=["hover"])
        compared = self.state.compared_twin()
        sel = hv.Points((xy[[star, compared], 0], xy[[star, compared], 1], ["selected", "compared"]),
                        kdims=["x", "y"], vdims=["role"]).opts(
            color="role", cmap={"selected": theme.SELECTED, "compared": theme.TWIN}, marker="star",
            size=18, line_color="black", line_width=0.8, show_legend=False)
        return twins * sel

    def _on_tap(self, x=None, y=None, **kwargs):
        if x is None or y is None or not np.isfinite(x) or not np.isfinite(y):
            return
        self.state.star = self.state.data.nearest_in_projection(self.state.projection, x, y)

    def select_at(self, x: float, y: float) -> None:
        """What a tap at map coordinates (x, y) does (also for tests and scripts)."""
        self.tap.event(x=x, y=y)

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            self._layout = pn.Column(
                theme.help_pane(HELP),
                pn.FlexBox(self.colour_select, self.projection_select, self.show_select, self.value_filter,
                           flex_wrap="wrap", align_items="end"),
                pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", linked_axes=False),
                sizing_mode="stretch_width", name="Latent map")
        return self._layout
