"""Puts the views together: one :class:`ExplorerState` per session, handed to every view.

* :class:`Explorer` — the whole app as one Viewer (sidebar + tabs), for notebooks;
* :func:`build_page` — the same inside the twinviz page template, with the selection mirrored in
  the URL (permalinks), for ``panel serve app.py``;
* :func:`error_page` — what a user sees instead of a traceback when the model or data are bad.
"""
from __future__ import annotations

import html
import logging
from concurrent.futures import Future
from pathlib import Path

import panel as pn
import param

from twinviz.app import theme
from twinviz.app.session import (current_document, in_session, pin_resource_urls, quiet_closed_connections,
                                 release_memory_soon, served)
from twinviz.app.theme import ensure_extensions
from twinviz.app.controls import StarPicker, link_mismatch, source_pane
from twinviz.app.cluster_members import ClusterMembers
from twinviz.app.latent_map import LatentMap
from twinviz.app.metrics import MetricsView
from twinviz.app.permalink import LABEL_FORMATS, LabelsInUrl, sync_query
from twinviz.app.state import AppData, AppDataError, ExplorerState
from twinviz.app.loading import load_app_data
from twinviz.app.swap import SwapExplorer
from twinviz.app.twin_table import TwinTable

log = logging.getLogger(__name__)

__all__ = ["Explorer", "build_page", "error_page", "URL_PARAMETERS", "ensure_extensions"]

TITLE = "twinviz"
ACCENT = "#0b3d5c"
#: The explorer's tabs (the Training tab comes after them when enabled).
TAB_NAMES = ("Swap explorer", "Latent map", "Twins", "Metrics")
#: ExplorerState parameter → URL query name (the permalink).
URL_PARAMETERS = {"star": "star", "teff": "teff", "logg": "logg", "twin": "twin", "k": "k",
                  "colour_by": "colour", "projection": "map", "rank_by": "rank"}

SIDEBAR_HELP = """twinviz finds **chemically identical stars** from their spectra alone. A fader network
encodes each spectrum into a latent *z* stripped of Teff and logg; stars with the closest *z* (L1)
are its twins. Pick a star here, on the map, or in the twin table; every tab follows the selection,
and the page address is a permalink to what you see."""


