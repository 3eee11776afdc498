"""``Run``: a read-only handle on one run directory.

Every property reads the files afresh and nothing else: reading a run never reaps, marks,
schedules or starts anything (that is :meth:`twinviz.runs.RunManager.poll`'s job), so what a
``Run`` reports is as current as the last poll — the manager's ``launch``, ``list_runs``,
``get``, ``wait`` and the app's background poller all poll.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from twinviz.devices import devices as present_devices
from twinviz.runs.follow import log_tail
from twinviz import files as runfiles
from twinviz.training.rundir import parse_time, read_status

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "Run", "read_json", "read_status_safe"]

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")


def read_json(path: Path) -> dict:
    """A JSON object file as a dict; {} when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def read_status_safe(path: Path) -> dict:
    """A run directory's status.json, {} when there is none (or a foreign, broken one)."""
    try:
        return read_status(path) or {}
    except (OSError, ValueError):
        return {}  # replaced atomically, so only a foreign, broken file lands here


class Run:
    """A handle on the run directory ``runs_dir/name``.

    ``Run(manager, name)`` (or ``Run(runs_dir, name)``): with a manager, :meth:`metrics` uses its
    shared incremental reader.
    """

    def __init__(self, manager_or_runs_dir, name: str):
        runs_dir = getattr(manager_or_runs_dir, "runs_dir", manager_or_runs_dir)
        self.manager = manager_or_runs_dir if runs_dir is not manager_or_runs_dir else None
        self.name = name
        self.path = Path(runs_dir) / name

    def __repr__(self) -> str:
        return f"Run({self.name!r}, state={self.status.get('state')!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def status(self) -> dict:
        """status.json as written by the trainer (or by the manager for runs that ended
        without the trainer recording it). Before the trainer writes it, a status derived
        from launch.json: "queued", or "running" once the process is started. (The manager
        never writes status.json for a run it is about to start: the trainer refuses an out
        folder that already holds one.)"""
        status = read_status_safe(self.path)
        if status:
            return status
        info = self.launch_info
        if not info:
            return {}
        launched = info.get("launched")
        return {"state": "running" if launched else "queued", "pid": info.get("pid"),
                "started": launched, "finished": None, "epoch": 0, "step": 0,
                "total_steps": None, "error": None, "best": {}}

    @property
    def launch_info(self) -> dict:
        """launch.json: argv, devices, pid, queued/launched times, cancel request."""
        return read_json(self.path / runfiles.LAUNCH)

    @property
    def state(self) -> str:
        """"queued", "running", "done", "failed" or "cancelled", as of the last poll."""
        return self.status.get("state") or "unknown"

    @property
    def lost(self) -> bool:
        """True when the run's process vanished without recording its end."""
        return bool(self.status.get("lost"))

    @property
    def config(self) -> dict:
        return read_json(self.path / runfiles.CONFIG)

    @property
    def devices(self) -> list[str]:
        """The devices the run holds: those of its launch, else (a run started by hand with
        ``twinviz train``) the device of its config."""
        listed = self.launch_info.get("devices")
        if listed:
            return list(listed)
        device = str(self.config.get("device", "auto"))
        if device == "cpu":
            return ["cpu"]
        if device.startswith("cuda:"):
            return [device]
        has_gpu = any(d.id.startswith("cuda:") for d in present_devices())
        return ["cuda:0"] if has_gpu else ["cpu"]

    @property
    def error(self) -> str | None:
        return self.status.get("error")

    @property
    def best(self) -> dict:
        return self.status.get("best") or {}

    @property
    def started(self) -> float | None:
        """Start time (Unix seconds), None while queued."""
        return parse_time(self.status.get("started"))

    @property
    def finished(self) -> float | None:
        return parse_time(self.status.get("finished"))

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to now while running)."""
        return _duration_of(self.status)

    @property
    def progress(self) -> float:
        """Fraction of the planned optimisation steps done, 0 … 1."""
        return _progress_of(self.status)

    @property
    def eta(self) -> float | None:
        """Estimated seconds left, from the average step rate so far; None if unknown."""
        return _eta_of(self.status)

    def summary(self) -> dict:
        """What a runs table shows, from a single read of each file: name, state, lost,
        started / finished (Unix s), duration, eta (s), progress (0…1), step, total_steps,
        epoch, devices, best, twin_metric (its validation scores, once fitted), error, and the
        config's data and val (what its numbers were measured on)."""
        st = self.status
        config = self.config
        return {"name": self.name, "state": st.get("state") or "unknown", "lost": bool(st.get("lost")),
                "started": parse_time(st.get("started")), "finished": parse_time(st.get("finished")),
                "duration": _duration_of(st), "eta": _eta_of(st), "progress": _progress_of(st),
                "step": st.get("step") or 0, "total_steps": st.get("total_steps"),
                "epoch": st.get("epoch"), "devices": self.devices, "best": st.get("best") or {},
                "twin_metric": twin_metric_scores(self.model_dir) if st.get("state") == "done" else {},
                "error": st.get("error"), "data": config.get("data"), "val": config.get("val")}

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def metrics(self) -> list[dict]:
        """All metrics records so far (through the manager's shared incremental reader)."""
        if self.manager is None:
            from twinviz.runs.follow import MetricsFollower

            return MetricsFollower(self.metrics_path).read_new()
        return self.manager.metrics(self)

    @property
    def log_path(self) -> Path:
        return self.path / runfiles.LOG

    @property
    def metrics_path(self) -> Path:
        return self.path / runfiles.METRICS

    @property
    def model_dir(self) -> Path:
        return self.path / runfiles.MODEL_DIR

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / runfiles.CHECKPOINT_DIR

    @property
    def has_model(self) -> bool:
        """Whether ``model/`` holds a saved model."""
        return (self.model_dir / runfiles.MODEL_CONFIG).is_file()

    @property
    def has_checkpoint(self) -> bool:
        return (self.checkpoint_dir / runfiles.CHECKPOINT_STATE).is_file()

    def model_for_explorer(self) -> Path | None:
        """A directory ``FaderNetwork.from_pretrained`` can open for this run, or None.

        A running run gives its latest checkpoint, exported once per checkpoint step to
        ``snapshot-step<N>/`` (the checkpoint itself also holds optimiser state); any other
        run gives its best model (``model/``), falling back to the checkpoint. (The export
        writes into the run directory; it never changes the run's state.)
        """
        has_model = self.has_model
        if self.status.get("state") == "running" or not has_model:
            snapshot = self._export_checkpoint()
            if snapshot is not None:
                return snapshot
        return self.model_dir if has_model else None

    def _export_checkpoint(self) -> Path | None:
        state_path = self.checkpoint_dir / runfiles.CHECKPOINT_STATE
        if not state_path.is_file():
            return None
        from twinviz.training.checkpoint import CheckpointError, load_checkpoint

        for _ in range(3):  # the trainer may replace the checkpoint while we read it
            try:
                step = int(json.loads(state_path.read_text())["progress"]["step"])
                target = self.path / f"{runfiles.SNAPSHOT_PREFIX}{step}"
                if (target / runfiles.MODEL_CONFIG).is_file():
                    return target
                model = load_checkpoint(self.checkpoint_dir)[0]
            except (CheckpointError, OSError, ValueError, KeyError):
                time.sleep(0.2)
                continue
            model.save_pretrained(target)
            for old in self.path.glob(f"{runfiles.SNAPSHOT_PREFIX}*"):  # keep only the newest
                if old != target and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            return target
        return None


