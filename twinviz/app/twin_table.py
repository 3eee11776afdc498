"""Twin lookup: the selected star's top-k L1 neighbours in latent space, and a comparison.

When the app was started with a pixel twin finder (``--pixel-finder DIR``, from ``twinviz
fit-pixel-finder``) a switch ranks the neighbours by that finder instead; the session's compared
twin, the swap explorer and the map's twin markers follow the switch.

Choosing a row sets the session's compared twin (which the swap explorer also uses) and draws
that neighbour's observed spectrum over the star's, with their difference underneath, and the
chemical difference: both latents decoded at the star's (Teff, logg), its strongest lines
labelled by element (twinviz.evaluation.explain). With a calibrated model the table has a P(twin)
column (twinviz.twins.confidence); the note under the table says when it is absent and why.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, LabelSet, Range1d
from bokeh.plotting import figure

from twinviz.app import theme
from twinviz.app.session import in_session
from twinviz.app.chemistry import abundance_differences, chemical_difference, chemical_scale, lines_markdown
from twinviz.app.distance_scale import add_scale_columns, distance_scale
from twinviz.app.state import RANK_LATENT, RANK_PIXEL, ExplorerState
from twinviz.evaluation.explain import strongest_lines

__all__ = ["TwinTable", "neighbour_table"]

N_LINES = 5  # strongest lines of the chemical difference named under the plots

HELP = """**Twins.** The stars whose latents are closest to the selected star's (L1 distance).
If the model stripped Teff and logg from z, they share its chemistry whatever their temperature.
Click a row to compare that star's spectrum with the selected one (and use it in the swap
explorer); ✓ marks a known true twin (same chemistry group). P(twin) is the model's calibrated
probability of a shared chemistry (`twinviz calibrate`). **OOD** marks a star the model cannot
speak for — outside its training Teff/logg range or reconstructed far worse than its validation
stars — with the numbers: do not read it as a trustworthy twin. The last plot decodes both stars
at the selected star's Teff and logg: what remains is their difference in chemistry, with the
lines that differ most named by element."""

PIXEL_HELP = """**Rank by.** *latent z*: the fader network's latent (in its twin metric when it has
one). *pixel finder*: the pixel twin finder this app was started with — polynomial residuals in
Teff/logg, their principal components and a twin metric learned from training twins
(`twinviz fit-pixel-finder`). It is the stronger ranking where training twins like these stars
exist; it has no P(twin), and its **OOD** column marks stars outside its training stars'
Teff/logg, where its polynomial extrapolates."""

RANK_OPTIONS = {"latent z": RANK_LATENT, "pixel finder": RANK_PIXEL}


def neighbour_table(data, star: int, k: int, rank_by: str = RANK_LATENT, hide_ood: bool = False) -> pd.DataFrame:
    """The k nearest stars to ``star``: rank, star id, L1 distance with its scale (twin pct,
    random ≤ d: app/distance_scale.py), Teff, logg, Δ[Fe/H], true twin, P(twin) and OOD (the flag
    with its numbers; "" when in distribution) — the rows of the one twin query
    (:meth:`AppData.twin_query`, :class:`twinviz.twins.query.TwinQuery`) that `twinviz twins`
    prints. ``rank_by`` RANK_PIXEL ranks with the app's pixel finder (no P(twin); OOD = outside its
    training labels). ``hide_ood`` (latent ranking) leaves out-of-distribution neighbours out
    (ranks keep their place in the full ranking, so a gap shows where one was left out)."""
    pixel = data.ranking(rank_by) == RANK_PIXEL
    answer, keep = _answer(data, star, k, rank_by, hide_ood and not pixel)
    rows = [answer.rows[i] for i in keep]
    pos, dist = answer.positions[keep], answer.distances[keep]
    ranks = np.array([r["rank"] for r in rows], dtype=np.int64)
    table = _common_columns(data, star, pos, dist, ranks)
    scale = distance_scale(data, rank_by)
    add_scale_columns(table, scale, dist)
    if data.calibration is not None and not pixel:
        table["P(twin)"] = ["n/a" if r["p_twin"] is None else f"{r['p_twin']:.3f}" for r in rows]
    if answer.ood_criteria is not None:
        table["OOD"] = [r["ood"]["short"] for r in rows]
    table.attrs["positions"] = pos
    note = answer.p_twin_note
    if pixel:
        note = (f"Ranked by the pixel finder {data.pixel_finder.directory or ''} (distances: L1 in its twin metric). "
                + note)
        if answer.query_row["ood"]["flag"]:
            note += (f" **The selected star is outside the finder's training stars** "
                     f"({data.pixel_finder.describe_range()}): its ranking extrapolates the polynomial.")
    hidden = ""
    if hide_ood and not pixel and ranks.size and ranks[-1] > ranks.size:
        hidden = f" {int(ranks[-1]) - ranks.size} out-of-distribution neighbour(s) hidden (ranks skipped)."
    table.attrs["p_twin_note"] = " ".join(t for t in (note, scale.note(), hidden) if t)
    table.attrs["ranked_on"] = answer.ranked_on
    return table


def _answer(data, star: int, k: int, rank_by: str, hide_ood: bool):
    """(the twin query's answer, indices of the rows to show): the k nearest, or with ``hide_ood``
    the k nearest that are in distribution (asking for more neighbours until k are found)."""
    query = data.twin_query(rank_by)
    want = k
    while True:
        answer = query.query(position=star, k=min(want, data.n_stars - 1))
        if not hide_ood:
            return answer, list(range(len(answer.rows)))
        flags = data.ood_flags()  # the app's one set of OOD flags (the same criteria as the query's)
        keep = [i for i, p in enumerate(answer.positions.tolist()) if not flags[p]]
        if len(keep) >= k or len(answer.rows) >= data.n_stars - 1:
            return answer, keep[:k]
        want *= 4


def _common_columns(data, star: int, pos: np.ndarray, dist: np.ndarray, ranks: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({
        "rank": ranks,
        "star": [str(v) for v in data.star_ids[pos]],
        "distance": np.round(dist.astype(float), 4),
        "Teff": np.round(data.teff[pos]).astype(int),
        "logg": np.round(data.logg[pos].astype(float), 2),
    })
    if data.fe_h is not None:
        table["Δ[Fe/H]"] = np.round((data.fe_h[pos] - data.fe_h[star]).astype(float), 3)
    if np.any(data.group >= 0):
        same = (data.group[pos] == data.group[star]) & (data.group[star] >= 0)
        table["true twin"] = np.where(same, "✓", "")
    return table


class TwinTable(pn.viewable.Viewer):
    """Tabulator of neighbours + the chosen neighbour's spectrum over the star's + CSV export."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        theme.ensure_extensions()
        super().__init__(state=state, **params)
        self._positions = np.empty(0, dtype=np.int64)
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), selectable=1, disabled=True, show_index=False, layout="fit_data_fill",
            height=330, sizing_mode="stretch_width", theme="simple", name="twins",
            text_align={"true twin": "center"},
            # no sort arrows (the rows are a ranking), compact, the OOD reason wrapped: with the
            # distance scale's columns the last headers lay past the table's edge at 1 100 px
            **theme.compact_table(wrap=("OOD",)))
        self.table.param.watch(self._on_selection, "selection")
        self.p_note = pn.pane.Markdown("", name="p-twin-note", sizing_mode="stretch_width", margin=(0, 10))
        self.lines = pn.pane.Markdown("", name="chemical-lines", sizing_mode="stretch_width", margin=(0, 10))
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="twins.csv", label="export CSV",
                                                color="light", width=140)
        # Triage: out-of-distribution neighbours hidden, on by default for real (not synthetic) data —
        # unless most stars are OOD (a model applied far outside its range), where it would empty the table
        d = state.data
        self.hide_ood = pn.widgets.Checkbox(
            name="hide out-of-distribution neighbours", visible=d.ood is not None,
            value=d.ood is not None and not d.is_synthetic and float(d.ood_flags().mean()) < 0.5)
        self.hide_ood.param.watch(self._refresh, "value")
        self.rank_select = None
        if state.data.has_pixel_finder:
            self.rank_select = pn.widgets.RadioButtonGroup.from_param(
                state.param.rank_by, options=RANK_OPTIONS, width=220, description=None)
        self._make_figures()
        state.param.watch(self._refresh, ["star", "k", "rank_by"])
        state.param.watch(self._on_twin, ["twin"])
        self._refresh()

    # ---- table ----------------------------------------------------------------------------
    def _refresh(self, *events):
        frame = neighbour_table(self.state.data, self.state.star, self.state.k, self.state.rank_by,
                                hide_ood=self.hide_ood.value)
        self._positions = frame.attrs.pop("positions")
        self.p_note.object = frame.attrs.pop("p_twin_note")
        self.table.value = frame
        self.download.filename = f"twins_of_star_{self.state.star_id}.csv"
        self._sync_selection()
        self._draw()

    def _on_selection(self, event):
        if event.new:
            row = event.new[0]
            if row < self._positions.size and self.state.twin != int(self._positions[row]):
                self.state.twin = int(self._positions[row])

    def _on_twin(self, *events):
        self._sync_selection()
        self._draw()

    def _sync_selection(self):
        hit = np.flatnonzero(self._positions == self.state.compared_twin())
        want = [int(hit[0])] if hit.size else []
        if self.table.selection != want:
            self.table.selection = want

    def _csv(self):
        buf = io.StringIO()
        self.table.value.to_csv(buf, index=False)
        buf.seek(0)
        return buf

    # ---- comparison plot ----------------------------------------------------------------------
    def _make_figures(self):
        d = self.state.data
        self._gaps = theme.GapLine(d.wavelength, d.segments)
        x = self._gaps.x
        nan = np.full(x.size, np.nan, dtype=np.float32)
        self.source = ColumnDataSource({"x": x, "star": nan, "twin": nan, "difference": nan, "chemical": nan},
                                       name="tv-compare")
        self.line_source = ColumnDataSource({"x": [], "y": [], "label": []}, name="tv-chemical-lines")
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        self.x_range = Range1d(lo, hi, bounds=(lo, hi))
        common = dict(x_range=self.x_range, sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset",
                      active_drag="xpan", active_scroll="xwheel_zoom")
        spec = figure(height=230, title="", y_axis_label="flux", **common)
        width = theme.SPECTRUM_LINE_WIDTH
        spec.line("x", "star", source=self.source, color=theme.OBSERVED, line_width=width, legend_label="selected star")
        spec.line("x", "twin", source=self.source, color=theme.TWIN, line_width=width, legend_label="neighbour")
        diff = figure(height=150, y_axis_label="Δ flux", x_axis_label="wavelength (Å)", **common)
        diff.line("x", "difference", source=self.source, color=theme.RESIDUAL_SWAP, line_width=width,
                  legend_label="neighbour − star")
        chem = figure(height=170, y_axis_label="Δ flux, chemistry", x_axis_label="wavelength (Å)", **common)
        chem.line("x", "chemical", source=self.source, color=theme.SELECTED, line_width=width,
                  legend_label="D(z neighbour, u) − D(z star, u), u = the star's Teff, logg (within the model's range)")
        chem.scatter("x", "y", source=self.line_source, size=6, color=theme.SELECTED, marker="inverted_triangle")
        chem.add_layout(LabelSet(x="x", y="y", text="label", source=self.line_source, text_font_size="9px",
                                 y_offset=6, x_offset=-8))
        for fig in (spec, diff, chem):
            theme.style_figure(fig)
        spec.xaxis.major_label_text_font_size = "0px"
        diff.xaxis.axis_label = None
        self.figures = {"spectrum": spec, "difference": diff, "chemical": chem}

    def _draw(self):
        d, s = self.state.data, self.state.star
        twin = self.state.compared_twin()
        gy = self._gaps.y
        vectors = d.twin_vectors(self.state.rank_by)
        dist = float(np.abs(vectors[twin] - vectors[s]).sum())  # as in the table's distance column
        title = (f"star {d.star_ids[s]} (Teff {d.teff[s]:.0f} K, logg {d.logg[s]:.2f}) vs neighbour "
                 f"{d.star_ids[twin]} (Teff {d.teff[twin]:.0f} K, logg {d.logg[twin]:.2f}), L1 {dist:.3f}"
                 + (" (pixel finder)" if d.ranking(self.state.rank_by) == RANK_PIXEL else ""))
        scale = distance_scale(d, self.state.rank_by)
        twin_pct = f"twin pct {float(scale.twin_percentile(dist)):.0f} % · " if scale.twin.size else ""
        title += f"\ndistance scale: {twin_pct}random pairs ≤ d {float(scale.random_fraction(dist)):.2g} %"
        star_flux, twin_flux = d.observed(s), d.observed(twin)  # masked pixels as gaps
        # decoded at the star's labels clipped into the model's range (app/chemistry.py)
        chemical, u, clip_note = chemical_difference(d, s, twin)
        lines = strongest_lines(d.wavelength, chemical, *u, n=N_LINES)
        marks = {"x": [r["wavelength"] for r in lines], "y": [r["delta_flux"] for r in lines],
                 "label": [r["species"] or "" for r in lines]}
        self.lines.object = lines_markdown(lines, d.star_ids[twin], d.star_ids[s], chemical, chemical_scale(d),
                                           clip_note) + abundance_differences(d, s, twin)

        def changes():
            self.source.data.update(star=gy(star_flux), twin=gy(twin_flux), difference=gy(twin_flux - star_flux),
                                    chemical=gy(chemical.astype(np.float32)))
            self.line_source.data = marks
            self.figures["spectrum"].title.text = title

        in_session(changes)
        if getattr(self, "_plot_pane", None) is not None:
            pn.io.push_notebook(self._plot_pane)

    def __panel__(self):
        from bokeh.layouts import column as bk_column

        if getattr(self, "_layout", None) is None:
            self._plot_pane = pn.pane.Bokeh(bk_column(list(self.figures.values()), sizing_mode="stretch_width"),
                                            sizing_mode="stretch_width")
            ranking = [] if self.rank_select is None else [
                pn.Row(pn.pane.Markdown("**rank twins by**", margin=(8, 4, 0, 10)), self.rank_select),
                theme.help_pane(PIXEL_HELP)]
            self._layout = pn.Column(theme.help_pane(HELP), *ranking,
                                     self.hide_ood, pn.Row(self.table, sizing_mode="stretch_width"), self.p_note,
                                     self.download, self._plot_pane, self.lines, sizing_mode="stretch_width",
                                     name="Twins")
        return self._layout
