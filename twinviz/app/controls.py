"""The session-wide controls of the sidebar: which model and data, which star, how many neighbours."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import panel as pn
import param

from twinviz.app.state import AppDataError, ExplorerState
from twinviz import files as runfiles

__all__ = ["StarPicker", "link_mismatch", "source_pane", "source_text"]

# Model folders whose own name says nothing: a training run's best model and its exported
# checkpoints live in runs/NAME/model and runs/NAME/snapshot-stepN, so the run name is shown too.
_GENERIC_MODEL_DIRS = (runfiles.MODEL_DIR, runfiles.CHECKPOINT_DIR)


def _model_name(model_dir) -> str:
    if model_dir is None:
        return "(in memory)"
    path = Path(model_dir)
    if path.name in _GENERIC_MODEL_DIRS or path.name.startswith("snapshot-"):
        return f"{path.parent.name}/{path.name}"
    return path.name


def source_text(data) -> str:
    """One line of HTML naming what the explorer shows: model folder, data file, star count
    (``model: <b>my-run/model</b> · data: <b>val.nc</b> · <b>40</b> stars``)."""
    data_name = Path(data.data_path).name if data.data_path is not None else "(in memory)"
    bundle = getattr(data, "bundle", None)
    fingerprint = f" <code>{html.escape(bundle.fingerprint)}</code>" if bundle is not None else ""
    ranked = getattr(data, "ranked_on", "") or ("z in the twin metric" if data.z_twin is not None else "raw z")
    finder = " (or the pixel finder, in the Twins tab)" if getattr(data, "pixel_z", None) is not None else ""
    return (f"model: <b>{html.escape(_model_name(data.model_dir))}</b>{fingerprint} · "
            f"data: <b>{html.escape(data_name)}</b> · <b>{data.n_stars:,}</b> stars"
            f'<div class="tv-ranked-on">twins ranked on: {html.escape(ranked)}{finder}</div>'
            + (f'<div class="tv-domain" style="color:#8a4b00">⚠ {html.escape(data.domain_note)}</div>'
               if getattr(data, "domain_note", "") else ""))


def link_mismatch(query: dict, data) -> str:
    """The warning a permalink made with another model or data gets ("" when it matches): the
    link's ``model`` (bundle fingerprint) and ``data`` against what this page shows."""
    bundle = getattr(data, "bundle", None)
    wanted_model, wanted_data = query.get("model"), query.get("data")
    shown_data = str(data.data_path) if data.data_path is not None else ""
    problems = []
    if wanted_model and bundle is not None and wanted_model != bundle.fingerprint:
        problems.append(f"model {html.escape(str(query.get('model_dir') or '?'))} "
                        f"(<code>{html.escape(str(wanted_model))}</code>)")
    if wanted_data and shown_data and Path(str(wanted_data)).name != Path(shown_data).name:
        problems.append(f"data {html.escape(Path(str(wanted_data)).name)}")
    if not problems:
        return ""
    return ("This link was made with " + " and ".join(problems) + "; this page shows model "
            f"{html.escape(_model_name(data.model_dir))}"
            + (f" (<code>{html.escape(bundle.fingerprint)}</code>)" if bundle is not None else "")
            + f" on {html.escape(Path(shown_data).name or '(in memory)')}. Its star and twin may mean other "
            "stars here: open that model (Training tab → Open in explorer) to see what the link showed.")


def source_pane(data):
    """The sidebar line of :func:`source_text` (CSS class ``tv-source``). HTML, not Markdown:
    Markdown would turn a file name such as ``val.nc`` into a web link."""
    return pn.pane.HTML(f'<div class="tv-source-line">{source_text(data)}</div>', sizing_mode="stretch_width",
                        margin=(0, 10, 5, 10), css_classes=["tv-source"],
                        styles={"font-size": "12.5px", "color": "#333", "background": "#eef3f6",
                                "border-left": "3px solid #0b3d5c", "padding": "3px 6px"})


class StarPicker(pn.viewable.Viewer):
    """Type a star id (or step through stars), set k; shows the selected star's labels."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.id_input = pn.widgets.TextInput(label="Star id", value=str(state.star_id),
                                             placeholder="a star id, then Enter", sizing_mode="stretch_width")
        self.id_input.param.watch(self._on_id, "value")
        self.random_button = pn.widgets.Button(label="random star", color="light",
                                               sizing_mode="stretch_width")
        self.random_button.on_click(self._random)
        self.k_input = pn.widgets.IntSlider.from_param(state.param.k, label="neighbours (k)", start=1, end=50,
                                                       sizing_mode="stretch_width")
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, margin=(0, 5))
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._rng = np.random.default_rng()
        state.param.watch(self._on_star, ["star"])
        self._on_star()

    def _on_id(self, event):
        if event.new.strip() == str(self.state.star_id):
            return
        try:
            self.state.select_star_id(event.new)
            self.message.visible = False
        except AppDataError as exc:
            self.message.object = str(exc).split(". Fix:")[0]
            self.message.visible = True

    def _random(self, event=None):
        self.state.star = int(self._rng.integers(self.state.data.n_stars))

    def _on_star(self, *events):
        d, s = self.state.data, self.state.star
        self.id_input.value = str(self.state.star_id)
        self.message.visible = False
        rows = [f"Teff **{d.teff[s]:.0f} K**", f"logg **{d.logg[s]:.2f}**"]
        if d.fe_h is not None:  # imported stars may lack it (NaN): say so rather than print "+nan"
            rows.append(f"[Fe/H] **{d.fe_h[s]:+.2f}**" if np.isfinite(d.fe_h[s]) else "[Fe/H] unknown")
        if d.group[s] >= 0:
            rows.append(f"chemistry group **{d.group[s]}**")
        # Bold text, not a Markdown heading: the template sizes headings of panes added after the
        # page loaded (a model opened from the Training tab) differently from the first ones.
        self.summary.object = f"**Selected star {self.state.star_id}**\n\n" + " · ".join(rows)

    def __panel__(self):
        return pn.Column(self.id_input, self.message, self.random_button, self.k_input, self.summary,
                         sizing_mode="stretch_width")
