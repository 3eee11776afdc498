"""Shared handling of ``--model`` for the evaluate/embed/twins commands."""
from __future__ import annotations

from pathlib import Path

WEIGHTS_AND_CONFIG = ("config.json", "model.safetensors")


def resolve_model_dir(path) -> Path:
    """A model directory from either itself or a training run directory (``runs/NAME`` holds
    ``model/``). Raises ModelError naming the path and the fix."""
    from twinviz.model import ModelError

    path = Path(path)
    for candidate in (path, path / "model"):
        if all((candidate / name).is_file() for name in WEIGHTS_AND_CONFIG):
            return candidate
    raise ModelError(f"{path}: model: no {' + '.join(WEIGHTS_AND_CONFIG)} here or in {path / 'model'}. "
                     "Fix: pass a model directory written by save_pretrained or a run directory of "
                     "`twinviz train` (runs/NAME), once its training has saved a model")


def run_dir_of(model_dir: Path) -> Path:
    """The run directory a model directory belongs to (runs/NAME for runs/NAME/model)."""
    return model_dir.parent if model_dir.name == "model" else model_dir


def pick_device(name: str) -> str:
    """'auto' → 'cuda' when a GPU is present, else 'cpu'; anything else as given."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path, device: str = "auto"):
    """Load a FaderNetwork from a model or run directory onto ``device``."""
    from twinviz.model import FaderNetwork

    return FaderNetwork.from_pretrained(resolve_model_dir(path), device=pick_device(device))
