"""Shared handling of ``--model`` (and the encoding options) for the evaluate/embed/twins commands."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from twinviz.training import runfiles

WEIGHTS_AND_CONFIG = (runfiles.MODEL_CONFIG, runfiles.MODEL_WEIGHTS)


def resolve_model_dir(path) -> Path:
    """A model directory from either itself or a training run directory (``runs/NAME`` holds
    ``model/``). Raises ModelError naming the path and the fix."""
    from twinviz.model import ModelError

    path = Path(path)
    for candidate in (path, path / runfiles.MODEL_DIR):
        if all((candidate / name).is_file() for name in WEIGHTS_AND_CONFIG):
            return candidate
    raise ModelError(f"{path}: model: no {' + '.join(WEIGHTS_AND_CONFIG)} here or in {path / runfiles.MODEL_DIR}. "
                     "Fix: pass a model directory written by save_pretrained or a run directory of "
                     "`twinviz train` (runs/NAME), once its training has saved a model")


def run_dir_of(model_dir: Path) -> Path:
    """The run directory a model directory belongs to (runs/NAME for runs/NAME/model)."""
    return model_dir.parent if model_dir.name == runfiles.MODEL_DIR else model_dir


def pick_device(name: str) -> str:
    """'auto' → a CUDA device when torch has one, else 'cpu'; anything else as given, once it is
    present (:func:`twinviz.runs.devices.resolve_devices`, the one device resolution)."""
    from twinviz.model import ModelError
    from twinviz.runs.devices import DeviceError, resolve_devices, torch_device_ids

    try:
        return resolve_devices(name, present=torch_device_ids())[0]
    except DeviceError as exc:
        raise ModelError(f"--device {name}: {exc}") from None


def load_model(path, device: str = "auto"):
    """Load a FaderNetwork from a model or run directory onto ``device``."""
    from twinviz.model import FaderNetwork

    return FaderNetwork.from_pretrained(resolve_model_dir(path), device=pick_device(device))


def add_encoding_arguments(parser) -> None:
    """``--device``, ``--batch-size`` and ``--chunk``: how a command runs the encoder."""
    parser.add_argument("--device", default="auto", help="model device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=1024, help="stars per forward pass")
    parser.add_argument("--chunk", type=int, default=8192, help="stars read from the file at a time")


def elapsed_printer():
    """A ``say(message)`` that prints to stderr with the seconds since it was made, and that
    start time (``say.start``, from ``time.perf_counter``)."""
    start = time.perf_counter()

    def say(message):
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", file=sys.stderr, flush=True)

    say.start = start
    return say
