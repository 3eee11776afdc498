"""Background training runs: launch, queue, follow, cancel and list them (no app needed).

A run is a directory ``RUNS_DIR/NAME`` written by ``twinviz train`` (layout in
docs/training.md: ``config.json``, ``status.json``, ``metrics.jsonl``, ``train.log``,
``model/``, ``checkpoint/``) plus one file of the manager's own, ``launch.json`` (the
argument list, the devices, the launcher's PID and start time, a pending cancel).
Everything a manager knows is on disk, so a new :class:`RunManager` on the same folder —
after an app restart, or in another process — sees every run, re-attaches to the live ones
by PID and reports the ones whose process vanished as failed ("lost").

Public API (docs/runs.md)
-------------------------
``RunManager(runs_dir, data_dir, cpu_slots=1)``
    ``launch(config, name=None, devices="auto") -> Run``  validate, create, queue, start
    ``list_runs() -> list[Run]``, ``get(name) -> Run``, ``poll()``   reap, mark, schedule
    ``cancel(run, grace=30.0, wait=False)``   SIGTERM the process group, SIGKILL after grace
    ``wait(run, timeout=None) -> str``        block until the run ends (tests, scripts)
    ``metrics(run) -> list[dict]``            all records so far (read incrementally, shared)
    ``summaries() -> list[dict]``             ``Run.summary()`` of all runs (cached briefly)
    ``validate(config, devices) -> (TrainConfig, list[str])``  raises :class:`RunError`
    ``data_files() -> list[str]``             dataset files under the data directory
``devices() -> list[Device]``   CUDA devices (name, memory) or one "CPU only" entry
``MetricsFollower(path).read_new() -> list[dict]``   only the bytes appended since last time
``Run``  a handle on one run directory: ``state``, ``status``, ``config``, ``progress``,
    ``eta``, ``duration``, ``best``, ``log_tail()``, ``model_dir``, ``checkpoint_dir``,
    ``model_for_explorer()`` (a running run's latest checkpoint as a model directory, else
    its best model).

Queue policy: every GPU is a slot that holds one run at a time; CPU runs share ``cpu_slots``
slots (default 1, since training already uses all cores). A launched run is "queued" until
all of its devices are free; :meth:`RunManager.poll` (called by ``list_runs``, ``wait`` and
the app's poller) starts queued runs oldest first, skipping a run whose devices are busy so
it does not hold up runs that need other devices. Runs started by hand with
``twinviz train`` in the same folder occupy their device too.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from twinviz.training.config import TrainConfig, TrainConfigError
from twinviz.training.rundir import read_status, write_json_atomic

__all__ = ["ACTIVE_STATES", "Device", "FINAL_STATES", "LIMITS", "MetricsFollower", "Run",
           "RunError", "RunManager", "devices", "log_tail"]

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DATASET_SUFFIXES = (".nc", ".zarr", ".h5", ".hdf5")

# Upper (and tighter lower) bounds on top of TrainConfig.validate(): values beyond these are
# typing mistakes that would tie a GPU up for days or exhaust memory, not real experiments.
LIMITS: dict[str, tuple[float, float]] = {
    "epochs": (1, 10_000), "batch_size": (1, 65_536), "latent_dim": (1, 1024),
    "basis_dim": (0, 8192), "teff_bins": (2, 100), "logg_bins": (2, 100),
    "adversary_weight": (0.0, 100.0), "adversary_ramp_steps": (0, 10_000_000),
    "adversary_steps": (1, 100), "flux_err_floor": (1e-9, 1.0), "lr": (1e-9, 1.0),
    "adversary_lr": (1e-9, 1.0), "lr_min_factor": (0.0, 1.0), "warmup_steps": (0, 10_000_000),
    "weight_decay": (0.0, 1.0), "grad_clip": (0.0, 1e6), "max_steps": (0, 100_000_000),
    "seed": (0, 2**31 - 1), "num_threads": (0, 1024), "log_every": (1, 1_000_000),
    "val_max_stars": (1, 10_000_000), "checkpoint_every": (0, 100_000_000),
    "stream_block": (1, 10_000_000), "memory_limit_gb": (0.01, 4096.0),
}
HIDDEN_LIMITS = (1, 8192, 8)  # width range of each layer, number of layers


class RunError(ValueError):
    """A run that cannot be launched or managed; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


