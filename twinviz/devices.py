"""Where a run or a model can compute: the devices present, and the one resolution of a device choice.

``devices()`` lists the CUDA devices (name, memory) and the CPU without creating a CUDA context
(it asks ``nvidia-smi`` first), for the app server and the run manager. :func:`resolve_devices`
turns a choice ("auto", "cpu", "cuda", "cuda:N" or a list of them) into device ids; the run
manager (which GPUs a launch gets), the trainer (``twinviz.training.trainer.resolve_device``) and
the model-loading commands (``twinviz.commands._model_arg``) all resolve through it. Importing
this module does not import torch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Device", "DeviceError", "devices", "resolve_devices", "torch_device_ids"]


class DeviceError(ValueError):
    """A device choice that cannot be met here; the message names what is available."""


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
    """The CUDA devices actually present (name, memory), then a "CPU only" device.

    Asks ``nvidia-smi`` first so the calling process (the app server) does not create a
    CUDA context just to list GPUs; falls back to torch. Cached after the first call.
    """
    global _devices_cache
    if _devices_cache is None or refresh:
        found = _nvidia_smi_devices()
        if found is None:
            found = _torch_devices()
        # CPU stays selectable beside the GPUs
        _devices_cache = found + [Device("cpu", f"CPU only ({os.cpu_count() or 1} cores)")]
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
        parts = [part.strip() for part in line.split(",")]
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
    return sorted(found, key=lambda d: _gpu_index(d.id))


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


def torch_device_ids() -> list[str]:
    """The devices this process's torch can use ("cuda:0" … and "cpu"), for code that is about
    to compute here anyway (the trainer, loading a model); creates no CUDA context."""
    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(n_gpus)] + ["cpu"]


def _gpu_index(device_id: str) -> int:
    return int(device_id.split(":")[1]) if ":" in device_id else -1


def resolve_devices(choice="auto", *, present=None, busy=(), local_rank: int = 0) -> list[str]:
    """The device ids ("cpu" or "cuda:N", CPU first then by GPU number) a choice stands for.

    ``choice``: "auto" (or None) → a GPU not in ``busy`` (else the first GPU), or "cpu" when
    there is none; "cuda" → a GPU, which must be present; "cpu"; "cuda:N"; or a list of "cuda:N"
    (one process each). ``present`` is the ids available (default: :func:`devices`);
    ``local_rank`` (under torchrun) makes "auto"/"cuda" mean that rank's GPU. Raises
    :class:`DeviceError` for a choice that cannot be met.
    """
    present = [d.id for d in devices()] if present is None else list(present)
    gpus = sorted((d for d in present if d.startswith("cuda:")), key=_gpu_index)
    if choice in (None, "auto", "cuda"):
        if not gpus:
            if choice == "cuda":
                raise DeviceError("device='cuda' but no CUDA GPU is available. Fix: use --device cpu or auto")
            return ["cpu"]
        if local_rank:
            return [f"cuda:{local_rank}"]  # torchrun: every rank sees all of the run's GPUs
        free = [g for g in gpus if g not in set(busy)]
        return [(free or gpus)[0]]
    chosen = [choice] if isinstance(choice, str) else list(choice)
    if not chosen:
        raise DeviceError("devices: choose at least one device")
    if "cpu" in chosen and len(chosen) > 1:
        raise DeviceError("devices: train on the CPU or on GPUs, not both")
    missing = [c for c in chosen if c not in present]
    if missing:
        raise DeviceError(f"devices: {missing} not present here; available: {sorted(present)}")
    if len(set(chosen)) != len(chosen):
        raise DeviceError(f"devices: {chosen} names a device twice")
    return sorted(chosen, key=_gpu_index)
