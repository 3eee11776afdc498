"""Cheap sessions: one runs poller per process shared by every session, no timers per session.

Served with Panel and visited by non-rendering clients (bokeh.client): no browser needed.
"""
import json
import threading

import panel as pn
import pytest
from bokeh.server.callbacks import PeriodicCallback as BokehPeriodicCallback
from panel.tests.util import serve_and_wait

from twinviz.app.layout import build_page
from twinviz.app.runs_feed import RunsFeed
from twinviz.app.training import TrainingTab
from twinviz.runs.manager import RunManager
from twinviz.spectra.dataset import save_spectra
from twinviz.testing import toy_dataset, visit, wait_for
from twinviz import files as runfiles


@pytest.fixture
def folders(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    save_spectra(toy_dataset(12, seed=1, n_pixels=32), data_dir / "train.nc")
    runs_dir = tmp_path / "runs"
    yield runs_dir, data_dir
    RunManager.shared(runs_dir, data_dir).stop_background()


def _poller_threads(runs_dir) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"twinviz-runs:{runs_dir.absolute()}"]


def _finished_run(runs_dir, name: str) -> None:
    """A run directory as `twinviz train` leaves it when done (what the tab lists)."""
    path = runs_dir / name
    path.mkdir(parents=True)
    (path / runfiles.STATUS).write_text(json.dumps({
        "state": "done", "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z",
        "step": 10, "total_steps": 10, "epoch": 1, "best": {"val_mse": 1e-3}}))


def test_sessions_share_one_poller_and_a_destroyed_session_unsubscribes(folders):
    runs_dir, data_dir = folders
    tabs, docs = [], []

    def app():
        tabs.append(TrainingTab(runs_dir=str(runs_dir), data_dir=str(data_dir), poll_period=200))
        docs.append(pn.state.curdoc)
        return tabs[-1]

    port = serve_and_wait(app, check_unused_sessions_milliseconds=200, unused_session_lifetime_milliseconds=500)
    url = f"http://localhost:{port}"
    first, second = visit(url), visit(url)
    assert len(tabs) == 2 and tabs[0].feed is tabs[1].feed
    feed = tabs[0].feed
    assert feed is RunsFeed.shared(tabs[0].manager) and feed.n_subscribers == 2
    assert len(_poller_threads(runs_dir)) == 1

    # A change on disk reaches both sessions through the one poller, on their own loops.
    _finished_run(runs_dir, "finished-run")
    for tab in tabs:
        wait_for(lambda: "finished-run" in list(tab.table.value["run"]), timeout=30)
    assert feed.check() is False  # nothing changed since: nobody is told anything

    first.close()
    wait_for(lambda: feed.n_subscribers == 1, timeout=30)
    assert tabs[0]._subscription is None and tabs[1]._subscription is not None
    second.close()
    wait_for(lambda: feed.n_subscribers == 0, timeout=30)
    assert len(_poller_threads(runs_dir)) == 1  # runs are still followed with nobody looking


def test_a_served_page_registers_no_periodic_callback(app_data, folders):
    runs_dir, data_dir = folders
    pages, docs = [], []

    def app():
        page = build_page(app_data, training={"runs": str(runs_dir), "data_dir": str(data_dir)})
        explorer = page.explorer
        views = [explorer.swap, explorer.latent_map, explorer.twins, explorer.metrics, explorer.training]
        assert all(view is not None for view in views)  # every tab built in this session
        pages.append(page)
        docs.append(pn.state.curdoc)
        return page

    port = serve_and_wait(app)
    session = visit(f"http://localhost:{port}/", arguments={"tab": "4"})
    try:
        doc = docs[-1]
        assert pages[-1].explorer.tabs.active == 4  # the permalink's tab is the open one
        assert not [cb for cb in doc.session_callbacks if isinstance(cb, BokehPeriodicCallback)]
        assert not pn.state._periodic.get(doc)
        assert pages[-1].explorer.training.feed.n_subscribers >= 1
    finally:
        session.close()
