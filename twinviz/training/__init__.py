"""Training of fader networks: :class:`TrainConfig`, :class:`Trainer`, :func:`train`.

``train(TrainConfig(data="train.nc", val="val.nc", out="runs/NAME"))`` writes the run
directory described in docs/training.md and returns its path. Launched by ``torchrun`` the
same code runs DistributedDataParallel.
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig, TrainConfigError
from .rundir import RunDirectory, read_status, write_json_atomic
from .model_init import build_model
from .trainer import Trainer, resolve_device, train

__all__ = ["CheckpointError", "RunDirectory", "TrainConfig", "TrainConfigError", "Trainer", "build_model",
           "load_checkpoint", "read_status", "resolve_device", "save_checkpoint", "train",
           "write_json_atomic"]
