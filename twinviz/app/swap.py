"""Swap explorer: Teff/logg sliders drive the decoder D(z_star, u) live, against the truth.

Three stacked panels on the real wavelength axis (Å, chip gaps drawn as gaps), zoomed and
panned together:

1. D(z★, u_slider) in blue with the truth in black — the synthesizer's spectrum for the star's
   own chemistry at the slider's Teff/logg when the data are from the built-in synthesizer;
   otherwise (real stars: no way to synthesise a truth) an observed spectrum when the sliders sit
   on a star's labels (the star's own, or its twin's: "what would this star look like at its
   twin's temperature?").
2. The swap reconstruction D(z_twin, u★) in orange against the star's observed spectrum.
3. The residuals of both.

Observed spectra are drawn with their masked pixels as gaps (NaN breaks the line) and, when the
data carry ``flux_err``, a grey ±1σ band. A star the model cannot speak for (out of its
training range, or reconstructed far worse than its validation stars: twinviz.latents.ood)
gets a red badge with the numbers, as does the compared twin.

Speed: a slider move costs one decoder pass plus one synthesizer spectrum. The sliders skip
Panel's 50 ms debounce and its busy spinner; the update runs inside the slider's own event
(the URL follows only once the sliders rest: app/permalink.py) and ``pn.io.unlocked`` sends
every change of the move — the changed
ColumnDataSource columns as binary float32, the y ranges (fitted here, not in the browser), the
title (with the MSE) — as one Bokeh message, so the browser repaints once and sends nothing back.
The path before this (``TWINVIZ_SWAP_UPDATE=legacy``: debounced, a next-tick callback, one message
per changed model) stays for benchmarks/bench_app.py, which times both in one run. No decimation:
the three panels draw all 7 214 pixels, in 1 px lines (see docs/app.md).
"""
from __future__ import annotations

import html
import os
import time

import numpy as np
import panel as pn
import param
from bokeh.events import Reset
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from twinviz.app import theme
from twinviz.app.session import in_session
from twinviz.latents.errors import flux_mse
from twinviz.app.lines import element_lines
from twinviz.app.state import ExplorerState

__all__ = ["SwapExplorer", "UPDATE_ENV"]

#: Environment variable choosing the slider update path: "fast" (default) or "legacy", the
#: path before issue 12 (debounced slider, one message per changed model), which
#: benchmarks/bench_app.py times in the same run as the fast one.
UPDATE_ENV = "TWINVIZ_SWAP_UPDATE"


class _PromptSlider(pn.widgets.FloatSlider):
    """A FloatSlider whose changes reach the server's callbacks at once (Panel otherwise waits
    50 ms, its debounce, before handling a widget change) and do not flip the page's busy
    spinner (two more messages, and a restyle of the page, per move)."""

    _priority_changes = ["value", "value_throttled"]
    _busy__ignore = ["value", "value_throttled"]

HELP = """**Swap explorer.** The decoder rebuilds the selected star from its latent z★ at any
Teff/logg you set with the sliders (blue), beside the truth (black). Below, the *swap*: the
twin's latent decoded at the star's own labels (orange) against the star's observed spectrum — if
z holds only chemistry, they match. Drag to pan, scroll to zoom (all panels move together); pick
an element to jump to its strongest lines. Real stars: the truth is the observed spectrum (when
the sliders sit on the star's or the twin's labels), masked pixels are gaps, the grey band is
±1σ `flux_err`; a red badge marks a star the model cannot speak for (out of distribution)."""


