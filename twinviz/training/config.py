"""TrainConfig: the single source of a training run's hyperparameters (saved as config.json).

Each field is declared with :func:`twinviz.options.option`: its metadata (help, choices, bounds,
launch limits, flag, form placement, group, resumable) is what ``twinviz train`` builds its
options from, what the app's training form builds its widgets from and what the run manager
checks launches with. The architecture fields are inherited from
:class:`twinviz.options.Architecture`, which ``ModelConfig`` shares.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from twinviz.options import Architecture, check_options, option, options_of

# every non-empty combination of the invariance term's nuisances (twinviz/training/augment.py)
_KINDS = ("continuum", "broadening", "masks")
NUISANCE_CHOICES = tuple("+".join(k for i, k in enumerate(_KINDS) if bits >> i & 1) for bits in range(7, 0, -1))

__all__ = ["TrainConfig", "TrainConfigError"]


class TrainConfigError(ValueError):
    """An invalid training configuration; the message names the field and the fix."""


@dataclass(kw_only=True)
class TrainConfig(Architecture):
    """Hyperparameters and paths of one training run.

    Every field is JSON-serialisable; ``runs/NAME/config.json`` holds exactly this.

    Data
      data: training spectra (.nc or .zarr); val: validation spectra (optional); out: run dir.
    Model (the architecture fields are twinviz.options.Architecture, shared with ModelConfig)
      latent_dim, basis_dim, basis_trainable, basis_whiten, conv_channels, hidden, adversary_hidden,
      activation, adversary_mode ("joint"|"separate"), teff_bins / logg_bins (number of adversary bins), bin_edges
      ("quantile": equal-count bins of the training labels, so chance accuracy ≈ 1/bins;
      "uniform": equal-width), flux_scaling ("global"|"pixel").
    Objective (docs/science.md, Method)
      adversary_weight: λ; adversary_ramp_steps: λ grows linearly from 0 over this many AE
      steps (0: constant λ from the start); adversary_steps: adversary updates per AE update;
      flux_err_floor: σ₀ (flux units) in the per-pixel weight σ₀²/(σ²+σ₀²) (see docs/model.md);
      twin_metric: "fit" learns the twin metric after training (twinviz/twins/metric.py), "off";
      twin_term: "auto" uses the twin term (twinviz/training/twin_term.py) when most training stars
      have a twin in the data or a twin_set is given, "on" requires it, "off" is the paper's
      objective; twin_weight: its μ (0 = off),
      twin_temperature: its softmax temperature; invariance_weight: ν of the nuisance-invariance
      term (twinviz/training/augment.py; 0 = off), invariance_nuisances: which it draws.
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

    data: str = option("", help="training spectra file (.nc or .zarr)", form=None, group="data")
    val: str | None = option(None, help="validation spectra file; with chemistry groups it also gives "
                             "twin ranks", form=None, group="data", resumable=True)
    out: str = option("runs/default", help="run directory to write", form=None, group="data")
    twin_set: str | None = option(None, help="spectra of known twins (stars sharing a `group`, e.g. open-cluster "
                                  "members) whose pairs feed the twin term instead of --data's groups, so the "
                                  "training stars need no twins (not with --twin-term off)", form=None, group="data")
    # model: the architecture fields come from Architecture (twinviz.options); these three set
    # the adversary's bins, which the model stores as edges
    teff_bins: int = option(5, help="number of Teff bins the adversary predicts", at_least=2,
                            limits=(2, 100), group="model")
    logg_bins: int = option(5, help="number of logg bins the adversary predicts", at_least=2,
                            limits=(2, 100), group="model")
    bin_edges: str = option("quantile", help="quantile: equal-count bins of the training labels; "
                            "uniform: equal width", choices=("quantile", "uniform"), group="model")
    # objective
    adversary_weight: float = option(0.01, help="λ, weight of the adversarial term; 0 gives the "
                                     "paper's baseline", at_least=0, limits=(0.0, 100.0), form="main",
                                     group="objective")
    adversary_ramp_steps: int = option(0, help="ramp λ linearly from 0 over this many steps (0: no ramp)",
                                       at_least=0, limits=(0, 10_000_000), group="objective")
    adversary_steps: int = option(1, help="adversary updates per autoencoder update", at_least=1,
                                  limits=(1, 100), group="objective")
    flux_err_floor: float = option(0.005, help="σ₀ in the pixel weight σ₀²/(σ²+σ₀²), flux units",
                                   above=0, limits=(1e-9, 1.0), group="objective")
    twin_metric: str = option("fit", help="after training, learn the twin metric (a linear map of z and its "
                              "Teff/logg interactions that down-weights what differs between training "
                              "twins; the interaction degree and the number of axes kept are chosen on "
                              "--val) when both data have groups; off: rank on raw z",
                              choices=("fit", "off"), group="objective", resumable=True)
    twin_term: str = option("auto", help="the twin term, a loss that pulls training twins' z together: auto "
                            "uses it when most training stars have a twin in --data (a file of twin pairs: the "
                            "many-twins regime) or a --twin-set is given, and leaves it off for a survey with "
                            "few or no twins; on: require it; off: the paper's objective (z never sees a twin)",
                            choices=("auto", "on", "off"), group="objective")
    twin_weight: float = option(0.1, help="μ, weight of the twin term when it is used (batches of whole twin "
                                "pairs; 0: off; docs/model.md)", at_least=0, limits=(0.0, 100.0), group="objective")
    invariance_weight: float = option(0.0, help="ν, weight of a term that keeps z still when nuisances that are "
                                      "not chemistry are added to a spectrum on the fly (a smooth continuum error "
                                      "per chip, extra line broadening, masked pixels); needs no twins; trains on "
                                      "the pixels (0: off, the paper's objective; experimental, docs/model.md)",
                                      at_least=0, limits=(0.0, 100.0), group="objective")
    invariance_nuisances: str = option("continuum+broadening+masks", help="which nuisances the invariance term "
                                       "draws (twinviz/training/augment.py)", choices=NUISANCE_CHOICES,
                                       group="objective")
    twin_temperature: float = option(0.1, help="temperature of the twin term's softmax over the batch",
                                     above=0, limits=(1e-4, 100.0), group="objective")
    # optimisation
    epochs: int = option(60, help="passes over the training data", at_least=1, limits=(1, 10_000),
                         form="main", group="optimisation", resumable=True)
    batch_size: int = option(256, help="global batch size (split across DDP processes)", at_least=1,
                             limits=(1, 65_536), form="main", group="optimisation")
    lr: float = option(3e-3, help="autoencoder learning rate (Adam)", above=0, limits=(1e-9, 1.0),
                       form="main", group="optimisation")
    adversary_lr: float = option(1e-3, help="adversary learning rate (Adam)", above=0, limits=(1e-9, 1.0),
                                 group="optimisation")
    lr_schedule: str = option("cosine", help="autoencoder learning-rate schedule after warm-up",
                              choices=("cosine", "constant"), group="optimisation")
    lr_min_factor: float = option(0.05, help="final learning rate of the cosine schedule, as a "
                                  "fraction of --lr", limits=(0.0, 1.0), group="optimisation")
    warmup_steps: int = option(100, help="linear learning-rate warm-up steps", at_least=0,
                               limits=(0, 10_000_000), group="optimisation")
    weight_decay: float = option(0.0, help="Adam weight decay of the autoencoder", at_least=0,
                                 limits=(0.0, 1.0), group="optimisation")
    grad_clip: float = option(1.0, help="clip gradient norms to this value (0: off)", at_least=0,
                              limits=(0.0, 1e6), group="optimisation")
    max_steps: int = option(0, help="stop after this many steps in all (0: no limit)", at_least=0,
                            limits=(0, 100_000_000), group="optimisation", resumable=True)
    # runtime
    device: str = option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N; bf16 autocast "
                         "on CUDA", form=None, group="runtime", resumable=True)
    seed: int = option(0, help="random seed (CPU runs are reproducible)", at_least=0, limits=(0, 2**31 - 1),
                       group="runtime")
    num_threads: int = option(0, help="torch CPU threads (0: torch's default)", at_least=0,
                              limits=(0, 1024), group="runtime", resumable=True)
    log_every: int = option(50, help="steps between 'step' records in metrics.jsonl", at_least=1,
                            limits=(1, 1_000_000), group="runtime", resumable=True)
    val_max_stars: int = option(5000, help="size of the fixed validation subset (whole groups)",
                                at_least=1, limits=(1, 10_000_000), group="runtime", resumable=True)
    checkpoint_every: int = option(500, help="steps between checkpoint saves (every epoch end saves "
                                   "too; 0: epoch ends only)", at_least=0, limits=(0, 100_000_000),
                                   group="runtime", resumable=True)
    stream: str = option("auto", help="read training data in blocks instead of into memory (auto: "
                         "when larger than --memory-limit-gb)", choices=("auto", "always", "never"),
                         group="runtime", resumable=True)
    stream_block: int = option(4096, help="stars per streamed block (rounded to the file's chunks)",
                               at_least=1, limits=(1, 10_000_000), group="runtime", resumable=True)
    memory_limit_gb: float = option(4.0, help="above this size of flux (GB) --stream auto streams",
                                    limits=(0.01, 4096.0), group="runtime", resumable=True)
    progress: bool = option(True, help="show a progress bar (on a terminal)", form=None,
                            group="runtime", resumable=True)

    def validate(self) -> "TrainConfig":
        """Check values that would otherwise fail deep inside training (the declared choices and
        hard bounds of every field); returns self."""
        problems = []
        if not self.data:
            problems.append("data: no training file given (use --data FILE.nc)")
        problems += check_options(self, TrainConfig)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"device={self.device!r} must be auto, cpu, cuda or cuda:N")
        if self.twin_set and (not self.twin_weight or self.twin_term == "off"):
            problems.append(f"twin_set: {self.twin_set} feeds the twin term, which is off "
                            f"(twin_term {self.twin_term}, twin_weight {self.twin_weight}). "
                            "Fix: --twin-term auto --twin-weight 0.1, or no --twin-set")
        if self.twin_term == "on" and not self.twin_weight:
            problems.append("twin_term: on needs a weight, and twin_weight is 0. Fix: --twin-weight 0.1, "
                            "or --twin-term off")
        if self.data and self.val:
            from twinviz.bundle.provenance import same_inputs

            if same_inputs(self.data, self.val):
                problems.append(f"val: {self.val} is the same data as data: {self.data}; the kept epoch and the twin "
                                "metric would be chosen on the training stars. Fix: a separate validation file "
                                "(e.g. `twinviz simulate --seed N` with another seed), or no --val")
        if problems:
            raise TrainConfigError("invalid training config: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        """The fields as a flat JSON-ready dict, in the order of ``options_of`` (data, model,
        objective, optimisation, runtime)."""
        values = dataclasses.asdict(self)
        return {f.name: values[f.name] for f in options_of(TrainConfig)}

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
        """Read a config.json (e.g. runs/NAME/config.json). Fields added since it was written take
        the value that reproduces that run (``residual_degree`` 0; a run from before ``twin_term``
        used the twin term exactly when its ``twin_weight``, 0 before that field, was > 0), not
        today's default."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "twin_term" not in data:
                data = {"twin_weight": 0.0, **data}
                data["twin_term"] = "on" if data["twin_weight"] else "off"
            return cls.from_dict({"residual_degree": 0, **data})
        except (OSError, ValueError) as exc:
            raise TrainConfigError(f"{path}: cannot read training config ({exc})") from exc
