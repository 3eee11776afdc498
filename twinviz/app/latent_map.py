"""Latent map: every star's latent on a 2-D projection (UMAP or PCA), rasterized by datashader.

``rasterize`` (not ``shade``) keeps the aggregate as numbers, so Bokeh draws a real colour bar
and hover shows the mean label under the cursor; re-aggregation on zoom takes tens of ms even at
a million stars. A tap selects the star nearest the tapped point (KD-tree, shared by sessions);
the selected star and its top-k twins are drawn on top.
"""
from __future__ import annotations

import datashader as dsh
import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews.operation.datashader import dynspread, rasterize

from twinviz.app import theme
from twinviz.app.state import PIXEL_TWIN_RANK, ExplorerState

__all__ = ["LatentMap", "SPREAD", "spread_sparse"]

HELP = """**Latent map.** Each pixel is the mean label of the stars whose latents project there
(2-D UMAP or PCA of z). A good model shows *no* Teff/logg structure here — colour by Teff or logg
to check — but does sort by chemistry ([Fe/H], abundances). Click to select the nearest star; the
selection (red star) and its top-k twins (orange) are highlighted. Colour by *recovered cluster*
to see the groups HDBSCAN finds in z (noise left blank; colours are cluster numbers) and list the
selected star's cluster below the map."""

LOG_SCALED = {"twin rank", PIXEL_TWIN_RANK, "group size"}


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
        names = d.label_names()
        if state.colour_by not in names:
            state.colour_by = names[0]
        self.colour_select = pn.widgets.Select.from_param(state.param.colour_by, label="colour by",
                                                          options=names, width=180)
        self.projection_select = pn.widgets.RadioButtonGroup.from_param(
            state.param.projection, options=list(d.projections), width=160)
        points = hv.DynamicMap(pn.bind(self._points, projection=state.param.projection,
                                       colour_by=state.param.colour_by))
        raster = rasterize(points, aggregator=dsh.mean("value"), width=500, height=400, dynamic=True)
        self.raster = spread_sparse(raster).opts(
            cmap=theme.MAP_CMAP, colorbar=True, tools=["hover", "tap"], responsive=True,
            height=self.height, min_width=400, active_tools=["wheel_zoom"],
            framewise=False, default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
            hooks=[self._colour_bar_title])
        self.raster = self.raster.apply.opts(clabel=state.param.colour_by,
                                             cnorm=pn.bind(lambda c: "log" if c in LOG_SCALED else "linear",
                                                           state.param.colour_by))
        highlight = hv.DynamicMap(pn.bind(self._highlight, star=state.param.star, k=state.param.k,
                                          projection=state.param.projection, twin=state.param.twin,
                                          rank_by=state.param.rank_by))
        self.tap = hv.streams.Tap(source=self.raster, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)
        self.plot = (self.raster * highlight).opts(hv.opts.Overlay(responsive=True, height=self.height))

    def _colour_bar_title(self, plot, element):
        """HoloViews sets the colour bar's title when the plot is first drawn only; keep it on
        the current colouring (the hook runs on every update)."""
        bar = plot.handles.get("colorbar")
        if bar is not None and bar.title != self.state.colour_by:
            bar.title = self.state.colour_by

    def _points(self, projection: str, colour_by: str):
        d = self.state.data
        xy = d.projections[projection]
        value = d.label_values(colour_by)
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
                pn.Row(self.colour_select, self.projection_select),
                pn.pane.HoloViews(self.plot, sizing_mode="stretch_width", linked_axes=False),
                sizing_mode="stretch_width", name="Latent map")
        return self._layout