class Explorer(pn.viewable.Viewer):
    """The twinviz explorer: sidebar (star picker) + tabs (swap, map, twins, metrics, training).

    ``training`` gives the Training tab's folders (``{"runs": DIR, "data_dir": DIR}``; defaults
    ``./runs`` and the data file's folder); ``training=False`` leaves the tab out.

    A tab's view is built when the tab is first shown (or first asked for: ``explorer.twins``),
    so a page costs what its open tab costs; ``build_open_tab=False`` leaves even the open tab
    for the caller (the served page first reads the open tab from the URL).
    """

    state = param.ClassSelector(class_=ExplorerState, doc="this view's selection")

    def __init__(self, data: AppData, state: ExplorerState | None = None, training=None,
                 build_open_tab: bool = True, **params):
        ensure_extensions()
        super().__init__(state=state or ExplorerState(data), **params)
        self._sidebar = pn.Column(sizing_mode="stretch_width")
        # Each tab is an empty Column until it is first shown; its view is built then (or when
        # code asks for it, e.g. ``explorer.twins``). A page therefore builds only the open tab.
        # Built views stay in the document: Panel's own ``dynamic=True`` detaches hidden tabs,
        # and a detached view that updates (the selection changed) rewrites Panel's shared
        # stylesheets to CDN addresses, which fail offline.
        self._slots = {name: pn.Column(sizing_mode="stretch_width", name=name) for name in TAB_NAMES}
        self._views: dict[str, object] = {}
        self.tabs = pn.Tabs(*self._slots.items(), dynamic=False, sizing_mode="stretch_width", name="views")
        self._training_args = None if training is False else (data, training or {})
        if self._training_args is not None:
            self._slots["Training"] = pn.Column(sizing_mode="stretch_width", name="Training")
            self.tabs.append(("Training", self._slots["Training"]))
        self._build_sidebar()
        self.tabs.param.watch(lambda event: self._switched_to(self._tab_name(event.new)), "active")
        self._url_synced = False
        if build_open_tab:  # build_page first reads the open tab from the URL (a permalink)
            self.build_open_tab()

    def _tab_name(self, index: int) -> str:
        return self.tabs._names[index] if 0 <= index < len(self.tabs._names) else TAB_NAMES[0]

    def _build_sidebar(self):
        self.picker = StarPicker(self.state)
        # Which model and data are shown: after "Open in explorer" this line is how a user
        # sees that the tabs switched.
        self.source = source_pane(self.state.data)
        self.link_warning = pn.pane.Alert("", alert_type="warning", visible=False, margin=(0, 10),
                                          sizing_mode="stretch_width")
        self._sidebar.objects = [self.source, self.link_warning, theme.help_pane(SIDEBAR_HELP), self.picker]

    def _view(self, name: str):
        """The view of tab ``name``, built (and put in its tab) on first use."""
        if name not in self._views:
            view = self._views[name] = self._make_view(name)
            self._slots[name].objects = [view]
        return self._views[name]

    def _make_view(self, name: str):
        s = self.state
        if name == "Swap explorer":
            return SwapExplorer(s)
        if name == "Latent map":
            self._views["_clusters"] = ClusterMembers(s)
            return pn.Column(LatentMap(s), self._views["_clusters"], sizing_mode="stretch_width")
        if name == "Twins":
            return TwinTable(s)
        if name == "Metrics":
            return MetricsView(s)
        if name == "Training" and self._training_args is not None:
            return _training_tab(*self._training_args, self.open_model)
        raise KeyError(f"no tab named {name!r}")

    def build_open_tab(self) -> None:
        self._show(self._tab_name(self.tabs.active))

    def _show(self, name: str):
        if name in self._slots:
            self._view(name)

    def _switched_to(self, name: str) -> None:
        """A visitor opened tab ``name``. A view not built yet is built on the session's next
        tick, so that the tab first says so (the map's first build takes seconds) rather than
        staying blank; outside a server it is built at once."""
        if name not in self._slots or name in self._views:
            return
        doc = current_document()
        if not served(doc):
            self._view(name)
            return
        self._slots[name].objects = [pn.pane.Markdown(f"*Building the {name.lower()} tab…*",
                                                      css_classes=["tv-building"])]
        in_session(lambda: self._view(name), doc)

    @property
    def swap(self) -> SwapExplorer:
        return self._view("Swap explorer")

    @property
    def latent_map(self) -> LatentMap:
        return self._view("Latent map")[0]

    @property
    def cluster_members(self) -> ClusterMembers:
        self._view("Latent map")
        return self._views["_clusters"]

    @property
    def twins(self) -> TwinTable:
        return self._view("Twins")

    @property
    def metrics(self) -> MetricsView:
        return self._view("Metrics")

    @property
    def training(self):
        return self._view("Training") if self._training_args is not None else None

    def sync_url(self, check_link: bool = True) -> None:
        """Mirror this session's selection (and the open tab) in the page URL: a permalink.
        ``check_link``: warn when the page's link names another model or data (not after this
        session opened another model itself)."""
        location = pn.state.location
        if location is None:
            return
        # The browser answers every URL change with the new href; Panel counts handling that as
        # "busy" and flips the page's spinner on and off — two restyles of the page for nothing
        # the visitor waits on.
        location._busy__ignore = list(location.param)
        # Provenance: the link names the model bundle (fingerprint, folder) and the data it was made
        # with; a link made with another one says so here instead of silently showing this model.
        warning = link_mismatch(dict(location.query_params), self.state.data) if check_link else ""
        self.link_warning.object, self.link_warning.visible = warning, bool(warning)
        data = self.state.data

        def name_the_model():
            location.update_query(model=data.bundle.fingerprint if data.bundle is not None else "",
                                  model_dir=str(data.model_dir or ""), data=str(data.data_path or ""))
        doc = current_document()
        if served(doc) and check_link:  # the page's first load: written once the browser is connected
            pn.state.onload(name_the_model)
        else:
            name_the_model()
        # Teff/logg reach the URL once the sliders rest (app/permalink.py), not every step.
        sync_query(location, self.state, {k: v for k, v in URL_PARAMETERS.items() if k not in LABEL_FORMATS})
        self._url_labels = LabelsInUrl(location, self.state, doc if served(doc) else None)
        if not self._url_synced:
            sync_query(location, self.tabs, {"active": "tab"})
        self._url_synced = True

    def open_model(self, run=None, model_dir=None, data_path=None, done: Future | None = None):
        """Show another model (e.g. a training run's) in this session's explorer tabs.

        Loading (encoding the dataset, its 2-D maps) runs in a worker thread so the server
        stays responsive; the tabs show a loading indicator meanwhile. Other sessions are
        not affected. Returns the worker thread. ``done``, when given, gets the model
        directory as its result once the new views are in place, or the error.
        """
        import threading

        if data_path is None and run is not None:
            data_path = run.config.get("val") or run.config.get("data")
        doc = current_document()  # taken here: the worker thread cannot find it
        self.tabs.loading = True

        def work():
            try:
                new_data = load_app_data(model=model_dir, data=data_path)
            except Exception as exc:  # show the reason, keep the current model
                message = f"could not open {model_dir} with {data_path}: {exc}"
                log.warning(message)
                in_session(lambda: self._open_failed(message, done), doc)
                return
            in_session(lambda: self._swap_in(new_data, done, model_dir), doc)

        thread = threading.Thread(target=work, name="twinviz-open-model", daemon=True)
        thread.start()
        return thread

    def _swap_in(self, new_data: AppData, done: Future | None = None, model_dir=None):
        old = self.state
        if self._url_synced and pn.state.location is not None:
            pn.state.location.unsync(old)
            self._url_labels.stop()
        self.state = ExplorerState(new_data)
        for name in TAB_NAMES:  # the explorer tabs follow the new state; Training stays
            self._views.pop(name, None)
            self._slots[name].objects = []
        self._views.pop("_clusters", None)
        self._build_sidebar()
        if self._url_synced:
            self.sync_url(check_link=False)
        self.tabs.loading = False
        self.tabs.active = 0
        self.build_open_tab()
        if done is not None:
            done.set_result(model_dir)

    def _open_failed(self, message: str, done: Future | None = None):
        self.tabs.loading = False
        if pn.state.notifications is not None:
            pn.state.notifications.error(message, duration=0)
        if done is not None:
            done.set_exception(AppDataError(message))

    def sidebar(self) -> list:
        return [self._sidebar]

    def __panel__(self):
        return pn.Row(pn.Column(*self.sidebar(), width=300), self.tabs, sizing_mode="stretch_width")