# --- devices ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Device:
    """One place a run can train: ``id`` is "cpu" or "cuda:N"; memory in GiB (0 for CPU)."""

    id: str
    name: str
    memory_gb: float = 0.0

    @property
    def label(self) -> str:
        if self.id == "cpu":
            return self.name
        return f"{self.id} — {self.name} ({self.memory_gb:.0f} GiB)"


_devices_cache: list[Device] | None = None


def devices(refresh: bool = False) -> list[Device]:
    """The CUDA devices actually present (name, memory), or a single "CPU only" device.

    Asks ``nvidia-smi`` first so the calling process (the app server) does not create a
    CUDA context just to list GPUs; falls back to torch. Cached after the first call.
    """
    global _devices_cache
    if _devices_cache is None or refresh:
        found = _nvidia_smi_devices()
        if found is None:
            found = _torch_devices()
        cpu = Device("cpu", f"CPU only ({os.cpu_count() or 1} cores)")
        _devices_cache = found or [cpu]
        if found:
            _devices_cache = found + [cpu]  # CPU stays selectable beside the GPUs
    return list(_devices_cache)


def _nvidia_smi_devices() -> list[Device] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    allowed = None
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        allowed = [int(v) for v in visible.split(",") if v.strip()]
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        index, name, mem_mib = int(parts[0]), parts[1], parts[2]
        if allowed is not None:
            if index not in allowed:
                continue
            index = allowed.index(index)  # the number the child will see
        try:
            mem = float(mem_mib) / 1024
        except ValueError:
            mem = 0.0
        found.append(Device(f"cuda:{index}", name, mem))
    return sorted(found, key=lambda d: int(d.id.split(":")[1]))


def _torch_devices() -> list[Device]:
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(Device(f"cuda:{i}", props.name, props.total_memory / 2**30))
        return out
    except Exception:  # a broken driver must not break the app: train on the CPU
        return []


# --- following files -------------------------------------------------------------------------
class MetricsFollower:
    """Reads the JSON records appended to a ``metrics.jsonl`` since the previous call.

    Keeps the byte offset and any incomplete last line (a writer may be half-way through it),
    so every byte is read once. When the file is replaced or truncated (a resumed run may
    rewrite it) it starts over and sets ``reset`` so a caller can drop what it had.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.reset = False
        self._partial = b""
        self._inode = None

    def read_new(self) -> list[dict]:
        """The complete records appended since the last call (malformed lines are skipped)."""
        self.reset = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
            self.offset, self._partial, self.reset = 0, b"", True
        self._inode = st.st_ino
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(st.st_size - self.offset)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def log_tail(path, lines: int = 40, max_bytes: int = 65_536) -> str:
    """The last ``lines`` lines of a text file (reads at most ``max_bytes`` from its end)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


# --- processes -------------------------------------------------------------------------------
def _proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a PID reused by
    another process apart from the one we launched; None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None, start_ticks: int | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_ticks is not None:
        now = _proc_start_ticks(pid)
        if now is not None and now != start_ticks:
            return False  # the PID now belongs to another process
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() if t is None else t))


def _parse_time(value) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


