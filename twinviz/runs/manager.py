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
    ``list_runs() -> list[Run]``, ``get(name) -> Run``   (both poll first)
    ``poll()``                                reap, mark, force overdue cancels, schedule
    ``start_background(interval)``, ``add_poll_listener(fn)``  one polling thread; fn() after each poll
    ``cancel(run, grace=30.0, wait=False)``   SIGTERM the process group, SIGKILL after grace
    ``wait(run, timeout=None) -> str``        block until the run ends (tests, scripts)
    ``metrics(run) -> list[dict]``            all records so far (read incrementally, shared)
    ``summaries() -> list[dict]``             ``Run.summary()`` of all runs (cached briefly)
    ``validate(config, devices) -> (TrainConfig, list[str])``  raises :class:`RunError`
    ``datasets() -> list[DatasetInfo]``       the valid spectra datasets under the data directory
    ``data_files() -> list[str]``             their paths (relative to the data directory)
``Run`` (runs/run.py)  a read-only handle on one run directory: ``state``, ``status``, ``config``,
    ``progress``, ``eta``, ``duration``, ``best``, ``log_tail()``, ``model_dir``,
    ``checkpoint_dir``, ``model_for_explorer()``. Reading it never changes anything.
``devices()``, ``resolve_devices()`` (devices.py), ``MetricsFollower``, ``log_tail``
(runs/follow.py), the process handling (runs/processes.py) and the launch checks
(runs/validate.py) live beside this module.