def _training_tab(data: AppData, folders: dict, on_open):
    """The training tab (twinviz.app.training) for this session, or None when unavailable."""
    from twinviz.app.training import TrainingTab

    runs_dir = folders.get("runs") or "runs"
    data_dir = Path(folders.get("data_dir") or (data.data_path.parent if data.data_path else "data"))
    defaults = {}
    if data.data_path is not None and data.data_path.resolve().is_relative_to(data_dir.resolve()):
        # the dataset being explored (the bundled demo's spectra) is the default training data
        defaults["data"] = str(data.data_path.resolve().relative_to(data_dir.resolve()))

    def open_in_explorer(run, model_dir) -> Future:
        done = Future()  # the tab says "Opened" once this completes
        on_open(run, model_dir, done=done)
        return done

    return TrainingTab(runs_dir=str(runs_dir), data_dir=str(data_dir), on_open=open_in_explorer,
                       defaults=defaults)


def _template(main, sidebar=()):
    css = theme.asset_text("twinviz.css")
    # Bootstrap: its resources are all served by Panel itself (the Fast design pulls a Google
    # font), so the page works offline and shows no failed requests.
    return pn.template.BootstrapTemplate(
        title=TITLE, logo=theme.logo_path(), favicon=theme.logo_path(), main=[main],
        sidebar=list(sidebar), header_background=ACCENT, sidebar_width=320,
        raw_css=[css] if css else [])


def build_page(data: AppData, sync_url: bool = True, training=None):
    """The served page for one session; with ``sync_url`` the selection lives in the URL.
    ``training``: the Training tab's folders (see :class:`Explorer`)."""
    pin_resource_urls(current_document())  # before any model of this page is built
    explorer = Explorer(data, training=training, build_open_tab=False)
    if sync_url:
        explorer.sync_url()
    explorer.build_open_tab()
    doc = current_document()
    if served(doc):  # give memory back once visitors leave
        doc.on_session_destroyed(lambda session_context: release_memory_soon())
        quiet_closed_connections()
    page = _template(explorer.tabs, explorer.sidebar())
    page.explorer = explorer  # reachable for tests and benchmarks
    return page


def error_page(message: str, title: str = "twinviz could not start"):
    """A readable page explaining what is wrong with the inputs (no traceback)."""
    ensure_extensions()
    pin_resource_urls(current_document())
    body = pn.pane.Alert(
        f"### {html.escape(title)}\n\n{html.escape(message)}\n\n"
        "Start it with a model directory and a spectra file, e.g.\n\n"
        "`panel serve app.py --address localhost --args --model runs/NAME/model --data val.nc`\n\n"
        "or with no arguments to open the bundled demo.",
        alert_type="danger", sizing_mode="stretch_width", css_classes=["tv-error"])
    return _template(body)
