"""Shared handling of ``--model`` (and the encoding options) for the evaluate/embed/twins commands."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from twinviz import files as runfiles


def resolve_model_dir(path) -> Path:
    """A model directory from either itself or a training run directory (``runs/NAME`` holds
    ``model/``). Raises ModelError naming the path and the fix."""
    from twinviz.bundle import resolve_model_dir as resolve

    return resolve(path)


def run_dir_of(model_dir: Path) -> Path:
    """The run directory a model directory belongs to (runs/NAME for runs/NAME/model)."""
    return model_dir.parent if model_dir.name == runfiles.MODEL_DIR else model_dir


def pick_device(name: str) -> str:
    """'auto' → a CUDA device when torch has one, else 'cpu'; anything else as given, once it is
    present (:func:`twinviz.devices.resolve_devices`, the one device resolution)."""
    from twinviz.model import ModelError
    from twinviz.devices import DeviceError, resolve_devices, torch_device_ids

    try:
        return resolve_devices(name, present=torch_device_ids())[0]
    except DeviceError as exc:
        raise ModelError(f"--device {name}: {exc}") from None


def load_model(path, device: str = "auto"):
    """Open the model bundle (:class:`twinviz.bundle.ModelBundle`) of a model or run directory on ``device``."""
    from twinviz.bundle import ModelBundle

    return ModelBundle.open(path, device=pick_device(device))


def add_rank_by_argument(parser) -> None:
    """``--rank-by``: what twins are ranked on (twinviz.bundle.ModelBundle.ranking)."""
    parser.add_argument("--rank-by", choices=("auto", "metric", "z"), default="auto",
                        help="auto: the model's twin metric when the data come from the domain its twins came "
                             "from (e.g. the built-in synthesizer), else raw z; metric: always the metric; z: raw z")


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