def _duration_of(status: dict) -> float | None:
    start = parse_time(status.get("started"))
    if start is None:
        return None
    end = parse_time(status.get("finished"))
    if end is None:
        end = time.time() if status.get("state") == "running" else start
    return max(0.0, end - start)


def _progress_of(status: dict) -> float:
    if status.get("state") == "done":
        return 1.0
    total, step = status.get("total_steps") or 0, status.get("step") or 0
    return min(1.0, step / total) if total else 0.0


def _eta_of(status: dict) -> float | None:
    if status.get("state") != "running":
        return None
    total, step, elapsed = status.get("total_steps") or 0, status.get("step") or 0, _duration_of(status)
    if not total or not step or not elapsed:
        return None
    return elapsed * (total - step) / step


_metric_scores: dict = {}  # (path, mtime) → scores: a finished run's file is read once


def twin_metric_scores(model_dir: Path) -> dict:
    """{"axes", "rank1", "raw_rank1"} on validation of the twin metric stored in ``model_dir``
    (twinviz/twins/metric.py), or {} when it has none or the file cannot be read."""
    from twinviz.twins.metric import METRIC_CONFIG, candidate_name

    path = Path(model_dir) / METRIC_CONFIG
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return {}
    if key not in _metric_scores:
        try:
            info = json.loads(path.read_text())
            name = candidate_name(int(info["dims"]), int(info.get("degree", 0)))
            table = info["validation"]
            _metric_scores[key] = {"axes": name, "rank1": float(table[name]["rank1"]),
                                   "raw_rank1": float(table["raw"]["rank1"])}
        except (OSError, ValueError, KeyError, TypeError):
            _metric_scores[key] = {}
    return _metric_scores[key]
