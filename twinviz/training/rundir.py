"""The run directory a training writes (layout documented in docs/training.md).

runs/NAME/
  config.json     the TrainConfig
  status.json     {"state", "pid", "started", "finished", "epoch", "step", "total_steps",
                   "error", "best"} — replaced atomically on every update
  metrics.jsonl   one JSON object per line ("kind": "step" | "epoch"), flushed as written
  train.log       human-readable log
  model/          best model (FaderNetwork.from_pretrained)
  checkpoint/     latest trainer state for --resume
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from twinviz.atomic import write_json_atomic as _write_json_atomic

from twinviz import files as runfiles
from twinviz.training.config import TrainConfigError

__all__ = ["RunDirectory", "StopFlag", "iso_time", "parse_time", "prepare_fresh_run", "read_status",
           "truncate_metrics", "write_json_atomic"]


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON atomically (twinviz.atomic), turning numpy/torch scalars into numbers."""
    _write_json_atomic(path, obj, default=_json_default)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _clean(value):
    """JSON has no NaN/inf: map them to None so every line stays strictly valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def read_status(run_dir) -> dict | None:
    """The run's status.json as a dict, or None when there is none yet."""
    path = Path(run_dir) / runfiles.STATUS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def iso_time(t: float | None = None) -> str:
    """A Unix time (default: now) as the ISO-8601 local time with offset that status.json and
    launch.json hold, e.g. "2026-01-01T12:00:00+0000"."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() if t is None else t))


def parse_time(value) -> float | None:
    """The Unix time of an :func:`iso_time` string; None for a missing or unreadable one."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


class RunDirectory:
    """Writer of one run directory (used by rank 0 only)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.model_dir = self.path / runfiles.MODEL_DIR
        self.checkpoint_dir = self.path / runfiles.CHECKPOINT_DIR
        self.status: dict = read_status(self.path) or {}
        self._metrics = None
        self.logger = self._make_logger()

    # --- log ------------------------------------------------------------------------------
    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"twinviz.training.{self.path.resolve()}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        log_path = self.path / runfiles.LOG
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        logger.addHandler(stream)
        # A run manager may already send this process's stderr into train.log; writing it
        # a second time would duplicate every line.
        if not _same_file(sys.stderr, log_path):
            fh = logging.FileHandler(log_path, mode="a")
            fh.setFormatter(fmt)
            logger.addHandler(fh)
        return logger

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        for h in list(self.logger.handlers):
            self.logger.removeHandler(h)
            h.close()

    # --- config / status / metrics ------------------------------------------------------------
    def write_config(self, config) -> None:
        write_json_atomic(self.path / runfiles.CONFIG, config.to_dict())

    def update_status(self, **fields) -> dict:
        """Merge fields into status.json and replace it atomically."""
        self.status.update(_clean(fields))
        write_json_atomic(self.path / runfiles.STATUS, self.status)
        return self.status

    def start(self, total_steps: int, resumed: bool) -> None:
        now = time.time()
        fields = dict(state="running", pid=os.getpid(), finished=None, error=None,
                      total_steps=total_steps, updated=iso_time(now))
        if not resumed or "started" not in self.status:
            fields.update(started=iso_time(now), epoch=0, step=0, best={})
        self.update_status(**fields)

    def finish(self, state: str, error: str | None = None) -> None:
        self.update_status(state=state, finished=iso_time(), error=error, updated=iso_time())

    def log_metrics(self, record: dict) -> None:
        """Append one JSON line and flush it, so a follower never reads a partial object
        (a line is written by a single write call; readers take only complete lines)."""
        if self._metrics is None:
            self._metrics = open(self.path / runfiles.METRICS, "a", buffering=1)
        self._metrics.write(json.dumps(_clean(record), default=_json_default) + "\n")
        self._metrics.flush()


def _same_file(stream, path: Path) -> bool:
    try:
        return path.exists() and os.path.samestat(os.fstat(stream.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):
        return False


def prepare_fresh_run(out: Path, overwrite: bool) -> None:
    """Refuse to start a new run over an old one unless ``overwrite`` (then clear it)."""
    leftovers = [n for n in (runfiles.METRICS, runfiles.CHECKPOINT_DIR, runfiles.STATUS,
                                  runfiles.MODEL_DIR) if (out / n).exists()]
    if not leftovers:
        return
    if not overwrite:
        raise TrainConfigError(f"{out} already holds a run ({', '.join(leftovers)}). Fix: continue it "
                               "with --resume, choose another --out, or pass --overwrite")
    # train.log stays (a run manager may hold it open as our stdout); config.json is rewritten.
    for name in leftovers:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records logged after the checkpoint's step (they will be redone)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed run
        if rec.get("step", 0) <= step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between steps and stops cleanly."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._previous = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