Queue policy: every GPU is a slot that holds one run at a time; CPU runs share ``cpu_slots``
slots (default 1, since training already uses all cores). A launched run is "queued" until
all of its devices are free; :meth:`RunManager.poll` (called by ``launch``, ``list_runs``,
``get``, ``wait`` and the app's background poller — never by reading a ``Run``) starts queued
runs oldest first, skipping a run whose devices are busy so it does not hold up runs that need
other devices. Runs started by hand with
``twinviz train`` in the same folder occupy their device too.
"""
from __future__ import annotations

import fcntl
import logging
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from twinviz.runs import processes
from twinviz.devices import Device, devices
from twinviz.runs.follow import MetricsFollower, log_tail
from twinviz.runs.run import ACTIVE_STATES, FINAL_STATES, Run
from twinviz.runs.datasets import DatasetInfo, spectra_datasets
from twinviz.runs.validate import LIMITS, RunError, resolve_data_path, validate_launch
from twinviz import files as runfiles
from twinviz.training.config import TrainConfig
from twinviz.training.rundir import iso_time, parse_time, write_json_atomic

__all__ = ["ACTIVE_STATES", "DatasetInfo", "Device", "FINAL_STATES", "LIMITS", "MetricsFollower", "Run",
           "RunError", "RunManager", "devices", "log_tail"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A folder under runs_dir is a run when it holds one of these.
_RUN_MARKERS = (runfiles.STATUS, runfiles.LAUNCH, runfiles.CONFIG)


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
        self._listeners: list = []

    @classmethod
    def shared(cls, runs_dir, data_dir, **kw) -> "RunManager":
        """One manager per (runs_dir, data_dir) in this process, shared by all app sessions."""
        key = (str(Path(runs_dir).absolute()), str(Path(data_dir).absolute()))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(runs_dir, data_dir, **kw)
            return cls._shared[key]

    # --- discovery ---------------------------------------------------------------------------
    def get(self, name: str, refresh: bool = True) -> Run:
        """The run called ``name``; with ``refresh`` (default) all runs are polled first."""
        run = Run(self, name)
        if not run.path.is_dir():
            raise RunError(f"no run named {name!r} in {self.runs_dir}")
        if refresh:
            self.poll()
        return run

    def list_runs(self, refresh: bool = True) -> list[Run]:
        """Every run directory under ``runs_dir`` (newest first); with ``refresh`` (default)
        their states are brought up to date first (see :meth:`poll`)."""
        if refresh:
            self.poll()
        return self._scan()

    def _scan(self) -> list[Run]:
        runs = [Run(self, child.name) for child in self.runs_dir.iterdir()
                if child.is_dir() and not child.name.startswith(".")
                and any((child / marker).exists() for marker in _RUN_MARKERS)]

        def newest_first(run):
            return parse_time(run.status.get("started")) or parse_time(run.launch_info.get("queued")) or 0.0

        return sorted(runs, key=newest_first, reverse=True)

    def _as_run(self, run: Run | str) -> Run:
        return self.get(run, refresh=False) if isinstance(run, str) else run

    # --- validation (runs/validate.py) -------------------------------------------------------
    def datasets(self) -> list[DatasetInfo]:
        """The spectra datasets under the data directory that training can use (headers
        checked; latents caches, reports and other files left out: runs/datasets.py)."""
        return spectra_datasets(self.data_dir)

    def data_files(self) -> list[str]:
        """The paths of :meth:`datasets`, relative to the data directory."""
        return [d.path for d in self.datasets()]

    def resolve_data_path(self, value, field: str = "data") -> Path:
        """``value`` as an absolute path inside the data directory (else :class:`RunError`)."""
        return resolve_data_path(self.data_dir, value, field)

    def validate(self, config, devices="auto") -> tuple[TrainConfig, list[str]]:
        """Check a config (TrainConfig or dict) and device choice before anything is created.

        Returns the config with dataset paths made absolute and the device set, and the list
        of device ids; raises :class:`RunError` listing every problem found. "auto" picks a
        GPU no running run holds.
        """
        return validate_launch(config, self.data_dir, devices, busy=self._busy_devices)

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
            write_json_atomic(path / runfiles.CONFIG, cfg.to_dict())
            write_json_atomic(path / runfiles.LAUNCH, {
                "name": name, "devices": device_ids, "queued": iso_time(), "argv": None,
                "pid": None, "pid_start": None, "launched": None, "returncode": None,
                "cancel_requested": None})
        self.poll()
        return Run(self, name)

    def _argv(self, run: Run, device_ids: list[str]) -> list[str]:
        return processes.train_argv(self.python, run.path / runfiles.CONFIG, run.path, len(device_ids))

    def _env(self, device_ids: list[str]) -> dict:
        return processes.child_env(device_ids)

    def _start(self, run: Run, device_ids: list[str]) -> None:
        argv = self._argv(run, device_ids)
        proc = processes.spawn(argv, run.log_path, cwd=run.path, env=self._env(device_ids))
        self._children[run.name] = proc
        info = run.launch_info
        info.update(argv=argv, pid=proc.pid, pid_start=processes.start_ticks(proc.pid),
                    launched=iso_time())
        write_json_atomic(run.path / runfiles.LAUNCH, info)

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

    def add_poll_listener(self, listener) -> None:
        """Call ``listener()`` on the background thread after each of its polls (the app's
        shared runs feed: one reader of the runs for every session)."""
        with self._lock:
            self._listeners.append(listener)

    def _poll_forever(self, interval: float) -> None:
        while not self._stop_background.wait(interval):
            try:
                self.poll()
                for listener in list(self._listeners):
                    listener()
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
                self._reap(run)
            self._schedule(runs)

    def _reap(self, run: Run) -> None:
        """Collect the run's process if it ended, and record the end the trainer could not."""
        status, info = run.status, run.launch_info
        child = self._children.get(run.name)
        returncode = None
        if child is not None:
            returncode = child.poll()
            if returncode is None:
                self._kill_after_grace(run, info)
                return
            del self._children[run.name]
            info["returncode"] = returncode
            write_json_atomic(run.path / runfiles.LAUNCH, info)
        if status.get("state") != "running":
            return
        if child is None:  # not our child (another manager, or started by hand): ask the OS
            pid, ticks = info.get("pid"), info.get("pid_start")
            if not pid:
                pid, ticks = status.get("pid"), None
            if processes.is_alive(pid, ticks):
                self._kill_after_grace(run, info)
                return
            returncode = info.get("returncode")
        status = run.status  # re-read: the trainer may have finished just now
        if status.get("state") != "running":
            return
        status.update(_end_not_recorded(run, info, status, returncode))
        status["finished"] = iso_time()
        write_json_atomic(run.path / runfiles.STATUS, status)

    def _kill_after_grace(self, run: Run, info: dict) -> None:
        """SIGKILL a cancelled run still alive after its grace period (once)."""
        deadline = info.get("kill_after")
        if deadline and time.time() >= deadline and not info.get("killed"):
            processes.send_signal(info, run.status.get("pid"), signal.SIGKILL)
            info["killed"] = iso_time()
            write_json_atomic(run.path / runfiles.LAUNCH, info)

    def _process_alive(self, run: Run) -> bool:
        """Whether the run's process group still has a running process (our child not yet reaped
        counts). Once seen gone, launch.json records it ("exited"), so the check is made once."""
        info = run.launch_info
        if info.get("exited"):
            return False
        child = self._children.get(run.name)
        if child is not None and child.poll() is None:
            return True
        if processes.group_alive(info.get("pid")):
            return True
        if info.get("pid"):
            info["exited"] = iso_time()
            write_json_atomic(run.path / runfiles.LAUNCH, info)
        return False

    def _busy_devices(self, runs: list[Run] | None = None) -> list[str]:
        """The devices of running runs, and of ended runs whose processes have not exited yet (a
        cancelled run's GPU memory is free only once its process is gone)."""
        busy = []
        for run in runs if runs is not None else self._scan():
            state = run.status.get("state")
            if state == "running" or (state in FINAL_STATES and self._process_alive(run)):
                busy += run.devices
        return busy

    def _schedule(self, runs: list[Run]) -> None:
        queued = [r for r in runs if r.status.get("state") == "queued"]
        if not queued:
            return
        with open(self.runs_dir / runfiles.SCHEDULER_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two managers must not both start one run
            try:
                queued.sort(key=lambda r: parse_time(r.launch_info.get("queued")) or 0.0)
                busy = self._busy_devices(runs)
                for run in queued:
                    if run.status.get("state") != "queued":
                        continue
                    wanted = run.devices
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
        ``wait``). With ``wait`` it returns once the run has ended *and* its whole process group
        has exited and been reaped (the trainer records "cancelled" before it exits)."""
        run = self._as_run(run)
        with self._lock:
            status, info = run.status, run.launch_info
            state = status.get("state")
            if state == "queued":
                status.update(state="cancelled", finished=iso_time(), error=None)
                write_json_atomic(run.path / runfiles.STATUS, status)
                return
            if state != "running":
                return
            info.update(cancel_requested=iso_time(), kill_after=time.time() + grace)
            write_json_atomic(run.path / runfiles.LAUNCH, info)
            processes.send_signal(info, status.get("pid"), signal.SIGTERM)
        if wait:
            self.wait(run)

    def wait(self, run: Run | str, timeout: float | None = None, interval: float = 0.2) -> str:
        """Poll until the run is done, failed or cancelled and its processes have exited (and
        been reaped); returns the final state. Raises TimeoutError after ``timeout`` seconds."""
        run = self._as_run(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            state = run.state
            if state in FINAL_STATES and not self._process_alive(run):
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
        run = self._as_run(run)
        with self._lock:
            follower = self._followers.get(run.name)
            if follower is None:
                follower = self._followers[run.name] = MetricsFollower(run.metrics_path)
                self._records[run.name] = []
            new = follower.read_new()
            if follower.reset:
                self._records[run.name] = []
            self._records[run.name].extend(new)
            return self._records[run.name]


def _end_not_recorded(run: Run, info: dict, status: dict, returncode: int | None) -> dict:
    """The status fields of a "running" run whose process is gone without recording its end:
    cancelled (a cancel was asked for), failed with its exit code, or failed and lost."""
    if info.get("cancel_requested"):
        saved = run.has_checkpoint
        return dict(state="cancelled", error="stopped by force before the trainer could record it; "
                    + ("the checkpoint is the last one saved" if saved else "no checkpoint was saved"))
    tail = run.log_tail(15)
    if returncode is not None:
        return dict(state="failed", error=f"the training process exited with code {returncode} "
                    f"without recording a result. Log tail:\n{tail}")
    pid = info.get("pid") or status.get("pid")
    return dict(state="failed", lost=True,
                error=f"lost: the training process (PID {pid}) is gone without recording a result "
                f"(killed, or the machine restarted). Log tail:\n{tail}")
