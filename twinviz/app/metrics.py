"""Metrics view: the loaded model's Table-1 numbers and twin-rank curve beside the paper's.

The numbers come from :func:`twinviz.evaluation.compute.evaluate`; its report is cached as JSON beside
the latents (the demo ships one), so opening the tab costs nothing. Without a cached report a
button computes it in a worker thread (seconds to minutes) with a loading indicator.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

import pandas as pd
import numpy as np
import panel as pn
import param
from bokeh.models import HoverTool, Label, Span
from bokeh.plotting import figure

from twinviz.app import theme
from twinviz.app.session import current_document, in_session
from twinviz.atomic import write_json_atomic
from twinviz.app.state import RANK_PIXEL, ExplorerState

log = logging.getLogger(__name__)

__all__ = ["MetricsView", "load_report", "pixel_finder_method", "report_frame"]

PIXEL_ROW_MAX_STARS = 200_000  # above this the finder's twin ranks (O(N²)) are not computed in the app

HELP = """**Metrics.** Table 1 of de Mijolla, Ness & Viti (2019) for the loaded model on the loaded
data: reconstruction MSE, swapped MSE (twin's latent, star's labels), and the fraction of stars
whose twin is their nearest neighbour (rank 1), within the closest 0.1 % and 1 %. The published
rows used Turbospectrum spectra, 25 000 stars: compare trends, not digits. An app started with
a pixel twin finder adds its row: its twin ranks on the same stars (no MSE: it has no decoder)."""

METHOD_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"]
METHOD_DASHES = ["solid", "dashed", "dotdash"]


def load_report(path) -> dict | None:
    """The evaluation report (``EvaluationReport.to_dict()``) at ``path``, or None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning("unreadable metrics report %s: %s", path, exc)
        return None


