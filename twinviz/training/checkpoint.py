"""Trainer checkpoints without pickle: tensors in safetensors, everything else in JSON.

checkpoint/
  state.json                 step counters, model config, optimiser hyperparameters,
                             name of the tensor file below
  state-<tag>.safetensors    model weights ("model.*"), optimiser state tensors
                             ("opt.<name>.<param index>.<key>") and the torch RNG state

state.json is replaced atomically *after* its tensor file is complete, and names that file,
so a reader always sees a matching pair; older tensor files are removed afterwards.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import torch

from twinviz.model import ModelConfig, ModelError

from twinviz import files as runfiles
from twinviz.training.rundir import write_json_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]

STATE_FILE = runfiles.CHECKPOINT_STATE


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not match the run."""


def _flatten_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict) -> dict:
    sd = optimizer.state_dict()
    scalars = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(name: str, meta: dict, tensors: dict) -> dict:
    state: dict[int, dict] = {}
    prefix = f"opt.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for key, value in meta["scalars"].items():
        index, field = key.split(".", 1)
        state.setdefault(int(index), {})[field] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(directory, model, optimizers: dict, progress: dict) -> None:
    """Save model + optimisers + progress counters (JSON-serialisable dict) atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["rng.torch"] = torch.get_rng_state()
    opt_meta = {name: _flatten_optimizer(name, opt, tensors) for name, opt in optimizers.items()}
    tag = uuid.uuid4().hex[:12]
    weights = f"state-{tag}.safetensors"
    tmp = directory / f".{weights}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "twinviz-checkpoint"})
    tmp.replace(directory / weights)
    write_json_atomic(directory / STATE_FILE, {
        "format": "twinviz-checkpoint", "weights": weights, "progress": progress,
        "model_config": model.config.to_dict(), "optimizers": opt_meta,
    })
    for old in directory.glob("state-*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)


def load_checkpoint(directory, device="cpu"):
    """Read a checkpoint → (model, optimizer_state_dicts, progress, rng_state).

    The model is rebuilt from the checkpoint's own ModelConfig (its normalisation is never
    recomputed). Raises CheckpointError for a missing or corrupt checkpoint.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from twinviz.model import FaderNetwork

    directory = Path(directory)
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"{state_path}: no checkpoint to resume from. Fix: start the run "
                              "without --resume, or point --out at an existing run directory")
    try:
        state = json.loads(state_path.read_text())
        weights_path = directory / state["weights"]
        tensors = load_file(str(weights_path))
    except (ValueError, KeyError, OSError, SafetensorError) as exc:
        raise CheckpointError(f"{directory}: corrupt checkpoint ({type(exc).__name__}: {exc}). "
                              "Fix: start the run again without --resume") from exc
    try:
        model = FaderNetwork(ModelConfig.from_dict(state["model_config"]))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except (ModelError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{directory}: checkpoint weights do not match its config ({exc})") from exc
    model.to(device)
    opt_states = {name: _unflatten_optimizer(name, meta, tensors) for name, meta in state["optimizers"].items()}
    return model, opt_states, state["progress"], tensors.get("rng.torch")
