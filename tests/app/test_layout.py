"""The assembled app: tabs with help text, metrics from the evaluation, notebooks, errors."""
import json

import bokeh.models
import numpy as np
import panel as pn

import twinviz.app
from twinviz.app.layout import Explorer, build_page, error_page
from twinviz.app.metrics import MetricsView, report_frame
from twinviz.app.training import TrainingTab


def test_explore_returns_one_viewer_with_all_tabs(sample_paths):
    app = twinviz.app.explore(*sample_paths, star=12)
    assert isinstance(app, pn.viewable.Viewer) and app.state.star == 12
    names = [t.name for t in app.tabs.objects]
    assert names[:4] == ["Swap explorer", "Latent map", "Twins", "Metrics"]
    root = pn.panel(app).get_root()
    tabs = root.select_one({"type": bokeh.models.Tabs})
    assert [panel.title for panel in tabs.tabs][:4] == names[:4]


def test_views_share_one_state_per_session(sample_paths):
    app = twinviz.app.explore(*sample_paths)
    app.state.star = 30
    data = app.state.data
    distance = np.abs(data.z - data.z[30]).sum(axis=1)
    distance[30] = np.inf
    table = app.twins.table.value
    assert str(table["star"].iloc[0]) == str(data.star_ids[np.argmin(distance)])  # nearest L1 first
    assert list(table["rank"].iloc[:3]) == [1, 2, 3]
    assert "star 1030" in app.swap.star_text.object


def test_page_uses_the_template_titled_twinviz(app_data):
    page = build_page(app_data, sync_url=False)
    assert isinstance(page, pn.template.BootstrapTemplate) and page.title == "twinviz"


def test_error_page_is_readable(app_data):
    page = error_page("--data x.nc: file: does not exist. Fix: check the path")
    alert = page.main[0]
    assert isinstance(alert, pn.pane.Alert) and "does not exist" in alert.object


def test_app_arguments_are_parsed():
    args = twinviz.app.main_args(["--model", "m", "--data", "d.nc", "--runs", "r"])
    assert args == {"model": "m", "data": "d.nc", "latents": None, "pixel_finder": None, "runs": "r",
                    "data_dir": None}
    inputs, training = twinviz.app.split_args(args)
    assert inputs == {"model": "m", "data": "d.nc", "latents": None, "pixel_finder": None}
    assert training == {"runs": "r", "data_dir": None}


def test_metrics_view_shows_a_cached_report_beside_the_papers(state, tmp_path):
    report = {"n_stars": 120, "n_with_twin": 120, "thresholds": {"rank_0p1": 0, "rank_1": 1},
              "methods": [{"key": "fader", "label": "fader network", "mse": 1e-4, "swapped_mse": 2e-4,
                           "rank1": 0.5, "within_0p1": 0.5, "within_1": 0.6,
                           "cumulative_rank_curve": {"rank": [1, 2, 10], "fraction": [0.5, 0.6, 0.9]}}],
              "paper_reference": [{"label": "paper, fader network", "mse": 2.2e-6, "swapped_mse": 3.7e-4,
                                   "rank1": 0.607, "within_0p1": 0.823, "within_1": 0.937, "note": ""}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    state.data.report_path = path
    try:
        view = MetricsView(state)
    finally:
        state.data.report_path = None
    frame = report_frame(report)
    assert list(frame["rank 1"]) == ["50.0 %", "60.7 %"]
    assert view.table.visible and list(view.table.value["rank 1"]) == ["50.0 %", "60.7 %"]
    assert "twin rank ≤ 0" in view.status.object and "rank ≤ 1." in view.status.object


def test_metrics_view_offers_to_compute_a_missing_report(state):
    view = MetricsView(state)
    assert view.compute_button.visible and view.compute_button in view.body.objects
    assert not view.table.visible and not view.curve.visible


def test_open_model_swaps_this_sessions_views_to_another_model(app_data, synth_paths, tmp_path):
    """"Open in explorer" (the Training tab's callback) loads another model + dataset into the
    session's tabs, keeping the Training tab, without touching other sessions."""
    explorer = Explorer(app_data, training={"runs": str(tmp_path / "runs"), "data_dir": str(tmp_path)})
    other = Explorer(app_data, training=False)
    n_tabs = len(explorer.tabs)
    model_dir, data_path, _ = synth_paths
    explorer.open_model(model_dir=model_dir, data_path=data_path).join(timeout=120)
    assert explorer.state.data.data_path == data_path
    assert explorer.swap.state is explorer.state and explorer.twins.state is explorer.state
    assert len(explorer.tabs) == n_tabs and explorer.tabs.loading is False
    assert other.state.data is app_data


def test_open_model_with_a_bad_path_keeps_the_current_model(app_data, tmp_path):
    explorer = Explorer(app_data, training=False)
    explorer.open_model(model_dir=tmp_path / "missing", data_path=tmp_path / "none.nc").join(timeout=60)
    assert explorer.state.data is app_data and explorer.tabs.loading is False


def test_training_tab_is_present_with_default_folders(app_data, tmp_path, monkeypatch):
    """With no --runs/--data-dir the tab uses ./runs and the data file's folder (a Path)."""
    monkeypatch.chdir(tmp_path)
    explorer = Explorer(app_data, training={})
    assert isinstance(explorer.training, TrainingTab)
    assert explorer.tabs._names[-1] == "Training"
    assert explorer.training.data_dir == str(app_data.data_path.parent)


def test_a_tab_is_built_when_first_shown_and_then_kept(app_data):
    """A page builds only its open tab; showing another builds that one (once), in its tab."""
    explorer = Explorer(app_data, training=False)
    slots = dict(zip(explorer.tabs._names, explorer.tabs.objects))
    assert [name for name, slot in slots.items() if slot.objects] == ["Swap explorer"]
    explorer.tabs.active = 2
    shown, twins = slots["Twins"].objects, explorer.twins
    assert len(shown) == 1 and twins.state is explorer.state
    assert not slots["Latent map"].objects and not slots["Metrics"].objects
    explorer.tabs.active = 0
    explorer.tabs.active = 2
    assert slots["Twins"].objects == shown and explorer.twins is twins  # built once, kept
    explorer.tabs.active = 0
    explorer.state.star = 7  # a built view follows the selection while hidden
    distance = np.abs(app_data.search_z - app_data.search_z[7]).sum(axis=1)
    distance[7] = np.inf
    assert str(twins.table.value["star"].iloc[0]) == str(app_data.star_ids[np.argmin(distance)])
