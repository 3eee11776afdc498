"""The Training tab refuses to start processes for a visitor that is not on the serving
machine (twinviz.app.access): decided on the server from the session's client address."""
from __future__ import annotations

import pytest

from twinviz.app import access
from twinviz.spectra.dataset import save_spectra

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from twinviz.testing import toy_dataset

    root = tmp_path_factory.mktemp("data")
    save_spectra(toy_dataset(10, seed=1), root / "train.nc")
    return root


@pytest.fixture
def serve_tab(serve, data_dir, tmp_path):
    from twinviz.app.training import TrainingTab

    tabs = []

    def start():
        def app():
            tabs.append(TrainingTab(runs_dir=str(tmp_path / "runs"), data_dir=str(data_dir), poll_period=250))
            return tabs[-1]

        return serve(app)

    yield start, tabs
    for tab in tabs:
        tab.manager.stop_background()


def test_a_local_browser_may_launch(page, serve_tab, console_errors, server_errors, monkeypatch):
    monkeypatch.delenv(access.ALLOW_REMOTE_ENV, raising=False)
    start, tabs = serve_tab
    page.goto(start())
    page.get_by_role("button", name="Launch").wait_for()
    assert page.get_by_role("button", name="Launch").is_enabled()
    assert access.is_loopback(tabs[-1].access.client)  # read from the session's real request
    assert not page.locator(".tv-access-refused").is_visible()


def test_a_remote_visitor_sees_launch_disabled_with_the_reason(page, serve_tab, console_errors, server_errors,
                                                               monkeypatch, tmp_path, artifacts):
    monkeypatch.delenv(access.ALLOW_REMOTE_ENV, raising=False)
    # The server classifies this session's client as a machine elsewhere on the network.
    monkeypatch.setattr(access, "session_client", lambda: "192.0.2.7")
    start, tabs = serve_tab
    page.goto(start())
    launch = page.get_by_role("button", name="Launch")
    launch.wait_for()
    assert launch.is_disabled()
    reason = page.locator(".tv-access-refused")
    reason.get_by_text("this page is open from 192.0.2.7").wait_for(timeout=10_000)
    reason.get_by_text("TWINVIZ_ALLOW_REMOTE_TRAINING=1").wait_for(timeout=5_000)
    page.screenshot(path=str(artifacts / "training_access_refused.png"), full_page=True)
    # A client that sends the click anyway (not through the disabled button) is refused too.
    assert tabs[-1]._on_launch() is None
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
