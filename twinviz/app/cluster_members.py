"""Cluster members: the recovered cluster (HDBSCAN on z) of the selected star, listed; choosing a
member selects it. Shown under the latent map; the clusters are computed on first use
(AppData.recovered_clusters), so a session that never opens them never pays for them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param

from twinviz.app import theme
from twinviz.app.state import CLUSTER_MAX_STARS, RECOVERED_CLUSTER, ExplorerState

__all__ = ["ClusterMembers", "member_table"]


def member_table(data, star: int) -> tuple[pd.DataFrame, str]:
    """(members of the star's recovered cluster: star id, Teff, logg, group; a one-line summary)."""
    found = data.recovered_clusters()
    label = int(found[star])
    if label < 0:
        return pd.DataFrame(), (f"Star {data.star_ids[star]} is in no recovered cluster (HDBSCAN calls it noise: no "
                                "dense group of latents around it).")
    pos = np.flatnonzero(found == label)
    table = pd.DataFrame({"star": [str(v) for v in data.star_ids[pos]],
                          "Teff": np.round(data.teff[pos]).astype(int),
                          "logg": np.round(data.logg[pos].astype(float), 2)})
    summary = (f"Recovered cluster {label} of star {data.star_ids[star]}: {pos.size} members "
               f"({int(np.unique(found[found >= 0]).size)} clusters in all).")
    if np.any(data.group >= 0):
        table["group"] = data.group[pos]
        share = float(np.mean(data.group[pos] == data.group[star])) if data.group[star] >= 0 else float("nan")
        if np.isfinite(share):
            summary += f" {100 * share:.0f} % share the star's true group."
    table.attrs["positions"] = pos
    return table, summary


class ClusterMembers(pn.viewable.Viewer):
    """The selected star's recovered cluster; filled once the map is coloured by it."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        theme.ensure_extensions()
        super().__init__(state=state, **params)
        self._positions = np.empty(0, dtype=np.int64)
        self.summary = pn.pane.Markdown("", name="cluster-summary", sizing_mode="stretch_width", margin=(0, 10))
        self.table = pn.widgets.Tabulator(pd.DataFrame(), selectable=1, disabled=True, show_index=False,
                                          layout="fit_data_stretch", height=220, sizing_mode="stretch_width",
                                          theme="simple", name="cluster-members")
        self.table.param.watch(self._on_selection, "selection")
        state.param.watch(self._refresh, ["star", "colour_by"])
        self._refresh()

    def _refresh(self, *events):
        d = self.state.data
        if self.state.colour_by != RECOVERED_CLUSTER:
            self._positions = np.empty(0, dtype=np.int64)
            self.table.value = pd.DataFrame()
            self.summary.object = ("Colour the map by *recovered cluster* to find the groups of stars the latent "
                                   "puts together (HDBSCAN on z) and list the selected star's."
                                   if d.n_stars <= CLUSTER_MAX_STARS else
                                   f"Clusters are computed in the app up to {CLUSTER_MAX_STARS} stars; use "
                                   "`twinviz clusters` for larger sets.")
            return
        frame, self.summary.object = member_table(d, self.state.star)
        self._positions = frame.attrs.pop("positions", np.empty(0, dtype=np.int64))
        self.table.value = frame
        hit = np.flatnonzero(self._positions == self.state.star)
        self.table.selection = [int(hit[0])] if hit.size else []

    def _on_selection(self, event):
        if event.new and event.new[0] < self._positions.size:
            chosen = int(self._positions[event.new[0]])
            if chosen != self.state.star:
                self.state.star = chosen

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            self._layout = pn.Column(self.summary, self.table, sizing_mode="stretch_width", name="Cluster members")
        return self._layout
