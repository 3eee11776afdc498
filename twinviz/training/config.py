"""TrainConfig: the single source of a training run's hyperparameters (saved as config.json)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TrainConfig", "TrainConfigError"]


class TrainConfigError(ValueError):
    """An invalid training configuration; the message names the field and the fix."""


@dataclass
class TrainConfig:
    """Hyperparameters and paths of one training run.

    Every field is JSON-serialisable; ``runs/NAME/config.json`` holds exactly this.

    Data
      data: training spectra (.nc or .zarr); val: validation spectra (optional); out: run dir.
    Model (see twinviz.model.ModelConfig)
      latent_dim, basis_dim, basis_trainable, basis_whiten, hidden, adversary_hidden, activation, adversary_mode
      ("joint"|"separate"), teff_bins / logg_bins (number of adversary bins), bin_edges
      ("quantile": equal-count bins of the training labels, so chance accuracy ≈ 1/bins;
      "uniform": equal-width), flux_scaling ("global"|"pixel").
    Objective (docs/science.md, Method)
      adversary_weight: λ; adversary_ramp_steps: λ grows linearly from 0 over this many AE
      steps (0: constant λ from the start); adversary_steps: adversary updates per AE update;
      flux_err_floor: σ₀ (flux units) in the per-pixel weight σ₀²/(σ²+σ₀²) (see docs/model.md).
    Optimisation
      epochs, batch_size (global, split over DDP ranks), lr (AE, Adam), adversary_lr (Adam),
      lr_schedule ("cosine": decays the AE rate to lr_min_factor·lr; "constant"),
      warmup_steps, weight_decay, grad_clip (0 = off), max_steps (0 = no limit; for tests).
    Runtime
      device ("auto"|"cpu"|"cuda"|"cuda:N"), seed, num_threads (0 = torch default),
      log_every (steps between "step" records), val_max_stars (fixed validation subset),
      checkpoint_every (steps between latest-checkpoint saves; the epoch end always saves),
      stream ("auto"|"always"|"never": read training data in chunks instead of into memory;
      auto streams when the flux exceeds memory_limit_gb), stream_block (stars per block),
      progress (tqdm bar on a terminal).
    """

    data: str = ""
    val: str | None = None
    out: str = "runs/default"
    # model
    latent_dim: int = 32
    basis_dim: int = 256
    basis_trainable: bool = False
    basis_whiten: bool = True
    hidden: list[int] = field(default_factory=lambda: [1024, 512])
    adversary_hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "silu"
    adversary_mode: str = "joint"
    teff_bins: int = 5
    logg_bins: int = 5
    bin_edges: str = "quantile"
    flux_scaling: str = "global"
    # objective
    adversary_weight: float = 0.01
    adversary_ramp_steps: int = 0
    adversary_steps: int = 1
    flux_err_floor: float = 0.005
    # optimisation
    epochs: int = 60
    batch_size: int = 256
    lr: float = 3e-3
    adversary_lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_min_factor: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_steps: int = 0
    # runtime
    device: str = "auto"
    seed: int = 0
    num_threads: int = 0
    log_every: int = 50
    val_max_stars: int = 5000
    checkpoint_every: int = 500
    stream: str = "auto"
    stream_block: int = 4096
    memory_limit_gb: float = 4.0
    progress: bool = True

    def __post_init__(self):
        self.hidden = [int(h) for h in self.hidden]
        self.adversary_hidden = [int(h) for h in self.adversary_hidden]

    def validate(self) -> "TrainConfig":
        """Check values that would otherwise fail deep inside training; returns self."""
        p = []
        if not self.data:
            p.append("data: no training file given (use --data FILE.nc)")
        for name in ("epochs", "batch_size", "latent_dim", "adversary_steps", "teff_bins",
                     "logg_bins", "log_every", "stream_block", "val_max_stars"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)} must be ≥ 1")
        for name in ("adversary_weight", "adversary_ramp_steps", "warmup_steps", "weight_decay",
                     "grad_clip", "max_steps", "num_threads", "checkpoint_every", "basis_dim"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)} must be ≥ 0")
        if not (self.lr > 0 and self.adversary_lr > 0):
            p.append("lr and adversary_lr must be > 0")
        if self.flux_err_floor <= 0:
            p.append(f"flux_err_floor={self.flux_err_floor} must be > 0")
        choices = {"adversary_mode": ("joint", "separate"), "bin_edges": ("quantile", "uniform"),
                   "flux_scaling": ("global", "pixel"), "lr_schedule": ("cosine", "constant"),
                   "stream": ("auto", "always", "never")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                p.append(f"{name}={getattr(self, name)!r} must be one of {allowed}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            p.append(f"device={self.device!r} must be auto, cpu, cuda or cuda:N")
        if p:
            raise TrainConfigError("invalid training config: " + "; ".join(p))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f"unknown training config fields {unknown}")
        return cls(**data)

    @classmethod
    def load(cls, path) -> "TrainConfig":
        """Read a config.json (e.g. runs/NAME/config.json)."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise TrainConfigError(f"{path}: cannot read training config ({exc})") from exc
