"""Who may launch and cancel training runs (twinviz.app.access), and how the Training tab
applies the decision on the server."""
from __future__ import annotations

import json

import pytest

from twinviz.app import access
from twinviz.app.access import NOT_SERVED, allow_remote_from_env, decide, is_loopback


@pytest.mark.parametrize("address, local", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.7", False), ("10.0.0.5", False), ("2001:db8::1", False), ("::ffff:192.0.2.7", False),
    ("0.0.0.0", False), ("localhost", False), ("", False), (None, False)])
def test_only_loopback_addresses_are_local(address, local):
    assert is_loopback(address) is local


def test_the_decision():
    assert decide(NOT_SERVED, allow_remote=False).allowed  # a notebook runs as its user
    assert decide("127.0.0.1", allow_remote=False) == access.Access(True, "127.0.0.1")
    assert decide("::1", allow_remote=False).allowed
    refused = decide("192.0.2.7", allow_remote=False)
    assert not refused.allowed and refused.client == "192.0.2.7"
    assert "192.0.2.7" in refused.reason and "TWINVIZ_ALLOW_REMOTE_TRAINING=1" in refused.reason
    assert "Fix:" in refused.reason
    assert decide("192.0.2.7", allow_remote=True).allowed  # the documented opt-in
    assert not decide(None, allow_remote=False).allowed  # a served session without an address
    assert not decide(None, allow_remote=True).allowed  # … is refused even with the opt-in


@pytest.mark.parametrize("value, allowed", [("1", True), ("true", True), ("YES", True), ("on", True),
                                            ("0", False), ("", False), ("no", False), ("2", False)])
def test_the_opt_in_variable(value, allowed):
    assert allow_remote_from_env({"TWINVIZ_ALLOW_REMOTE_TRAINING": value}) is allowed
    assert allow_remote_from_env({}) is False


def test_outside_a_server_the_current_session_may_launch():
    assert access.session_client() is NOT_SERVED
    assert access.training_access().allowed


def _finished_run(runs_dir, name="done-run"):
    """A run directory as a finished `twinviz train` leaves it (status + model config)."""
    run = runs_dir / name
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    (run / "status.json").write_text(json.dumps({"state": "done", "started": None, "finished": None,
                                                 "step": 2, "total_steps": 2, "best": {}}))
    return run


@pytest.fixture
def tab_factory(sample_paths, tmp_path):
    from twinviz.app.training import TrainingTab

    made = []

    def make(**kw):
        tab = TrainingTab(runs_dir=str(tmp_path / "runs"), data_dir=str(sample_paths[1].parent), **kw)
        made.append(tab)
        return tab

    yield make
    for tab in made:
        tab._unsubscribe()
        tab.manager.stop_background()


def test_a_remote_session_cannot_launch_or_cancel(tab_factory, monkeypatch, tmp_path):
    monkeypatch.setattr(access, "session_client", lambda: "192.0.2.7")
    monkeypatch.delenv("TWINVIZ_ALLOW_REMOTE_TRAINING", raising=False)
    tab = tab_factory()
    assert tab.launch_button.disabled and tab.access_message.visible
    assert "192.0.2.7" in tab.access_message.object
    assert tab._on_launch() is None  # what a crafted click event would reach: refused on the server
    assert "Not allowed" in tab.form_message.object
    assert not any((tmp_path / "runs").iterdir())
    _finished_run(tmp_path / "runs")
    tab.selected = "done-run"
    tab._refresh()
    assert tab.cancel_button.disabled and not tab.open_button.disabled  # following and opening stay


def test_the_opt_in_lets_a_remote_session_launch(tab_factory, monkeypatch):
    monkeypatch.setattr(access, "session_client", lambda: "192.0.2.7")
    monkeypatch.setenv("TWINVIZ_ALLOW_REMOTE_TRAINING", "1")
    assert not tab_factory().launch_button.disabled and not tab_factory().access_message.visible
    monkeypatch.delenv("TWINVIZ_ALLOW_REMOTE_TRAINING")
    assert not tab_factory(allow_remote=True).launch_button.disabled


def test_the_form_offers_spectra_only_with_the_explored_data_as_default(tab_factory, sample_paths):
    tab = tab_factory(defaults={"data": sample_paths[1].name})
    assert list(tab.data_select.options.values()) == ["sample.nc"]  # not sample.latents.nc
    assert tab.data_select.value == "sample.nc" and tab.val_select.value == ""
    values = tab.form_values()
    assert values["data"] == "sample.nc" and values["val"] is None


def test_opened_is_said_only_once_the_model_has_loaded(tab_factory, tmp_path):
    from concurrent.futures import Future

    pending = []
    tab = tab_factory(on_open=lambda run, model_dir: pending.append(Future()) or pending[-1])
    _finished_run(tmp_path / "runs")
    tab.selected = "done-run"
    tab._on_open()
    assert "Opening the best model of **done-run**" in tab.run_message.object
    assert tab.opened is None and "Opened" not in tab.run_message.object
    pending[-1].set_result(None)  # the explorer has swapped the model in
    assert tab.opened["run"] == "done-run" and "Opened the best model" in tab.run_message.object
    tab._on_open()
    pending[-1].set_exception(RuntimeError("model.safetensors: cannot be read"))
    assert tab.run_message.alert_type == "danger" and "cannot be read" in tab.run_message.object


def test_the_documented_ways_to_serve_bind_to_localhost():
    """Every command block that starts the app in README.md and docs/ binds to localhost; the
    only other address appears in docs/app.md's "Exposing the app", next to authentication."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    commands = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        in_block = False
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                in_block = not in_block
            elif in_block and "panel serve" in line.split("#")[0] and "`" not in line.split("#")[0]:
                commands.append((doc.name, line))
        for inline in re.findall(r"`(panel serve app\.py [^`]*--args[^`]*)`", doc.read_text()):
            commands.append((doc.name, inline))
    assert len(commands) >= 4, commands
    for name, line in commands:
        assert "--address localhost" in line, f"{name}: {line}"
    exposing = (root / "docs" / "app.md").read_text().split("## Exposing the app")[1].split("\n## ")[0]
    assert "--address 0.0.0.0 --basic-auth" in exposing and "TWINVIZ_ALLOW_REMOTE_TRAINING=1" in exposing