class SwapExplorer(pn.viewable.Viewer):
    """Sliders → D(z★, u) vs truth; swap reconstruction vs observed; residuals."""

    state = param.ClassSelector(class_=ExplorerState, doc="the session's selection")
    line_window = param.Number(default=8.0, bounds=(0.5, 200), doc="half-width (Å) of a line jump")
    last_update_ms = param.Number(default=0.0, doc="server-side compute of the last update (ms)")
    truth_label = param.String(default="", doc="what the black curve of the top panel is")
    update_mode = param.Selector(default="fast", objects=["fast", "legacy"],
                                 doc="fast: a slider move is handled at once and its changes reach the "
                                     "browser as one message; legacy: the old path (benchmarks only)")

    def __init__(self, state: ExplorerState, **params):
        theme.ensure_extensions()
        params.setdefault("update_mode", os.environ.get(UPDATE_ENV) or "fast")
        super().__init__(state=state, **params)
        d = state.data
        self._gaps = theme.GapLine(d.wavelength, d.segments)
        x = self._gaps.x
        nan = np.full(x.size, np.nan, dtype=np.float32)
        self.sources = {
            # Named so browser tests and the benchmark can find them in the Bokeh document.
            "spectrum": ColumnDataSource({"x": x, "model": nan, "truth": nan}, name="tv-spectrum"),
            "swap": ColumnDataSource({"x": x, "observed": nan, "swap": nan}, name="tv-swap"),
            "residual": ColumnDataSource({"x": x, "model": nan, "swap": nan}, name="tv-residual"),
            # ±1σ flux_err around the observed curves: one patch each, NaN rows break it at gaps.
            "truth_band": ColumnDataSource({"x": [], "y": []}, name="tv-truth-band"),
            "observed_band": ColumnDataSource({"x": [], "y": []}, name="tv-observed-band"),
        }
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        pad = 0.005 * (hi - lo)
        self.full_range = (lo - pad, hi + pad)
        self.x_range = Range1d(*self.full_range, bounds=self.full_range)
        # The y ranges are fitted here, on the server, and travel in the step's one message.
        # Bokeh's auto-ranging (DataRange1d) fits them in the browser, which then sends the new
        # start/end back: two more messages to the server per slider step, which it handles
        # while the browser paints on the same cores. A panel whose y range the visitor zoomed
        # (box zoom) keeps it until "reset", as DataRange1d would.
        self.y_ranges = {name: Range1d(0.0, 1.0) for name in ("spectrum", "swap", "residual")}
        self._y_zoomed: set[str] = set()
        self._fitting_y = False
        self._window = None  # (start, end) Å of a "jump to line": the y ranges fit that window
        self.figures = self._make_figures()
        for name, y_range in self.y_ranges.items():
            y_range.on_change("start", lambda attr, old, new, name=name: self._y_changed(name))
            self.figures[name].on_event(Reset, lambda event, name=name: self._y_reset(name))
        self._make_widgets()
        state.param.watch(self._on_labels, ["teff", "logg"])
        state.param.watch(self._on_star, ["star", "twin", "rank_by"])
        self._update_all()

    # ---- construction -------------------------------------------------------------------
    def _make_figures(self):
        tools = "xpan,xwheel_zoom,box_zoom,reset,save"
        common = dict(x_range=self.x_range, sizing_mode="stretch_width", tools=tools,
                      active_drag="xpan", active_scroll="xwheel_zoom")
        spec = figure(height=250, title="D(z★, u) vs truth", y_axis_label="flux",
                      y_range=self.y_ranges["spectrum"], **common)
        band = dict(color=theme.BAND, fill_alpha=0.3, line_alpha=0.0)
        if self.state.data.flux_err is not None:  # no legend entry for a band noiseless data never draw
            band["legend_label"] = "±1σ flux_err"
        spec.patch("x", "y", source=self.sources["truth_band"], **band)
        src = self.sources["spectrum"]
        width = theme.SPECTRUM_LINE_WIDTH
        spec.line("x", "truth", source=src, color=theme.TRUTH, line_width=width, legend_label="truth")
        spec.line("x", "model", source=src, color=theme.RECONSTRUCTION, line_width=width,
                  legend_label="D(z★, u slider)")
        swap = figure(height=220, title="swap: D(z twin, u★) vs observed star", y_axis_label="flux",
                      y_range=self.y_ranges["swap"], **common)
        swap.patch("x", "y", source=self.sources["observed_band"], **band)
        src = self.sources["swap"]
        swap.line("x", "observed", source=src, color=theme.OBSERVED, line_width=width, legend_label="star observed")
        swap.line("x", "swap", source=src, color=theme.SWAP, line_width=width, legend_label="D(z twin, u★)")
        res = figure(height=170, title="residuals", y_axis_label="Δ flux", x_axis_label="wavelength (Å)",
                     y_range=self.y_ranges["residual"], **common)
        src = self.sources["residual"]
        res.line("x", "model", source=src, color=theme.RESIDUAL, line_width=width, legend_label="D(z★,u) − truth")
        res.line("x", "swap", source=src, color=theme.RESIDUAL_SWAP, line_width=width,
                 legend_label="D(z twin,u★) − observed")
        for fig in (spec, swap, res):
            theme.style_figure(fig)
        for fig in (spec, swap):
            fig.xaxis.major_label_text_font_size = "0px"
        return {"spectrum": spec, "swap": swap, "residual": res}

    def _make_widgets(self):
        d = self.state.data
        t0, t1 = d.teff_range
        g0, g1 = d.logg_range
        slider = pn.widgets.FloatSlider if self.update_mode == "legacy" else _PromptSlider
        # Fixed widths in a wrapping row (see __panel__): stretched in one row with the buttons they
        # shrank to ~90 px at a 1 100 px window.
        self.teff_slider = slider(label="Teff (K)", start=t0, end=t1, step=10, value=self.state.teff, format="0",
                                  width=240)
        self.logg_slider = slider(label="logg (dex)", start=g0, end=g1, step=0.01, value=self.state.logg,
                                  format="0.00", width=240)
        # The decoder runs on release (value_throttled); dragging only moves the handle.
        self.teff_slider.param.watch(lambda e: setattr(self.state, "teff", e.new), "value_throttled")
        self.logg_slider.param.watch(lambda e: setattr(self.state, "logg", e.new), "value_throttled")
        self.own_button = pn.widgets.Button(label="star's own Teff/logg", color="light")
        self.twin_button = pn.widgets.Button(label="twin's Teff/logg", color="light")
        self.own_button.on_click(lambda e: self._set_labels_of(self.state.star))
        self.twin_button.on_click(lambda e: self._set_labels_of(self.state.compared_twin()))
        groups = {"": {"full spectrum": "full"}}
        for el, waves in element_lines(d).items():
            groups[el] = {f"{el} {w:.1f} Å": f"{w:.3f}" for w in waves}
        self.line_select = pn.widgets.Select(label="jump to line", groups=groups, value="full",
                                             visible=len(groups) > 1, width=200)
        self.line_select.param.watch(self._on_line, "value")
        self.mse_text = pn.pane.Markdown("", css_classes=["tv-mse"], margin=(0, 10))
        self.star_text = pn.pane.Markdown("", margin=(0, 10))
        self.ood_badge = pn.pane.HTML("", css_classes=["tv-ood-badge"], visible=False, margin=(0, 10),
                                      sizing_mode="stretch_width",
                                      styles={"background": theme.OOD, "color": "white", "padding": "4px 10px",
                                              "border-radius": "4px", "font-weight": "600"})

    def _set_labels_of(self, position: int):
        d = self.state.data
        self.state.param.update(teff=float(np.clip(d.teff[position], *d.teff_range)),
                                logg=float(np.clip(d.logg[position], *d.logg_range)))

    # ---- updates ------------------------------------------------------------------------
    def _on_labels(self, *events):
        self.teff_slider.value = self.state.teff
        self.logg_slider.value = self.state.logg
        if self.update_mode == "legacy":
            in_session(self._model_changes)
            return
        # At once, before the other watchers (the URL); every change leaves in one message.
        with pn.io.unlocked():
            self._model_changes()

    def _model_changes(self):
        self._update_model_curve()
        self._push()

    def _on_star(self, *events):
        self._update_all()

    def _update_all(self):
        self.teff_slider.value = self.state.teff
        self.logg_slider.value = self.state.logg
        in_session(self._all_changes)

    def _all_changes(self):
        self._update_swap_curve()
        self._update_model_curve()
        self._push()

    def _truth(self, star: int, teff: float, logg: float):
        """(truth [P] at the slider labels or None, what it is, its 1-σ error [P] or None)."""
        d = self.state.data
        curve = d.truth(star, teff, logg)
        if curve is not None:
            return curve, "synthesizer truth (same chemistry)", None
        twin = self.state.compared_twin()
        for pos, who in ((star, "star observed"), (twin, "twin observed")):
            if abs(d.teff[pos] - teff) <= 10.0 and abs(d.logg[pos] - logg) <= 0.01:
                return d.observed(pos), who, d.observed_err(pos)
        (t0, t1), (g0, g1) = d.teff_range, d.logg_range
        if not any(t0 <= d.teff[p] <= t1 and g0 <= d.logg[p] <= g1 for p in (star, twin)):
            return None, "no truth: the star's and the twin's Teff/logg lie outside the model's range", None
        return None, "no truth here (move the sliders to the star's or the twin's labels)", None

    def _update_model_curve(self):
        t_start = time.perf_counter()
        s, d = self.state, self.state.data
        model = d.decode(s.star, s.teff, s.logg)
        truth, self.truth_label, truth_err = self._truth(s.star, s.teff, s.logg)
        gy = self._gaps.y
        band = {"x": [], "y": []}
        if truth_err is not None:
            band = theme.band_patch(self._gaps.x, gy(truth), gy(truth_err))
        if len(band["x"]) or len(self.sources["truth_band"].data["x"]):  # nothing to send for no band
            self.sources["truth_band"].data = band
        if truth is None:
            truth_col = np.full(self._gaps.x.size, np.nan, dtype=np.float32)
            resid = truth_col
            err = float("nan")
        else:
            truth_col = gy(truth)
            resid = gy(model - truth)
            err = flux_mse(model, truth)
        self.sources["spectrum"].data.update(model=gy(model), truth=truth_col)
        self.sources["residual"].data.update(model=resid)
        # no truth here (a real star away from its labels): the star's observed spectrum (not drawn)
        # still sets the flux scale, so a decoder far outside its range does not rescale the panel
        reference = (truth_col, self.sources["truth_band"].data["y"]) if truth is not None else \
            (self.sources["swap"].data["observed"],)
        self._fit_y("spectrum", gy(model), reference=reference)
        self._fit_y("residual", resid, self.sources["residual"].data["swap"])
        self.last_update_ms = (time.perf_counter() - t_start) * 1e3
        # The MSE rides in the panel's title (drawn on the canvas, which repaints anyway): a page
        # text changed per step would cost the browser a restyle and the server a Markdown render.
        mse = f" · MSE {err:.3g}" if np.isfinite(err) else ""
        self.figures["spectrum"].title.text = (f"D(z★, Teff {s.teff:.0f} K, logg {s.logg:.2f}) vs "
                                               f"{self.truth_label}{mse}")

    def _update_swap_curve(self):
        s, d = self.state, self.state.data
        twin = s.compared_twin()
        swap = d.decode(twin, float(d.teff[s.star]), float(d.logg[s.star]))
        observed = d.observed(s.star)  # NaN at masked pixels: gaps in the line
        gy = self._gaps.y
        err = d.observed_err(s.star)
        self.sources["observed_band"].data = ({"x": [], "y": []} if err is None
                                              else theme.band_patch(self._gaps.x, gy(observed), gy(err)))
        self.sources["swap"].data.update(observed=gy(observed), swap=gy(swap))
        self.sources["residual"].data.update(swap=gy(swap - observed))
        self._fit_y("swap", gy(swap), reference=(gy(observed), self.sources["observed_band"].data["y"]))
        self.mse_text.object = f"**MSE** swap vs observed: `{flux_mse(swap, observed):.3g}`"
        self._twin = twin
        tag = " (true twin)" if d.group[twin] >= 0 and d.group[twin] == d.group[s.star] else ""
        self.figures["swap"].title.text = (f"swap: D(z of star {d.star_ids[twin]}{tag}, u★) vs observed "
                                           f"star {d.star_ids[s.star]}")
        self.star_text.object = (
            f"**star {d.star_ids[s.star]}** · Teff {d.teff[s.star]:.0f} K · logg {d.logg[s.star]:.2f}"
            f" &nbsp;|&nbsp; compared with **{d.star_ids[twin]}**{tag} · Teff {d.teff[twin]:.0f} K · "
            f"logg {d.logg[twin]:.2f}")
        badges = [f"⚠ out of distribution — {who} {html.escape(str(d.star_ids[p]))}: {html.escape(why)}"
                  for who, p in (("star", s.star), ("compared twin", twin)) for why in [d.ood_text(p)] if why]
        self.ood_badge.object = "<br>".join(badges)
        self.ood_badge.visible = bool(badges)

    def _fit_y(self, name: str, *columns, reference=()):
        """Fit panel ``name``'s y range (unless the visitor zoomed it): to the ``reference`` curves
        (observed, truth, band), widened for ``columns`` (the decoder's) only a little
        (theme.fitted_limits), within the line window when one was jumped to. Every curve is
        on the gapped x axis."""
        if name in self._y_zoomed:
            return
        x = self._gaps.x
        limits = theme.fitted_limits(theme.in_window(x, reference, self._window),
                                     theme.in_window(x, columns, self._window))
        if limits is None:
            return
        self._fitting_y = True
        try:
            self.y_ranges[name].update(start=limits[0], end=limits[1], reset_start=limits[0], reset_end=limits[1])
        finally:
            self._fitting_y = False

    def _y_changed(self, name: str):
        y_range = self.y_ranges[name]
        # the browser's box zoom; not the browser's "reset", which returns start to reset_start
        # (its Reset event may arrive before or after that change)
        if not self._fitting_y and y_range.start != y_range.reset_start:
            self._y_zoomed.add(name)

    def _y_reset(self, name: str):
        self._y_zoomed.discard(name)

    def _on_line(self, event):
        if event.new in (None, "full"):
            start, end = self.full_range
            self._window = None
        else:
            w = float(event.new)
            start, end = w - self.line_window, w + self.line_window
            self._window = (start, end)
        self._y_zoomed.clear()  # a jump fits every panel's y to the line (or the full spectrum)

        def changes():
            self.x_range.update(start=start, end=end)
            self._refit_y()

        in_session(changes)
        self._push()

    def _refit_y(self):
        """Fit the three panels' y ranges to what their sources hold now."""
        sp, sw, rs = self.sources["spectrum"].data, self.sources["swap"].data, self.sources["residual"].data
        self._fit_y("spectrum", sp["model"], reference=(sp["truth"], self.sources["truth_band"].data["y"],
                                                        *(() if np.isfinite(sp["truth"]).any() else (sw["observed"],))))
        self._fit_y("swap", sw["swap"], reference=(sw["observed"], self.sources["observed_band"].data["y"]))
        self._fit_y("residual", rs["model"], rs["swap"])

    def _push(self):
        # Bokeh models changed in place reach a live server session on their own; a notebook
        # needs an explicit push over its comm.
        if getattr(self, "_plot_pane", None) is not None:
            try:
                pn.io.push_notebook(self._plot_pane)
            except Exception:
                pass

    # ---- view ---------------------------------------------------------------------------
    def __panel__(self):
        from bokeh.layouts import column as bk_column

        if getattr(self, "_layout", None) is None:
            plots = bk_column(list(self.figures.values()), sizing_mode="stretch_width")
            self._plot_pane = pn.pane.Bokeh(plots, sizing_mode="stretch_width")
            controls = pn.FlexBox(self.teff_slider, self.logg_slider, self.own_button, self.twin_button,
                                  self.line_select, flex_wrap="wrap", align_items="end", sizing_mode="stretch_width")
            self._layout = pn.Column(
                theme.help_pane(HELP), controls,
                pn.FlexBox(self.star_text, self.mse_text, flex_wrap="wrap", sizing_mode="stretch_width"),
                self.ood_badge, self._plot_pane, sizing_mode="stretch_width", name="Swap explorer")
        return self._layout
