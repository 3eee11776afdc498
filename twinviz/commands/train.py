"""Train a fader network (or, with --adversary-weight 0, the paper's λ=0 baseline) on a spectra
dataset, writing the run directory given by --out (config.json, status.json, metrics.jsonl,
train.log, model/, checkpoint/; see docs/training.md).

Examples:
  twinviz train --data train.nc --val val.nc --out runs/fader
  twinviz train --data train.nc --val val.nc --out runs/baseline --adversary-weight 0
  twinviz train --out runs/fader --resume --epochs 60       # continue (and extend) a run
  torchrun --nproc_per_node 2 -m twinviz train --data train.nc --out runs/ddp   # DDP

SIGTERM/SIGINT stop cleanly: the latest state is saved, the status becomes "cancelled" and the
exit status is 0; --resume continues from there.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

# Help for every TrainConfig field (the CLI flag is the field name with dashes).
_HELP = {
    "data": "training spectra file (.nc or .zarr)",
    "val": "validation spectra file; with chemistry groups it also gives twin ranks",
    "out": "run directory to write",
    "latent_dim": "size of the latent z",
    "basis_dim": "width of the learned linear flux↔basis layers, initialised by PCA (0: none)",
    "basis_trainable": "train the PCA basis layers too (slower; off: training runs on precomputed coefficients)",
    "basis_whiten": "whiten the basis coefficients (each PCA component scaled to unit variance)",
    "hidden": "encoder hidden widths after the basis, comma-separated (the decoder mirrors them)",
    "adversary_hidden": "adversary hidden widths, comma-separated",
    "activation": "activation function",
    "adversary_mode": "joint: one classifier over all (Teff, logg) bins; separate: one per label",
    "teff_bins": "number of Teff bins the adversary predicts",
    "logg_bins": "number of logg bins the adversary predicts",
    "bin_edges": "quantile: equal-count bins of the training labels; uniform: equal width",
    "flux_scaling": "global: per-pixel mean, one scale; pixel: per-pixel mean and std",
    "adversary_weight": "λ, weight of the adversarial term; 0 gives the paper's baseline",
    "adversary_ramp_steps": "ramp λ linearly from 0 over this many steps (0: no ramp)",
    "adversary_steps": "adversary updates per autoencoder update",
    "flux_err_floor": "σ₀ in the pixel weight σ₀²/(σ²+σ₀²), flux units",
    "epochs": "passes over the training data",
    "batch_size": "global batch size (split across DDP processes)",
    "lr": "autoencoder learning rate (Adam)",
    "adversary_lr": "adversary learning rate (Adam)",
    "lr_schedule": "autoencoder learning-rate schedule after warm-up",
    "lr_min_factor": "final learning rate of the cosine schedule, as a fraction of --lr",
    "warmup_steps": "linear learning-rate warm-up steps",
    "weight_decay": "Adam weight decay of the autoencoder",
    "grad_clip": "clip gradient norms to this value (0: off)",
    "max_steps": "stop after this many steps in all (0: no limit)",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N; bf16 autocast on CUDA",
    "seed": "random seed (CPU runs are reproducible)",
    "num_threads": "torch CPU threads (0: torch's default)",
    "log_every": "steps between 'step' records in metrics.jsonl",
    "val_max_stars": "size of the fixed validation subset (whole groups)",
    "checkpoint_every": "steps between checkpoint saves (every epoch end saves too; 0: epoch ends only)",
    "stream": "read training data in blocks instead of into memory (auto: when larger than --memory-limit-gb)",
    "stream_block": "stars per streamed block (rounded to the file's chunks)",
    "memory_limit_gb": "above this size of flux (GB) --stream auto streams",
    "progress": "show a progress bar (on a terminal)",
}
_CHOICES = {"activation": ("silu", "leaky_relu", "gelu"), "adversary_mode": ("joint", "separate"),
            "bin_edges": ("quantile", "uniform"), "flux_scaling": ("global", "pixel"),
            "lr_schedule": ("cosine", "constant"), "stream": ("auto", "always", "never")}
# Fields a resumed run may change; the rest define the model/run and come from its config.json.
_RESUMABLE = {"epochs", "max_steps", "device", "num_threads", "log_every", "checkpoint_every",
              "progress", "val", "val_max_stars", "stream", "stream_block", "memory_limit_gb"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per TrainConfig field plus --config, --resume and --overwrite."""
    from twinviz.training.config import TrainConfig

    # Keep the examples in the description as written (every option states its own default).
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    defaults = TrainConfig()
    parser.add_argument("--config", metavar="JSON", default=argparse.SUPPRESS,
                        help="read settings from a config.json (options given here override it)")
    parser.add_argument("--resume", action="store_true", default=argparse.SUPPRESS,
                        help="continue the run in --out from its checkpoint (settings from its config.json)")
    parser.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS,
                        help="replace an existing run in --out instead of refusing")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_ = f"{_HELP.get(f.name, f.name)} (default: {_show(default)})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_)
        elif isinstance(default, list):
            parser.add_argument(flag, dest=f.name, type=_int_list, metavar="N,N",
                                default=argparse.SUPPRESS, help=help_)
        else:
            kind = type(default) if default is not None else str
            metavar = f.name.split("_")[-1].upper() if kind is not str else None
            parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=help_,
                                choices=_CHOICES.get(f.name), metavar=None if f.name in _CHOICES else metavar)


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def config_from_args(args: argparse.Namespace):
    """Build the TrainConfig: defaults ← --config file ← run's config.json (resume) ← flags."""
    from pathlib import Path

    from twinviz.training import runfiles
    from twinviz.training.config import TrainConfig, TrainConfigError

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    base = TrainConfig()
    if hasattr(args, "config"):
        base = TrainConfig.load(args.config)
    if getattr(args, "resume", False):
        out = Path(given.get("out", base.out))
        saved = out / runfiles.CONFIG
        if not saved.is_file():
            raise TrainConfigError(f"{saved}: no run to resume. Fix: check --out, or start without --resume")
        base = TrainConfig.load(saved)
        fixed = sorted(k for k, v in given.items() if k not in _RESUMABLE | {"out"} and v != getattr(base, k))
        if fixed:
            raise TrainConfigError(f"--resume keeps the run's settings; cannot change {fixed}. "
                                   f"Fix: drop those options or start a new run (changeable: "
                                   f"{', '.join(sorted(_RESUMABLE))})")
    return dataclasses.replace(base, **given).validate()


def main(args: argparse.Namespace) -> int:
    """Run the training; 0 when done or cancelled by a signal, 1 when it failed, 2 on bad input."""
    from twinviz.model import ModelError
    from twinviz.training import CheckpointError, TrainConfigError, train
    from twinviz.training.rundir import read_status

    try:
        config = config_from_args(args)
        out = train(config, resume=getattr(args, "resume", False), overwrite=getattr(args, "overwrite", False))
    except (TrainConfigError, ModelError, CheckpointError) as exc:
        print(f"twinviz train: error: {exc}", file=sys.stderr)
        return 2
    status = read_status(out) or {}
    if status.get("state") == "done":
        best = status.get("best") or {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in best.items() if isinstance(v, float))
        print(f"done: {out}/model  ({shown})")
    return 0


if __name__ == "__main__":  # `python -m twinviz.commands.train` works without the dispatcher
    _parser = argparse.ArgumentParser(prog="twinviz train", description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
