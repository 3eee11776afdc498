"""The session-wide controls of the sidebar: which star, how many neighbours."""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from .state import AppDataError, ExplorerState

__all__ = ["StarPicker"]


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
        if d.fe_h is not None:
            rows.append(f"[Fe/H] **{d.fe_h[s]:+.2f}**")
        if d.group[s] >= 0:
            rows.append(f"chemistry group **{d.group[s]}**")
        self.summary.object = f"#### Selected star {self.state.star_id}\n\n" + " · ".join(rows)

    def __panel__(self):
        return pn.Column(self.id_input, self.message, self.random_button, self.k_input, self.summary,
                         sizing_mode="stretch_width")
