"""The training processes of runs: how they are started, recognised, signalled and stopped.

A run's process is started in its own session, so its process group id is its PID: a cancel
signals the trainer and any torchrun workers together, and a closing app (or its Ctrl-C) does
not reach it. A PID is only trusted together with the process start time recorded at launch,
so a PID reused by another program is not mistaken for the run.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["child_env", "group_alive", "is_alive", "send_signal", "spawn", "start_ticks", "train_argv"]

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the twinviz package


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a PID reused by
    another process apart from the one we launched; None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def is_alive(pid: int | None, ticks: int | None = None) -> bool:
    """Whether ``pid`` is a running (not zombie) process — the one that started at ``ticks``,
    when given."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if ticks is not None:
        now = start_ticks(pid)
        if now is not None and now != ticks:
            return False  # the PID now belongs to another process
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def group_alive(pgid: int | None) -> bool:
    """Whether any process of process group ``pgid`` is still running (zombies, which have exited,
    do not count). A run's process is started in its own session, so its group is its PID: the
    trainer and every torchrun worker. Reads /proc; elsewhere falls back to signalling the group."""
    if not pgid:
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def train_argv(python: str, config_path: Path, out: Path, n_devices: int) -> list[str]:
    """``twinviz train --config CONFIG --out OUT``, under torchrun for several GPUs."""
    train = ["-m", "twinviz", "train", "--config", str(config_path), "--out", str(out)]
    if n_devices > 1:
        # --standalone picks a free rendezvous port, so two multi-GPU runs never collide
        return [python, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(n_devices)] + train
    return [python] + train


def child_env(device_ids: list[str], base: dict | None = None) -> dict:
    """The environment of a run's process: unbuffered output, exactly its GPUs visible (as
    cuda:0 … cuda:N-1, one per torchrun rank; none for a CPU run) and this twinviz importable."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if device_ids == ["cpu"]:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run must not grab a GPU
    else:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(d.split(":")[1] for d in device_ids)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def spawn(argv: list[str], log_path: Path, cwd: Path, env: dict) -> subprocess.Popen:
    """Start ``argv`` (an argument list, never a shell string) in its own session, stdout and
    stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd, env=env, start_new_session=True, close_fds=True)


def send_signal(launch_info: dict, trainer_pid: int | None, sig: int) -> None:
    """Signal a run: the process group of the process we launched (``launch_info`` "pid" and
    "pid_start"), else — a run started by hand — the trainer's own ``trainer_pid``."""
    pid = launch_info.get("pid")
    if pid and is_alive(pid, launch_info.get("pid_start")):
        try:
            os.killpg(pid, sig)  # started with start_new_session: pgid == pid
        except ProcessLookupError:
            pass
        return
    if trainer_pid and is_alive(trainer_pid):
        try:
            os.kill(trainer_pid, sig)
        except ProcessLookupError:
            pass
