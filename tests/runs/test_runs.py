"""The run manager (twinviz.runs): real `twinviz train` child processes on tiny data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from twinviz.runs import MetricsFollower, Run, RunError, RunManager, devices, log_tail, resolve_devices
from twinviz.devices import DeviceError
from twinviz.spectra.dataset import save_spectra
from twinviz.testing import TINY_TRAINING, toy_dataset, wait_for

# A run small enough to finish in a few seconds on one CPU core.
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    save_spectra(toy_dataset(20, seed=1, n_pixels=48), root / "train.nc")
    save_spectra(toy_dataset(10, seed=2, n_pixels=48), root / "val.nc")
    (root / "broken.nc").write_text("this is not a netCDF file\n")
    return root


@pytest.fixture
def manager(tmp_path, data_dir):
    mgr = RunManager(tmp_path / "runs", data_dir)
    yield mgr
    for run in mgr.list_runs():  # never leave a trainer running after a test
        if run.status.get("state") == "running":
            mgr.cancel(run, grace=2, wait=True)


# --- a run from launch to a loadable model ---------------------------------------------------
def test_launched_run_runs_streams_metrics_and_ends_done_with_a_loadable_model(manager):
    run = manager.launch(TINY_TRAINING, name="tiny")
    assert run.state in ("queued", "running")
    wait_for(lambda: run.state != "queued", timeout=10)
    info = run.launch_info
    assert info["argv"][:4] == [sys.executable, "-m", "twinviz", "train"]
    assert os.getpgid(info["pid"]) == info["pid"]  # its own process group (torch loads slowly)
    assert manager.wait(run, timeout=120) == "done", run.log_tail()
    records = manager.metrics(run)
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(epochs) == 2 and steps and "recon" in steps[0] and "val_rank1" in epochs[-1]
    assert run.progress == 1.0 and run.duration is not None and run.best
    summary = manager.summaries(max_age=0)[0]
    assert summary["name"] == "tiny" and summary["state"] == "done" and summary["devices"] == ["cpu"]
    assert summary["best"] == run.best and summary["eta"] is None
    from twinviz.model import FaderNetwork

    model = FaderNetwork.from_pretrained(run.model_for_explorer())
    assert model.config.latent_dim == 4
    assert run.model_for_explorer() == run.model_dir
    assert "training done" in run.log_tail()


def test_metrics_are_read_incrementally_as_the_run_writes(manager):
    run = manager.launch(dict(TINY_TRAINING, epochs=3000), name="long")
    first = wait_for(lambda: list(manager.metrics(run)), timeout=60)
    later = wait_for(lambda: len(manager.metrics(run)) > len(first) and manager.metrics(run))
    assert later[:len(first)] == first  # old records kept, new ones appended
    follower = manager._followers[run.name]
    assert follower.offset <= (run.path / "metrics.jsonl").stat().st_size
    manager.cancel(run, grace=10, wait=True)


# --- cancel, crash, loss ---------------------------------------------------------------------
def test_cancel_stops_the_run_cancelled_with_a_usable_checkpoint(manager):
    run = manager.launch(dict(TINY_TRAINING, epochs=3000), name="to-cancel")
    wait_for(lambda: any(r["kind"] == "epoch" for r in manager.metrics(run)), timeout=60)
    manager.cancel(run, grace=20)
    assert manager.wait(run, timeout=60) == "cancelled"
    assert not run.launch_info.get("killed")  # stopped by SIGTERM, not forced
    from twinviz.training import load_checkpoint

    model, _, progress, _ = load_checkpoint(run.checkpoint_dir)
    assert progress["step"] > 0
    assert run.model_for_explorer().is_dir()


def test_cancel_with_wait_returns_only_once_the_process_has_exited_and_been_reaped(manager):
    """The trainer records "cancelled" before it exits: cancel(wait=True) must not return then,
    or a queued run could start on a device whose memory is still held."""
    from twinviz.runs.processes import group_alive

    run = manager.launch(dict(TINY_TRAINING, epochs=3000), name="reaped")
    wait_for(lambda: any(r["kind"] == "epoch" for r in manager.metrics(run)), timeout=60)
    pid = run.launch_info["pid"]
    manager.cancel(run, grace=20, wait=True)
    assert run.state == "cancelled"
    assert not group_alive(pid)  # no process of its group runs any more …
    assert run.name not in manager._children  # … and our child was reaped (no zombie left behind)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert run.launch_info["exited"]


def test_a_queued_run_waits_for_the_previous_process_on_its_device_to_exit(manager, monkeypatch):
    """A run that reports "cancelled" while its process still runs keeps its device busy."""
    from twinviz.runs.processes import group_alive

    slow_exit = ("import json, os, signal, sys, time\n"
                 "def stop(*a):\n"
                 "    st = json.load(open('status.json')) if os.path.exists('status.json') else {}\n"
                 "    st['state'] = 'cancelled'\n"
                 "    json.dump(st, open('status.json.tmp', 'w')); os.replace('status.json.tmp', 'status.json')\n"
                 "    open('recorded', 'w').close(); time.sleep(3); sys.exit(0)\n"
                 "signal.signal(signal.SIGTERM, stop)\n"
                 "print('ready', flush=True); time.sleep(600)\n")
    monkeypatch.setattr(manager, "_argv", lambda run, ids: [sys.executable, "-c", slow_exit])
    monkeypatch.setattr(manager, "cpu_slots", 1)
    first = manager.launch(TINY_TRAINING, name="first")
    wait_for(lambda: "ready" in first.log_tail())
    assert first.state == "running", first.status
    second = manager.launch(TINY_TRAINING, name="second")
    assert second.state == "queued"
    manager.cancel(first, grace=30)
    try:
        wait_for(lambda: (first.path / "recorded").exists(), timeout=20)
    except AssertionError:
        raise AssertionError(first.log_tail()) from None
    manager.poll()
    assert first.state == "cancelled" and second.state == "queued"  # recorded, but still running: busy
    wait_for(lambda: (manager.poll(), second.state != "queued")[1], timeout=30)
    assert not group_alive(first.launch_info["pid"])
    manager.cancel(second, grace=1, wait=True)


def test_cancel_kills_a_run_that_ignores_sigterm_after_the_grace_period(manager, monkeypatch):
    # A stand-in trainer that ignores SIGTERM: the manager must SIGKILL it after the grace.
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ignoring SIGTERM', flush=True); time.sleep(600)")
    monkeypatch.setattr(manager, "_argv", lambda run, ids: [sys.executable, "-c", stubborn])
    run = manager.launch(TINY_TRAINING, name="stubborn")
    wait_for(lambda: "ignoring" in run.log_tail())
    t0 = time.monotonic()
    manager.cancel(run, grace=1.0)
    assert manager.wait(run, timeout=20) == "cancelled"
    assert 0.9 < time.monotonic() - t0 < 15
    assert run.launch_info["killed"]
    assert "no checkpoint" in run.error


def test_a_launch_on_a_file_that_is_not_spectra_is_refused_with_the_reason(manager):
    with pytest.raises(RunError) as info:
        manager.launch(dict(TINY_TRAINING, data="broken.nc"), name="bad-data")
    assert "data: 'broken.nc' is not a spectra dataset" in str(info.value) and "Fix:" in str(info.value)
    other = toy_dataset(5, seed=3, n_pixels=40)  # another grid than train.nc's
    save_spectra(other, manager.data_dir / "other_grid.nc")
    with pytest.raises(RunError, match="val: .*other_grid.nc is on grid"):
        manager.launch(dict(TINY_TRAINING, val="other_grid.nc"))
    assert not any(manager.runs_dir.iterdir())  # nothing was created


def test_a_run_the_trainer_rejects_fails_with_the_trainers_message(manager):
    # The header is a valid dataset (the launch check reads no flux values); the trainer reads
    # the flux, finds NaN outside the mask and reports it.
    bad = toy_dataset(5, seed=3, n_pixels=48)
    bad["flux"].values[2, 5] = np.nan
    save_spectra(bad, manager.data_dir / "nan_flux.nc", validate_first=False)
    run = manager.launch(dict(TINY_TRAINING, data="nan_flux.nc"), name="crash")
    assert manager.wait(run, timeout=60) == "failed"
    assert run.error and "nan_flux.nc" in run.error and "NaN" in run.error
    assert run.launch_info["returncode"] != 0


# --- restart discovery -----------------------------------------------------------------------
def test_a_new_manager_finds_runs_and_reattaches_to_a_live_one(manager):
    done = manager.launch(TINY_TRAINING, name="earlier")
    manager.wait(done, timeout=120)
    live = manager.launch(dict(TINY_TRAINING, epochs=3000), name="live")
    wait_for(lambda: manager.metrics(live))

    restarted = RunManager(manager.runs_dir, manager.data_dir)
    runs = {r.name: r for r in restarted.list_runs()}
    assert set(runs) == {"earlier", "live"}
    assert runs["earlier"].state == "done" and runs["live"].state == "running"
    restarted.cancel(runs["live"], grace=20)  # the new manager can stop it, too
    assert restarted.wait(runs["live"], timeout=60) == "cancelled"
    manager.poll()  # the original parent reaps its child and agrees
    assert live.state == "cancelled"


def test_a_running_run_whose_process_is_gone_is_reported_lost(manager):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = manager.runs_dir / "orphan"
    path.mkdir()
    (path / "status.json").write_text(json.dumps({"state": "running", "pid": gone.pid, "step": 3,
                                                  "total_steps": 10, "started": "2024-01-01T00:00:00+0000"}))
    (path / "train.log").write_text("step 3\nthe machine lost power here\n")
    run = RunManager(manager.runs_dir, manager.data_dir).get("orphan")
    assert run.state == "failed" and run.lost
    assert "lost" in run.error and "lost power" in run.error


# --- the queue -------------------------------------------------------------------------------
def test_a_second_cpu_run_waits_queued_until_the_first_ends(manager):
    first = manager.launch(dict(TINY_TRAINING, epochs=3000), name="first")
    second = manager.launch(TINY_TRAINING, name="second")
    assert first.state == "running" and second.state == "queued"
    assert second.launch_info["pid"] is None
    manager.cancel(first, grace=20)
    manager.wait(first, timeout=60)
    assert manager.wait(second, timeout=120) == "done"


def test_reading_a_queued_run_never_starts_it(manager, monkeypatch):
    # Stand-in trainers that just sleep (and die on SIGTERM): only the scheduling matters here.
    monkeypatch.setattr(manager, "_argv", lambda run, ids: [sys.executable, "-c", "import time; time.sleep(600)"])
    first = manager.launch(TINY_TRAINING, name="first")
    queued = manager.launch(TINY_TRAINING, name="waiting")
    assert first.state == "running" and queued.state == "queued"
    manager.cancel(first, grace=20)
    manager._children[first.name].wait(timeout=20)  # its device is free now, but nobody polled
    for _ in range(3):  # however often a queued run is read, it stays queued
        assert queued.state == "queued" and queued.summary()["state"] == "queued"
        assert queued.status["state"] == "queued" and queued.progress == 0.0 and queued.eta is None
        assert queued.devices == ["cpu"] and "queued" in repr(queued) and queued.metrics() == []
        assert Run(manager.runs_dir, queued.name).state == "queued"
    assert {s["name"]: s["state"] for s in manager.summaries(max_age=0)} == {"first": "running",
                                                                            "waiting": "queued"}
    assert queued.launch_info["pid"] is None
    manager.poll()  # only polling reaps the first run and starts the queued one
    assert first.state == "cancelled" and queued.state == "running" and queued.launch_info["pid"]
    manager.cancel(queued, grace=20, wait=True)


def test_resolve_devices_is_the_one_device_choice():
    gpus = ["cuda:0", "cuda:1", "cpu"]
    assert resolve_devices("auto", present=["cpu"]) == ["cpu"]
    assert resolve_devices("auto", present=gpus) == ["cuda:0"]
    assert resolve_devices("auto", present=gpus, busy=["cuda:0"]) == ["cuda:1"]
    assert resolve_devices("auto", present=gpus, busy=["cuda:0", "cuda:1"]) == ["cuda:0"]
    assert resolve_devices("cuda", present=gpus, local_rank=1) == ["cuda:1"]  # torchrun rank 1
    assert resolve_devices(["cuda:1", "cuda:0"], present=gpus) == ["cuda:0", "cuda:1"]
    for bad, message in ((["cpu", "cuda:0"], "not both"), ("cuda:7", "not present"), ([], "at least one"),
                         (["cuda:0", "cuda:0"], "twice")):
        with pytest.raises(DeviceError, match=message):
            resolve_devices(bad, present=gpus)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_devices("cuda", present=["cpu"])


def test_cancelling_a_queued_run_never_starts_it(manager):
    first = manager.launch(dict(TINY_TRAINING, epochs=3000), name="first")
    queued = manager.launch(TINY_TRAINING, name="queued")
    manager.cancel(queued)
    assert queued.state == "cancelled"
    manager.cancel(first, grace=20, wait=True)
    manager.poll()
    assert queued.state == "cancelled" and queued.launch_info["pid"] is None


def test_cpu_slots_allow_parallel_cpu_runs(tmp_path, data_dir):
    mgr = RunManager(tmp_path / "runs", data_dir, cpu_slots=2)
    a = mgr.launch(dict(TINY_TRAINING, epochs=3000), name="a")
    b = mgr.launch(dict(TINY_TRAINING, epochs=3000), name="b")
    try:
        assert a.state == "running" and b.state == "running"
    finally:
        mgr.cancel(a, grace=20)
        mgr.cancel(b, grace=20)
        mgr.wait(a, timeout=60)
        mgr.wait(b, timeout=60)


def test_multi_gpu_runs_use_torchrun_with_their_own_gpus(manager, monkeypatch):
    run = Run(manager, "ddp")
    argv = manager._argv(run, ["cuda:1", "cuda:3"])
    assert argv[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert argv[7:9] == ["twinviz", "train"]
    assert manager._env(["cuda:1", "cuda:3"])["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert manager._env(["cpu"])["CUDA_VISIBLE_DEVICES"] == ""


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs=0"),
    ("epochs", 10**7, "out of range"),
    ("batch_size", -5, "batch_size=-5"),
    ("lr", 5.0, "lr=5.0 is out of range"),
    ("adversary_weight", float("nan"), "must be finite"),
    ("latent_dim", "big", "must be a whole number"),
    ("hidden", [0], "hidden="),
    ("adversary_mode", "sideways", "adversary_mode"),
    ("no_such_option", 1, "not a training option"),
])
def test_validation_rejects_bad_values_with_a_clear_message(manager, field, value, message):
    with pytest.raises(RunError) as info:
        manager.launch(dict(TINY_TRAINING, **{field: value}))
    assert message in str(info.value)
    assert not any(manager.runs_dir.iterdir())  # nothing was created


@pytest.mark.parametrize("path", ["../outside.nc", "/etc/passwd", "sub/../../outside.nc",
                                  "link_out.nc", "missing.nc", ""])
def test_dataset_paths_must_resolve_inside_the_data_directory(manager, tmp_path, path):
    outside = tmp_path / "outside.nc"
    save_spectra(toy_dataset(3, seed=4, n_pixels=48), outside)
    link = manager.data_dir / "link_out.nc"
    if not link.is_symlink():
        link.symlink_to(outside)
    with pytest.raises(RunError) as info:
        manager.launch(dict(TINY_TRAINING, data=path))
    assert "data" in str(info.value)
    assert not any(manager.runs_dir.iterdir())


def test_validation_accepts_paths_inside_and_makes_them_absolute(manager):
    cfg, device_ids = manager.validate(dict(TINY_TRAINING, data=str(manager.data_dir / "train.nc")), "cpu")
    assert cfg.data == str((manager.data_dir / "train.nc").resolve())
    assert cfg.device == "cpu" and device_ids == ["cpu"] and cfg.progress is False


def test_run_names_and_devices_are_checked(manager):
    with pytest.raises(RunError, match="name="):
        manager.launch(TINY_TRAINING, name="../escape")
    with pytest.raises(RunError, match="not present"):
        manager.launch(TINY_TRAINING, devices=["cuda:7"])
    assert "train.nc" in manager.data_files() and "val.nc" in manager.data_files()
    assert "broken.nc" not in manager.data_files()  # only valid spectra datasets are offered


def test_devices_lists_what_is_there():
    found = devices()
    assert found[-1].id == "cpu" and "CPU only" in found[-1].label
    for d in found[:-1]:
        assert d.id.startswith("cuda:") and d.memory_gb > 0


# --- file following --------------------------------------------------------------------------
def test_metrics_follower_reads_only_appended_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.read_new() == []  # no file yet
    with open(path, "wb") as fh:
        fh.write(b'{"kind": "step", "step": 1}\n{"kind": "st')
        fh.flush()
        assert follower.read_new() == [{"kind": "step", "step": 1}]
        fh.write(b'ep", "step": 2}\n')
        fh.flush()
        assert follower.read_new() == [{"kind": "step", "step": 2}]
        assert follower.read_new() == []
    path.write_bytes(b'{"kind": "step", "step": 1}\n')  # rewritten shorter (a resumed run)
    assert follower.read_new() == [{"kind": "step", "step": 1}] and follower.reset


def test_log_tail_gives_the_last_lines(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert log_tail(path, 2) == "line 998\nline 999"
    assert log_tail(tmp_path / "none.log") == ""