def _pct(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _num(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"


def pixel_finder_method(data) -> dict | None:
    """A report row for the app's pixel twin finder on the loaded stars (its twin ranks, exact
    over all N), or None without a finder, without known twins, or above PIXEL_ROW_MAX_STARS."""
    from twinviz.twins.ranks import cumulative_rank_curve, rank_fractions

    if not data.has_pixel_finder or not np.any(data.group >= 0) or data.n_stars > PIXEL_ROW_MAX_STARS:
        return None
    ranks = data.twin_ranks(RANK_PIXEL)
    f = rank_fractions(ranks, data.n_stars)
    r, frac = cumulative_rank_curve(ranks, data.n_stars, n_points=200)
    name = data.pixel_finder.directory.name if data.pixel_finder.directory else "pixel finder"
    return {"label": f"pixel finder: {name}", "mse": None, "swapped_mse": None, "rank1": f.rank1,
            "within_0p1": f.within_0p1, "within_1": f.within_1,
            "cumulative_rank_curve": {"rank": r.tolist(), "fraction": [float(v) for v in frac]}}


def report_frame(report: dict) -> pd.DataFrame:
    """Table-1 rows: ours first, then the published ones."""
    rows = []
    for m in report.get("methods", []):
        rows.append({"method": f"{m['label']} (this model/data)", "MSE": _num(m.get("mse")),
                     "swapped MSE": _num(m.get("swapped_mse")), "rank 1": _pct(m.get("rank1")),
                     "≤ 0.1 %": _pct(m.get("within_0p1")), "≤ 1 %": _pct(m.get("within_1"))})
    for r in report.get("paper_reference", []):
        rows.append({"method": f"{r['label']} (published)", "MSE": _num(r.get("mse")),
                     "swapped MSE": _num(r.get("swapped_mse")), "rank 1": _pct(r.get("rank1")),
                     "≤ 0.1 %": _pct(r.get("within_0p1")), "≤ 1 %": _pct(r.get("within_1"))})
    return pd.DataFrame(rows)


def rank_curve_figure(report: dict):
    """Cumulative fraction of stars with twin rank ≤ r, per method (log r)."""
    fig = figure(height=320, sizing_mode="stretch_width", x_axis_type="log", y_range=(0, 1.02),
                 x_axis_label="twin rank r", y_axis_label="fraction of stars with rank ≤ r",
                 title="cumulative twin-rank curve", tools="pan,wheel_zoom,box_zoom,reset,save")
    for i, m in enumerate(report.get("methods", [])):  # every method: colours repeat with another dash
        curve = m.get("cumulative_rank_curve") or {}
        if curve.get("rank"):
            colour = METHOD_COLOURS[i % len(METHOD_COLOURS)]
            dash = METHOD_DASHES[(i // len(METHOD_COLOURS)) % len(METHOD_DASHES)]
            fig.line(curve["rank"], curve["fraction"], color=colour, line_width=2, line_dash=dash,
                     legend_label=m["label"])
    n = report.get("n_stars")
    if n:  # full-height lines (a ray's length is measured along the log x axis: 40-px stubs)
        for frac, dash, name in ((0.001, "dashed", "rank-0p1"), (0.01, "dotted", "rank-1pct")):
            if n * frac >= 1:
                fig.add_layout(Span(location=n * frac, dimension="height", line_color="#777777",
                                    line_dash=dash, line_width=1.5, name=name))
                fig.add_layout(Label(x=n * frac, y=0.02, text=f"{frac:.1%}".replace(".0%", "%"),
                                     text_font_size="10px", text_color="#555555", x_offset=3))
    fig.add_tools(HoverTool(tooltips=[("rank", "@x{0}"), ("fraction", "@y{0.000}")]))
    theme.style_figure(fig)
    return fig


class MetricsView(pn.viewable.Viewer):
    """Table 1 of the loaded model + rank curve; computes the report on request when missing."""

    state = param.ClassSelector(class_=ExplorerState)
    computing = param.Boolean(default=False)

    def __init__(self, state: ExplorerState, **params):
        theme.ensure_extensions()
        super().__init__(state=state, **params)
        self.compute_button = pn.widgets.Button(label="compute metrics", color="primary", width=180)
        self.compute_button.on_click(self._compute)
        self.status = pn.pane.Markdown("")
        # One table and one plot for the life of the view, hidden until there is a report: a
        # Tabulator or figure created after another tab was built made Bokeh warn "reference
        # already known" (models shared between the page's views were sent again).
        self.table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, theme="simple",
                                          layout="fit_data_fill", sizing_mode="stretch_width", visible=False,
                                          name="metrics-table", **theme.compact_table(wrap=("method",), max_width=260))
        self.curve = pn.pane.Bokeh(None, sizing_mode="stretch_width", visible=False)
        self.finder = pn.Column(sizing_mode="stretch_width")
        self.compute_button.visible = False
        self.body = pn.Column(self.compute_button, self.finder, self.table, self.curve, sizing_mode="stretch_width")
        self._render(load_report(state.data.report_path))

    def _show(self, report=None, button: bool = False, curve: bool = True) -> None:
        """Show ``report``'s table (and rank curve), or nothing; the compute button on request."""
        self.compute_button.visible = button
        self.table.visible = report is not None
        self.curve.visible = report is not None and curve
        if report is not None:
            self.table.value = report_frame(report)
            if curve:
                self.curve.object = rank_curve_figure(report)

    def _render(self, report):
        if report is None and not isinstance(self.state.data.flux, np.ndarray):
            self.status.object = (f"No Table-1 report is cached for this model and these {self.state.data.n_stars:,} "
                                  "stars. At this size it is a command-line job, not a button: "
                                  "`twinviz evaluate --model DIR --data FILE --out DIR`, then restart the app "
                                  "with the report beside the latents (docs/scale.md).")
            self.finder.objects = self._finder_only()
            self._show(None)
            return
        if report is None:
            self.status.object = ("No Table-1 report is cached for this model and dataset yet. Computing "
                                  "it encodes every star and ranks all twins (the pixel-space baselines on a "
                                  "sample of 500 stars).")
            self.finder.objects = self._finder_only()
            self._show(None, button=True)
            return
        self.finder.objects = []
        n = report.get("n_stars")
        limits = report.get("thresholds", {})
        extra = pixel_finder_method(self.state.data) if n == self.state.data.n_stars else None
        if extra is not None:  # the app's pixel finder, ranked on the same stars
            report = {**report, "methods": [*report.get("methods", []), extra]}
        if report.get("n_with_twin") == 0:  # data without groups: reconstruction MSE only
            self.status.object = (f"{n} stars, none with a known twin. **Twin ranks: "
                                  f"{report.get('ranks', 'absent')}.** Only the reconstruction MSE is measured.")
            self._show(report, curve=False)
            return
        role = (report.get("settings") or {}).get("data_role")
        self.status.object = (f"{n} stars, {report.get('n_with_twin')} with a twin"
                              + (f" — these data are {role}" if role else "") + "; "
                              f"≤ 0.1 % means twin rank ≤ {limits.get('rank_0p1', '?')}, "
                              f"≤ 1 % means rank ≤ {limits.get('rank_1', '?')}.")
        self._show(report)

    def _finder_only(self) -> list:
        """Without a cached report: the app's pixel finder's row and curve on its own (if any)."""
        d = self.state.data
        extra = pixel_finder_method(d)
        if extra is None:
            return []
        report = {"n_stars": d.n_stars, "methods": [extra]}
        table = pn.widgets.Tabulator(report_frame(report), disabled=True, show_index=False, theme="simple",
                                     layout="fit_data_stretch", sizing_mode="stretch_width")
        return [pn.pane.Markdown(f"Meanwhile, the app's pixel twin finder on these {d.n_stars:,} stars:"), table,
                pn.pane.Bokeh(rank_curve_figure(report), sizing_mode="stretch_width")]

    def _compute(self, event=None):
        if self.computing:
            return
        self.computing = True
        self.body.loading = True
        doc = current_document()
        threading.Thread(target=self._compute_in_thread, args=(doc,), daemon=True).start()

    def _compute_in_thread(self, doc):
        from twinviz.evaluation.compute import evaluate
        from twinviz.spectra.dataset import load_spectra

        d = self.state.data
        try:
            # the app's own data may be what the model was fitted on: scored, but marked in-sample
            report = evaluate(d.bundle if d.bundle is not None else d.model, load_spectra(d.data_path),
                              pixel_queries=500, allow_in_sample=True).to_dict()
            write_json_atomic(d.report_path, report, default=_json_scalar)
            error = None
        except Exception as exc:  # shown in the tab; the rest of the app keeps working
            report, error = None, f"{type(exc).__name__}: {exc}"

        def finish():
            self.computing = False
            self.body.loading = False
            if error:
                self.status.object = f"Could not compute the metrics: {error}"
            else:
                self._render(report)

        in_session(finish, doc)

    def __panel__(self):
        return pn.Column(theme.help_pane(HELP), self.status, self.body,
                         sizing_mode="stretch_width", name="Metrics")


def _json_scalar(value):
    return value.item() if hasattr(value, "item") else str(value)
