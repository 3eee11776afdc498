"""The training tab in a real browser: launch a tiny run, watch it, open it, cancel one."""
from __future__ import annotations

import pytest

from twinviz.spectra.dataset import save_spectra
from twinviz.testing import TINY_TRAINING, toy_dataset, wait_for

pytestmark = pytest.mark.ui

N_POINTS_JS = """() => {
  for (const doc of Bokeh.documents) {
    const source = doc.get_model_by_name('training-steps');
    if (source) return source.data.step.length;
  }
  return -1;
}"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    save_spectra(toy_dataset(20, seed=1, n_pixels=48), root / "train.nc")
    save_spectra(toy_dataset(10, seed=2, n_pixels=48), root / "val.nc")
    return root


@pytest.fixture
def tab_server(serve, data_dir, tmp_path):
    """Serve a TrainingTab (tiny defaults, fast refresh); returns (url, opened calls, runs dir)."""
    from twinviz.app.training import TrainingTab
    from twinviz.runs.manager import RunManager

    opened = []
    runs_dir = tmp_path / "runs"

    def app():
        return TrainingTab(runs_dir=str(runs_dir), data_dir=str(data_dir), defaults=TINY_TRAINING,
                           on_open=lambda run, model_dir: opened.append((run.name, model_dir)),
                           poll_period=250)

    url = serve(app)
    yield url, opened, runs_dir
    manager = RunManager.shared(runs_dir, data_dir)
    for run in manager.list_runs():
        if run.status.get("state") == "running":
            manager.cancel(run, grace=5, wait=True)
    manager.stop_background()


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_launch_from_the_tab_streams_the_curve_finishes_and_opens_in_the_explorer(
        page, tab_server, console_errors, server_errors, artifacts):
    url, opened, runs_dir = tab_server
    page.goto(url)
    page.get_by_role("button", name="Launch").wait_for()
    page.get_by_label("Run name (optional)").fill("browser-run")
    set_number(page, "Epochs", 150)
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Launched browser-run").wait_for(timeout=10_000)

    # The loss curve grows in the browser while the run trains.
    first = wait_for(lambda: page.evaluate(N_POINTS_JS) > 0 and page.evaluate(N_POINTS_JS), timeout=60)
    assert page.get_by_text("browser-run — running").is_visible()
    later = wait_for(lambda: page.evaluate(N_POINTS_JS) > first and page.evaluate(N_POINTS_JS), timeout=30)
    assert later > first
    page.screenshot(path=str(artifacts / "training_tab_running.png"), full_page=True)

    page.get_by_text("browser-run — done").wait_for(timeout=90_000)
    written = (runs_dir / "browser-run" / "metrics.jsonl").read_text().count('"kind": "step"')
    # Every step record reaches the browser (the curves are sent before the title says done;
    # the wait only covers the browser applying the messages it already has).
    assert wait_for(lambda: page.evaluate(N_POINTS_JS) == written, timeout=10)
    page.get_by_role("gridcell", name="done").wait_for()
    page.get_by_text("training done").first.wait_for()  # the log tail

    page.get_by_role("button", name="Open in explorer").click()
    page.get_by_text("Opened the best model of browser-run").wait_for(timeout=10_000)
    assert opened == [("browser-run", runs_dir / "browser-run" / "model")]
    page.screenshot(path=str(artifacts / "training_tab_done.png"), full_page=True)


def test_another_visitor_sees_the_live_run_and_can_cancel_it(page, context, tab_server, console_errors,
                                                             server_errors, artifacts):
    url, opened, runs_dir = tab_server
    page.goto(url)
    page.get_by_label("Run name (optional)").fill("to-cancel")
    set_number(page, "Epochs", 3000)
    page.get_by_role("button", name="Launch").click()
    wait_for(lambda: page.evaluate(N_POINTS_JS) > 0, timeout=60)

    # A second page (another visitor, or the same one reconnecting) sees the run live.
    other = context.new_page()
    other.on("pageerror", lambda exc: console_errors.append(f"page error (2nd page): {exc}"))
    other.on("console", lambda msg: console_errors.append(f"console.error (2nd page): {msg.text}")
             if msg.type == "error" else None)
    other.goto(url)
    other.get_by_text("to-cancel — running").wait_for(timeout=20_000)
    wait_for(lambda: other.evaluate(N_POINTS_JS) > 0, timeout=20)
    other.get_by_role("button", name="Cancel").click()

    page.get_by_text("to-cancel — cancelled").wait_for(timeout=60_000)
    other.get_by_text("to-cancel — cancelled").wait_for(timeout=10_000)
    assert (runs_dir / "to-cancel" / "checkpoint" / "state.json").is_file()
    page.screenshot(path=str(artifacts / "training_tab_cancelled.png"), full_page=True)


def test_closing_the_page_unsubscribes_it_from_the_runs_feed(page, serve, data_dir, tmp_path, console_errors):
    from twinviz.app.training import TrainingTab

    tabs = []

    def app():
        tabs.append(TrainingTab(runs_dir=str(tmp_path / "runs"), data_dir=str(data_dir), poll_period=200))
        return tabs[-1]

    # Bokeh forgets a closed page's session after unused_session_lifetime.
    url = serve(app, check_unused_sessions_milliseconds=500, unused_session_lifetime_milliseconds=3000)
    page.goto(url)
    page.get_by_role("button", name="Launch").wait_for()
    tab = tabs[-1]
    assert tab._subscription is not None and tab.feed.n_subscribers == 1
    page.close()
    wait_for(lambda: tab._subscription is None and tab.feed.n_subscribers == 0, timeout=30)
    tab.manager.stop_background()


def test_invalid_settings_are_refused_with_the_reason(page, tab_server, console_errors, server_errors):
    url, opened, runs_dir = tab_server
    page.goto(url)
    set_number(page, "Batch size", 0)
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Not launched").wait_for(timeout=10_000)
    assert page.get_by_text("batch_size=0 is out of range").is_visible()
    assert not any(runs_dir.iterdir())
