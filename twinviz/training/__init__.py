"""Training of fader networks: :class:`TrainConfig`, :class:`Trainer`, :func:`train`.

``train(TrainConfig(data="train.nc", val="val.nc", out="runs/NAME"))`` writes the run
directory described in docs/training.md and returns its path. Launched by ``torchrun`` the
same code runs DistributedDataParallel.

Names are imported on first use (PEP 562), so ``from twinviz.training.config import
TrainConfig`` — which ``twinviz --help`` and the app's form need — does not import torch.
"""
from twinviz.lazy import lazy_names

_HOMES = {
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "TrainConfig": "config", "TrainConfigError": "config",
    "RunDirectory": "rundir", "read_status": "rundir", "write_json_atomic": "rundir",
    "build_model": "model_init",
    "Trainer": "trainer", "resolve_device": "trainer", "train": "trainer",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
