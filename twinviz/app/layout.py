"""Puts the views together: one :class:`ExplorerState` per session, handed to every view.

* :class:`Explorer` — the whole app as one Viewer (sidebar + tabs), for notebooks;
* :func:`build_page` — the same inside the twinviz page template, with the selection mirrored in
  the URL (permalinks), for ``panel serve app.py``;
* :func:`error_page` — what a user sees instead of a traceback when the model or data are bad.
"""
from __future__ import annotations

import html
import logging

import panel as pn
import param

from . import theme
from .theme import ensure_extensions
from .controls import StarPicker
from .latent_map import LatentMap
from .metrics import MetricsView
from .state import AppData, ExplorerState
from .swap import SwapExplorer
from .twin_table import TwinTable

log = logging.getLogger(__name__)

__all__ = ["Explorer", "build_page", "error_page", "URL_PARAMETERS", "ensure_extensions"]

TITLE = "twinviz"
ACCENT = "#0b3d5c"
#: ExplorerState parameter → URL query name (the permalink).
URL_PARAMETERS = {"star": "star", "teff": "teff", "logg": "logg", "twin": "twin", "k": "k",
                  "colour_by": "colour", "projection": "map"}

SIDEBAR_HELP = """twinviz finds **chemically identical stars** from their spectra alone. A fader network
encodes each spectrum into a latent *z* stripped of Teff and logg; stars with the closest *z* (L1)
are its twins. Pick a star here, on the map, or in the twin table; every tab follows the selection,
and the page address is a permalink to what you see."""


class Explorer(pn.viewable.Viewer):
    """The twinviz explorer: sidebar (star picker) + tabs (swap, map, twins, metrics, training)."""

    state = param.ClassSelector(class_=ExplorerState, doc="this view's selection")

    def __init__(self, data: AppData, state: ExplorerState | None = None, **params):
        ensure_extensions()
        super().__init__(state=state or ExplorerState(data), **params)
        s = self.state
        self.picker = StarPicker(s)
        self.swap = SwapExplorer(s)
        self.latent_map = LatentMap(s)
        self.twins = TwinTable(s)
        self.metrics = MetricsView(s)
        tabs = [("Swap explorer", self.swap), ("Latent map", self.latent_map), ("Twins", self.twins),
                ("Metrics", self.metrics)]
        training = _training_tab(data)
        if training is not None:
            tabs.append(("Training", training))
        self.tabs = pn.Tabs(*tabs, dynamic=False, sizing_mode="stretch_width", name="views")

    def sidebar(self) -> list:
        return [theme.help_pane(SIDEBAR_HELP), self.picker]

    def __panel__(self):
        return pn.Row(pn.Column(*self.sidebar(), width=300), self.tabs, sizing_mode="stretch_width")


def _training_tab(data):
    """The training tab (twinviz.app.training, built separately) when it is installed."""
    try:
        from .training import TrainingTab
    except ImportError:
        return None
    try:
        return TrainingTab()
    except Exception as exc:  # the explorer must not fail because of this tab
        log.warning("training tab unavailable: %s", exc)
        return None


def _template(main, sidebar=()):
    css = theme.asset_text("twinviz.css")
    # Bootstrap: its resources are all served by Panel itself (the Fast design pulls a Google
    # font), so the page works offline and shows no failed requests.
    return pn.template.BootstrapTemplate(
        title=TITLE, logo=theme.logo_path(), favicon=theme.logo_path(), main=[main],
        sidebar=list(sidebar), header_background=ACCENT, sidebar_width=320,
        raw_css=[css] if css else [])


def build_page(data: AppData, sync_url: bool = True):
    """The served page for one session; with ``sync_url`` the selection lives in the URL."""
    explorer = Explorer(data)
    if sync_url and pn.state.location is not None:
        pn.state.location.sync(explorer.state, URL_PARAMETERS)
        pn.state.location.sync(explorer.tabs, {"active": "tab"})
    page = _template(explorer.tabs, explorer.sidebar())
    page.explorer = explorer  # reachable for tests and benchmarks
    return page


def error_page(message: str, title: str = "twinviz could not start"):
    """A readable page explaining what is wrong with the inputs (no traceback)."""
    ensure_extensions()
    body = pn.pane.Alert(
        f"### {html.escape(title)}\n\n{html.escape(message)}\n\n"
        "Start it with a model directory and a spectra file, e.g.\n\n"
        "`panel serve app.py --args --model runs/NAME/model --data val.nc`\n\n"
        "or with no arguments to open the bundled demo.",
        alert_type="danger", sizing_mode="stretch_width", css_classes=["tv-error"])
    return _template(body)