# --- one run ---------------------------------------------------------------------------------
class Run:
    """A handle on one run directory. Properties read the files afresh; ``state`` first lets
    the manager reap/mark/schedule, so it is always current."""

    def __init__(self, manager: "RunManager", name: str):
        self.manager = manager
        self.name = name
        self.path = manager.runs_dir / name

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
        return _read_json(self.path / "launch.json")

    @property
    def state(self) -> str:
        """"queued", "running", "done", "failed" or "cancelled" (current; polls the manager)."""
        self.manager.poll()
        return self.status.get("state") or "unknown"

    @property
    def lost(self) -> bool:
        """True when the run's process vanished without recording its end."""
        return bool(self.status.get("lost"))

    @property
    def config(self) -> dict:
        return _read_json(self.path / "config.json")

    @property
    def devices(self) -> list[str]:
        return self.manager._run_devices(self)

    @property
    def error(self) -> str | None:
        return self.status.get("error")

    @property
    def best(self) -> dict:
        return self.status.get("best") or {}

    @property
    def started(self) -> float | None:
        """Start time (Unix seconds), None while queued."""
        return _parse_time(self.status.get("started"))

    @property
    def finished(self) -> float | None:
        return _parse_time(self.status.get("finished"))

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
        epoch, devices, best, error."""
        st = self.status
        return {"name": self.name, "state": st.get("state") or "unknown", "lost": bool(st.get("lost")),
                "started": _parse_time(st.get("started")), "finished": _parse_time(st.get("finished")),
                "duration": _duration_of(st), "eta": _eta_of(st), "progress": _progress_of(st),
                "step": st.get("step") or 0, "total_steps": st.get("total_steps"),
                "epoch": st.get("epoch"), "devices": self.devices, "best": st.get("best") or {},
                "error": st.get("error")}

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.path / "train.log", lines)

    def metrics(self) -> list[dict]:
        """All metrics records so far (shared incremental reader of the manager)."""
        return self.manager.metrics(self)

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def model_for_explorer(self) -> Path | None:
        """A directory ``FaderNetwork.from_pretrained`` can open for this run, or None.

        A running run gives its latest checkpoint, exported once per checkpoint step to
        ``snapshot-step<N>/`` (the checkpoint itself also holds optimiser state); any other
        run gives its best model (``model/``), falling back to the checkpoint.
        """
        has_model = (self.model_dir / "config.json").is_file()
        if self.status.get("state") == "running" or not has_model:
            snapshot = self._export_checkpoint()
            if snapshot is not None:
                return snapshot
        return self.model_dir if has_model else None

    def _export_checkpoint(self) -> Path | None:
        state_path = self.checkpoint_dir / "state.json"
        if not state_path.is_file():
            return None
        from twinviz.training.checkpoint import CheckpointError, load_checkpoint

        for _ in range(3):  # the trainer may replace the checkpoint while we read it
            try:
                step = int(json.loads(state_path.read_text())["progress"]["step"])
                target = self.path / f"snapshot-step{step}"
                if (target / "config.json").is_file():
                    return target
                model = load_checkpoint(self.checkpoint_dir)[0]
            except (CheckpointError, OSError, ValueError, KeyError):
                time.sleep(0.2)
                continue
            model.save_pretrained(target)
            for old in self.path.glob("snapshot-step*"):  # keep only the newest snapshot
                if old != target and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
            return target
        return None


def _duration_of(status: dict) -> float | None:
    start = _parse_time(status.get("started"))
    if start is None:
        return None
    end = _parse_time(status.get("finished"))
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


def read_status_safe(path: Path) -> dict:
    try:
        return read_status(path) or {}
    except (OSError, ValueError):
        return {}  # replaced atomically, so only a foreign, broken file lands here


# --- the manager -----------------------------------------------------------------------------
class RunManager:
    """Launches and tracks training runs under ``runs_dir``; datasets must lie in ``data_dir``.

    Thread-safe; one manager per folder per process is enough (see :meth:`shared`). Several
    processes may manage the same folder: starting queued runs is serialised by a lock file.
    """

    _shared: dict[tuple, "RunManager"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, runs_dir, data_dir, cpu_slots: int = 1, python: str | None = None):
        self.runs_dir = Path(runs_dir).absolute()
        self.data_dir = Path(data_dir).absolute()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        if cpu_slots < 1:
            raise RunError(f"cpu_slots={cpu_slots} must be ≥ 1")
        self.cpu_slots = int(cpu_slots)
        self.python = python or sys.executable
        self._lock = threading.RLock()
        self._children: dict[str, subprocess.Popen] = {}
        self._followers: dict[str, MetricsFollower] = {}
        self._records: dict[str, list[dict]] = {}
        self._summaries: tuple[float, list[dict]] | None = None
        self._thread: threading.Thread | None = None
        self._stop_background = threading.Event()

    @classmethod
    def shared(cls, runs_dir, data_dir, **kw) -> "RunManager":
        """One manager per (runs_dir, data_dir) in this process, shared by all app sessions."""
        key = (str(Path(runs_dir).absolute()), str(Path(data_dir).absolute()))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(runs_dir, data_dir, **kw)
            return cls._shared[key]

    # --- discovery ---------------------------------------------------------------------------
    def get(self, name: str) -> Run:
        run = Run(self, name)
        if not run.path.is_dir():
            raise RunError(f"no run named {name!r} in {self.runs_dir}")
        return run

    def list_runs(self, refresh: bool = True) -> list[Run]:
        """Every run directory under ``runs_dir`` (newest first); with ``refresh`` (default)
        their states are brought up to date first (see :meth:`poll`)."""
        if refresh:
            self.poll()
        return self._scan()

    def _scan(self) -> list[Run]:
        runs = []
        for child in self.runs_dir.iterdir():
            if child.is_dir() and not child.name.startswith(".") and any(
                    (child / f).exists() for f in ("status.json", "launch.json", "config.json")):
                runs.append(Run(self, child.name))

        def key(run):
            st, li = run.status, run.launch_info
            return _parse_time(st.get("started")) or _parse_time(li.get("queued")) or 0.0

        return sorted(runs, key=key, reverse=True)

    # --- validation --------------------------------------------------------------------------
    def data_files(self) -> list[str]:
        """Dataset files/folders (.nc, .zarr, .h5) under the data directory, relative paths."""
        found = []
        root = self.data_dir.resolve()
        for dirpath, dirnames, filenames in os.walk(root):
            rel_depth = len(Path(dirpath).relative_to(root).parts)
            keep = []
            for d in dirnames:
                if d.startswith("."):
                    continue
                if d.endswith(".zarr"):
                    found.append(str((Path(dirpath) / d).relative_to(root)))
                elif rel_depth < 3:
                    keep.append(d)
            dirnames[:] = keep
            found += [str((Path(dirpath) / f).relative_to(root)) for f in filenames
                      if f.endswith(DATASET_SUFFIXES) and not f.startswith(".")]
        return sorted(found)

    def resolve_data_path(self, value, field: str = "data") -> Path:
        """``value`` (relative to the data directory, or absolute inside it) as an absolute
        path; raises :class:`RunError` when it escapes the data directory (``..``, absolute
        paths elsewhere, symlinks pointing out) or does not exist."""
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise RunError(f"{field}: no dataset given; choose a file in {self.data_dir}")
        path = Path(value)
        if not path.is_absolute():
            path = self.data_dir / path
        root = self.data_dir.resolve()
        real = path.resolve()  # follows symlinks, collapses ".."
        if not real.is_relative_to(root):
            raise RunError(f"{field}: {value!r} is outside the data directory {root}; "
                           f"choose a dataset inside it")
        if not real.exists():
            raise RunError(f"{field}: {value!r} does not exist in the data directory {root}")
        return real

    def validate(self, config, devices="auto") -> tuple[TrainConfig, list[str]]:
        """Check a config (TrainConfig or dict) and device choice before anything is created.

        Returns the config with dataset paths made absolute and the device set, and the list
        of device ids; raises :class:`RunError` listing every problem found.
        """
        problems: list[str] = []
        if isinstance(config, TrainConfig):
            values = config.to_dict()
        elif isinstance(config, dict):
            values = dict(config)
        else:
            raise RunError(f"config must be a TrainConfig or a dict, not {type(config).__name__}")
        defaults = TrainConfig()
        known = {f.name: f for f in fields(TrainConfig)}
        for name in sorted(set(values) - set(known)):
            problems.append(f"{name}: not a training option")
            values.pop(name)
        for name, value in list(values.items()):
            expected = type(getattr(defaults, name))
            if name in ("val",):
                continue
            if expected is bool:
                if not isinstance(value, bool):
                    problems.append(f"{name}={value!r} must be true or false")
            elif expected is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    if isinstance(value, float) and value.is_integer():
                        values[name] = int(value)
                    else:
                        problems.append(f"{name}={value!r} must be a whole number")
            elif expected is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append(f"{name}={value!r} must be a number")
                elif not math.isfinite(value):
                    problems.append(f"{name}={value!r} must be finite")
                else:
                    values[name] = float(value)
            elif expected is str and not isinstance(value, str):
                problems.append(f"{name}={value!r} must be text")
        for name, (low, high) in LIMITS.items():
            value = values.get(name, getattr(defaults, name))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                    math.isfinite(value) and not low <= value <= high:
                problems.append(f"{name}={value} is out of range; allowed {low} … {high}")
        low, high, max_layers = HIDDEN_LIMITS
        for name in ("hidden", "adversary_hidden"):
            layers = values.get(name, getattr(defaults, name))
            if not isinstance(layers, (list, tuple)) or not 1 <= len(layers) <= max_layers or \
                    not all(isinstance(w, int) and not isinstance(w, bool) and low <= w <= high
                            for w in layers):
                problems.append(f"{name}={layers!r} must be 1 … {max_layers} layer widths, "
                                f"each {low} … {high}")
        for field_name in ("data", "val"):
            value = values.get(field_name)
            if field_name == "val" and not value:
                values["val"] = None
                continue
            try:
                values[field_name] = str(self.resolve_data_path(value, field_name))
            except RunError as exc:
                problems.append(str(exc))
        try:
            device_ids = self._resolve_devices(devices)
        except RunError as exc:
            problems.append(str(exc))
            device_ids = ["cpu"]
        values["device"] = "cpu" if device_ids == ["cpu"] else "cuda"
        values["progress"] = False  # a tqdm bar in a log file is noise
        if not problems:
            try:
                cfg = TrainConfig.from_dict(values).validate()
            except (TrainConfigError, TypeError) as exc:
                problems.append(str(exc))
        if problems:
            raise RunError("cannot launch the run: " + "; ".join(problems), problems)
        return cfg, device_ids

    def _resolve_devices(self, choice) -> list[str]:
        """"auto" → a free GPU (else the first), or "cpu" when there is none; a list of
        "cuda:N" → those GPUs (one process each, torchrun); "cpu" → the CPU."""
        present = {d.id for d in devices()}
        if choice in (None, "auto"):
            gpus = [d for d in sorted(present) if d.startswith("cuda:")]
            if not gpus:
                return ["cpu"]
            busy = self._busy_devices()
            free = [g for g in gpus if g not in busy]
            return [(free or gpus)[0]]
        chosen = [choice] if isinstance(choice, str) else list(choice)
        if not chosen:
            raise RunError("devices: choose at least one device")
        if "cpu" in chosen and len(chosen) > 1:
            raise RunError("devices: train on the CPU or on GPUs, not both")
        missing = [c for c in chosen if c not in present]
        if missing:
            raise RunError(f"devices: {missing} not present here; available: {sorted(present)}")
        if len(set(chosen)) != len(chosen):
            raise RunError(f"devices: {chosen} names a device twice")
        return sorted(chosen, key=lambda d: (d != "cpu", int(d.split(":")[1]) if ":" in d else 0))

    # --- launching ---------------------------------------------------------------------------
    def launch(self, config, name: str | None = None, devices="auto") -> Run:
        """Validate, create ``runs_dir/NAME`` and queue the run; it starts at once when its
        devices are free (see the queue policy in the module docstring)."""
        cfg, device_ids = self.validate(config, devices)
        with self._lock:
            if name is None:
                name = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                raise RunError(f"name={name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                               f"starting with a letter or digit")
            path = self.runs_dir / name
            try:
                path.mkdir()
            except FileExistsError:
                raise RunError(f"name={name!r}: a run of that name already exists in "
                               f"{self.runs_dir}; choose another name") from None
            cfg.out = str(path)
            write_json_atomic(path / "config.json", cfg.to_dict())
            write_json_atomic(path / "launch.json", {
                "name": name, "devices": device_ids, "queued": _iso(), "argv": None,
                "pid": None, "pid_start": None, "launched": None, "returncode": None,
                "cancel_requested": None})
        self.poll()
        return Run(self, name)

    def _argv(self, run: Run, device_ids: list[str]) -> list[str]:
        train = ["-m", "twinviz", "train", "--config", str(run.path / "config.json"),
                 "--out", str(run.path)]
        if len(device_ids) > 1:
            # --standalone picks a free rendezvous port, so two multi-GPU runs never collide
            return [self.python, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(len(device_ids))] + train
        return [self.python] + train

    def _env(self, device_ids: list[str]) -> dict:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if device_ids == ["cpu"]:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run must not grab a GPU
        else:
            # The child sees exactly its GPUs, as cuda:0 … cuda:N-1 (one per torchrun rank).
            env["CUDA_VISIBLE_DEVICES"] = ",".join(d.split(":")[1] for d in device_ids)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        return env

    def _start(self, run: Run, device_ids: list[str]) -> None:
        argv = self._argv(run, device_ids)
        with open(run.path / "train.log", "ab") as log:
            # Own session = own process group: cancel signals the trainer and any torchrun
            # workers together, and a closing app (or its Ctrl-C) does not kill the run.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=run.path,
                                    env=self._env(device_ids), start_new_session=True,
                                    close_fds=True)
        self._children[run.name] = proc
        info = run.launch_info
        info.update(argv=argv, pid=proc.pid, pid_start=_proc_start_ticks(proc.pid),
                    launched=_iso())
        write_json_atomic(run.path / "launch.json", info)

    # --- polling: reap, mark, schedule -------------------------------------------------------
    def start_background(self, interval: float = 1.0) -> None:
        """Poll from one daemon thread (per manager, not per caller), so queued runs start
        and overdue cancels are forced even while nobody is looking — e.g. the app with no
        browser open. Calling it again while it runs does nothing."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop_background.clear()
            self._thread = threading.Thread(target=self._poll_forever, args=(interval,),
                                            name=f"twinviz-runs:{self.runs_dir}", daemon=True)
            self._thread.start()

    def stop_background(self) -> None:
        """Stop the thread of :meth:`start_background` (runs keep running)."""
        self._stop_background.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None

    def _poll_forever(self, interval: float) -> None:
        import logging

        while not self._stop_background.wait(interval):
            try:
                self.poll()
            except Exception:  # keep polling: one unreadable run must not stop the queue
                logging.getLogger(__name__).exception("polling runs in %s failed", self.runs_dir)

    def poll(self) -> None:
        """Bring every run up to date: reap finished children, mark runs whose process ended
        without recording an end as failed (or cancelled, if a cancel was asked for), send
        SIGKILL to cancelled runs past their grace period, and start queued runs whose
        devices are free. Cheap; call it as often as you like."""
        with self._lock:
            runs = self._scan()
            for run in runs:
                self._check(run)
            self._schedule(runs)

    def _check(self, run: Run) -> None:
        status, info = run.status, run.launch_info
        state = status.get("state")
        proc = self._children.get(run.name)
        returncode = None
        if proc is not None:
            returncode = proc.poll()
            if returncode is None:
                self._escalate(run, info)
                return
            del self._children[run.name]
            info["returncode"] = returncode
            write_json_atomic(run.path / "launch.json", info)
        if state != "running":
            return
        if proc is None:  # not our child (another manager, or started by hand): ask the OS
            pid, ticks = info.get("pid"), info.get("pid_start")
            if not pid:
                pid, ticks = status.get("pid"), None
            if _alive(pid, ticks):
                self._escalate(run, info)
                return
            returncode = info.get("returncode")
        status = run.status  # re-read: the trainer may have finished just now
        if status.get("state") != "running":
            return
        tail = run.log_tail(15)
        if info.get("cancel_requested"):
            saved = (run.checkpoint_dir / "state.json").is_file()
            status.update(state="cancelled", error="stopped by force before the trainer could "
                          "record it; " + ("the checkpoint is the last one saved" if saved
                                           else "no checkpoint was saved"))
        elif returncode is not None:
            status.update(state="failed", error=f"the training process exited with code "
                          f"{returncode} without recording a result. Log tail:\n{tail}")
        else:
            status.update(state="failed", lost=True,
                          error=f"lost: the training process (PID {info.get('pid') or status.get('pid')}) "
                          f"is gone without recording a result (killed, or the machine restarted). "
                          f"Log tail:\n{tail}")
        status["finished"] = _iso()
        write_json_atomic(run.path / "status.json", status)

    def _escalate(self, run: Run, info: dict) -> None:
        deadline = info.get("kill_after")
        if deadline and time.time() >= deadline and not info.get("killed"):
            self._signal(run, info, signal.SIGKILL)
            info["killed"] = _iso()
            write_json_atomic(run.path / "launch.json", info)

    def _signal(self, run: Run, info: dict, sig: int) -> None:
        pid = info.get("pid")
        if pid and _alive(pid, info.get("pid_start")):
            try:
                os.killpg(pid, sig)  # we started it with start_new_session: pgid == pid
            except ProcessLookupError:
                pass
            return
        pid = run.status.get("pid")  # a run started by hand: signal the trainer itself
        if pid and _alive(pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _run_devices(self, run: Run) -> list[str]:
        listed = run.launch_info.get("devices")
        if listed:
            return list(listed)
        device = str(run.config.get("device", "auto"))  # started by hand: read its config
        if device == "cpu":
            return ["cpu"]
        if device.startswith("cuda:"):
            return [device]
        has_gpu = any(d.id.startswith("cuda:") for d in devices())
        return ["cuda:0"] if has_gpu else ["cpu"]

    def _busy_devices(self, runs: list[Run] | None = None) -> list[str]:
        busy = []
        for run in runs if runs is not None else self._scan():
            if run.status.get("state") == "running":
                busy += self._run_devices(run)
        return busy

    def _schedule(self, runs: list[Run]) -> None:
        queued = [r for r in runs if r.status.get("state") == "queued"]
        if not queued:
            return
        lock_path = self.runs_dir / ".scheduler.lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two managers must not both start one run
            try:
                queued.sort(key=lambda r: _parse_time(r.launch_info.get("queued")) or 0.0)
                busy = self._busy_devices(runs)
                for run in queued:
                    if run.status.get("state") != "queued":
                        continue
                    wanted = self._run_devices(run)
                    if wanted == ["cpu"]:
                        free = busy.count("cpu") < self.cpu_slots
                    else:
                        free = not set(wanted) & set(busy)
                    if free:
                        self._start(run, wanted)
                        busy += wanted
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- cancelling and waiting --------------------------------------------------------------
    def cancel(self, run: Run | str, grace: float = 30.0, wait: bool = False) -> None:
        """Stop a run: a queued one is marked "cancelled" at once; a running one gets SIGTERM
        (its whole process group; the trainer saves a checkpoint and exits "cancelled") and,
        if still alive ``grace`` seconds later, SIGKILL (sent by :meth:`poll`, or here when
        ``wait``). With ``wait`` it returns once the run has ended."""
        run = self.get(run) if isinstance(run, str) else run
        with self._lock:
            status, info = run.status, run.launch_info
            state = status.get("state")
            if state == "queued":
                status.update(state="cancelled", finished=_iso(), error=None)
                write_json_atomic(run.path / "status.json", status)
                return
            if state != "running":
                return
            info.update(cancel_requested=_iso(), kill_after=time.time() + grace)
            write_json_atomic(run.path / "launch.json", info)
            self._signal(run, info, signal.SIGTERM)
        if wait:
            self.wait(run)

    def wait(self, run: Run | str, timeout: float | None = None, interval: float = 0.2) -> str:
        """Poll until the run is done, failed or cancelled; returns the final state.
        Raises TimeoutError after ``timeout`` seconds."""
        run = self.get(run) if isinstance(run, str) else run
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = run.state
            if state in FINAL_STATES:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run.name} still {state} after {timeout} s")
            time.sleep(interval)

    def summaries(self, max_age: float = 0.5) -> list[dict]:
        """``Run.summary()`` of every run, newest first, recomputed at most every ``max_age``
        seconds: many app sessions refreshing their tables share one pass over the files."""
        with self._lock:
            now = time.monotonic()
            if self._summaries is None or now - self._summaries[0] > max_age:
                self._summaries = (now, [run.summary() for run in self._scan()])
            return self._summaries[1]

    # --- metrics -----------------------------------------------------------------------------
    def metrics(self, run: Run | str) -> list[dict]:
        """All of a run's metrics records so far. One incremental reader per run serves every
        caller (all app sessions), so each appended byte is read from disk once."""
        run = self.get(run) if isinstance(run, str) else run
        with self._lock:
            follower = self._followers.get(run.name)
            if follower is None:
                follower = self._followers[run.name] = MetricsFollower(run.path / "metrics.jsonl")
                self._records[run.name] = []
            new = follower.read_new()
            if follower.reset:
                self._records[run.name] = []
            self._records[run.name].extend(new)
            return self._records[run.name]
