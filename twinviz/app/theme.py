"""Colours, figure styling and static assets shared by the views (no view logic, no data).

Okabe–Ito colours (colour-blind safe): truth/observed black, the decoder's reconstruction
blue, the swap reconstruction and compared twins orange, residuals green and purple.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

TRUTH = "#000000"
BAND = "#7f7f7f"        # ±1σ flux_err band around observed spectra
OOD = "#B00020"         # the out-of-distribution badge
OBSERVED = "#000000"
RECONSTRUCTION = "#0072B2"
SWAP = "#E69F00"
TWIN = "#E69F00"
RESIDUAL = "#009E73"
RESIDUAL_SWAP = "#CC79A7"
SELECTED = "#D55E00"
MAP_CMAP = "viridis"
#: Width (CSS px) of every spectrum line (7 214 points). One pixel on purpose: the browser's
#: software rasteriser (Skia, no GPU) draws strokes of at most one device pixel as hairlines,
#: and a slider step's repaint then costs about a third of what 1.2–1.4 px strokes cost
#: (benchmarks/bench_app.py; docs/app.md "What a slider step costs").
SPECTRUM_LINE_WIDTH = 1.0


class GapLine:
    """Insert NaN between the chips of a wavelength grid so lines break across chip gaps.

    ``GapLine(wavelength, segments).x`` is the wavelength axis with gaps;
    ``.y(values)`` puts any per-pixel array on it (vectorised, no copy of the index each call).
    """

    def __init__(self, wavelength: np.ndarray, segments):
        starts = [int(a) for a, _ in segments][1:]
        self._where = np.asarray(starts, dtype=np.int64)
        self.x = self.y(np.asarray(wavelength, dtype=np.float64))

    def y(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype.kind != "f":
            values = values.astype(np.float32)
        if self._where.size == 0:
            return values
        return np.insert(values, self._where, np.nan)


def band_patch(x, centre, err) -> dict:
    """``{"x": …, "y": …}`` of one Bokeh ``patch`` covering centre ± err, broken (NaN rows) wherever
    x, centre or err is not finite — masked pixels and chip gaps stay visible as holes. Each
    finite run becomes its own polygon: along the upper edge, back along the lower one."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    e = np.asarray(err, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(c) & np.isfinite(e)
    if not ok.any():
        return {"x": np.empty(0), "y": np.empty(0)}
    edges = np.diff(np.concatenate(([0], ok.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    xs, ys = [], []
    for a, b in zip(starts, stops):
        xs += [x[a:b], x[a:b][::-1], [np.nan]]
        ys += [c[a:b] + e[a:b], (c[a:b] - e[a:b])[::-1], [np.nan]]
    return {"x": np.concatenate(xs)[:-1], "y": np.concatenate(ys)[:-1]}


def padded_limits(*columns, padding: float = 0.1):
    """(start, end) spanning the finite values of ``columns`` plus ``padding`` of the span (half
    each side; Bokeh's DataRange1d default), or None when no value is finite."""
    lo, hi = np.inf, -np.inf
    for col in columns:
        col = np.asarray(col)
        finite = col[np.isfinite(col)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if lo > hi:
        return None
    span = hi - lo
    pad = 0.5 * padding * span if span > 0 else max(abs(hi), 1.0) * 0.05
    return lo - pad, hi + pad


def fitted_limits(reference, others, allowance: float = 0.25, padding: float = 0.1):
    """(start, end) for a panel that shows a reference curve (observed spectrum, truth, its band)
    beside model curves: the reference's span, widened for the others only up to ``allowance``
    of that span on each side, then padded as :func:`padded_limits`. A decoder far outside its
    training range (−1.5 … 3.5 for a normalised spectrum) thus no longer flattens the observed
    spectrum. Without finite reference values: the others' span (:func:`padded_limits`)."""
    ref = padded_limits(*reference, padding=0.0)
    if ref is None:
        return padded_limits(*others, padding=padding)
    lo, hi = ref
    span = hi - lo
    rest = padded_limits(*others, padding=0.0)
    if rest is not None:
        lo = min(lo, max(rest[0], lo - allowance * span))
        hi = max(hi, min(rest[1], hi + allowance * span))
    return padded_limits(np.array([lo, hi]), padding=padding)


def in_window(x, columns, window):
    """``columns`` (each on the x axis ``x``) with NaN outside ``window`` = (start, end); as
    given when ``window`` is None."""
    if window is None:
        return columns
    x = np.asarray(x)
    outside = ~((x >= window[0]) & (x <= window[1]))
    out = []
    for col in columns:
        col = np.array(col, dtype=np.float64)
        if col.shape == x.shape:  # a curve on x; anything else (a band's patch) has no place here
            col[outside] = np.nan
            out.append(col)
    return out


def compact_table(wrap=(), max_width: int = 170, sort: bool = False) -> dict:
    """Tabulator options that keep a table's headers inside a 1 100 px window: smaller font and
    padding, wrapping headers, columns at most ``max_width`` px with the ``wrap`` columns' text
    wrapped (not cut), and no sort arrows unless ``sort``."""
    css = (".tabulator { font-size: 12.5px; } .tabulator-cell { padding: 4px 6px !important; } "
           ".tabulator-col-content { padding: 4px 6px !important; } .tabulator-col-title { font-size: 12.5px; }")
    return {"configuration": {"columnDefaults": {"headerSort": sort, "maxWidth": max_width, "headerWordWrap": True}},
            "formatters": {name: {"type": "textarea"} for name in wrap}, "stylesheets": [css]}


def style_figure(fig) -> None:
    """Common look of the spectrum panels."""
    fig.toolbar.logo = None
    fig.xaxis.axis_label_text_font_style = "normal"
    fig.yaxis.axis_label_text_font_style = "normal"
    fig.title.text_font_style = "normal"
    fig.title.text_font_size = "13px"
    fig.grid.grid_line_alpha = 0.35
    fig.min_border_left = 60
    if fig.legend:
        fig.legend.click_policy = "hide"
        fig.legend.location = "bottom_right"
        fig.legend.background_fill_alpha = 0.75
        fig.legend.label_text_font_size = "11px"
        fig.legend.spacing = 0
        fig.legend.padding = 4


# The app's static files (logo, CSS) are package data in twinviz/app/static/ (pyproject.toml
# declares them), so an installed twinviz has them too.
ASSETS = resources.files("twinviz.app") / "static"
HELP_STYLE = {"color": "#3d4a55", "font-size": "0.92em", "border-left": "3px solid #56B4E9",
              "padding-left": "0.6em", "max-width": "72em"}


def help_pane(text: str):
    """The short how-to-read-this text at the top of each tab."""
    import panel as pn

    return pn.pane.Markdown(text, styles=HELP_STYLE, sizing_mode="stretch_width", margin=(0, 10, 5, 10))


def asset_text(name: str) -> str | None:
    """Contents of a file in the package's ``static/`` folder (None when it is missing)."""
    path = ASSETS / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def logo_path() -> str | None:
    """Path of the logo SVG (the template embeds local files); None when it is missing or the
    package is not on a file system (a zip import has no path to give)."""
    path = ASSETS / "logo.svg"
    return str(path) if isinstance(path, Path) and path.is_file() else None


def ensure_extensions() -> None:
    """Load Panel's JS for the widgets used (Tabulator) and HoloViews' Bokeh backend, once."""
    import holoviews as hv
    import panel as pn

    if "tabulator" not in pn.extension._loaded_extensions:
        pn.extension("tabulator", notifications=True, loading_indicator=True)
    if hv.Store.current_backend != "bokeh" or not hv.Store.renderers:
        hv.extension("bokeh", logo=False)
