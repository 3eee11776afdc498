"""Train a fader network (or, with --adversary-weight 0, the paper's λ=0 baseline) on a spectra
dataset, writing the run directory given by --out (config.json, status.json, metrics.jsonl,
train.log, model/, checkpoint/; see docs/training.md).

Examples:
  twinviz train --data train.nc --val val.nc --out runs/fader      # a file of twin pairs: twin term on
  twinviz train --data train.nc --val val.nc --out runs/paper --twin-term off   # the paper's objective
  twinviz train --data train.nc --val val.nc --out runs/baseline --adversary-weight 0 --twin-term off
  twinviz train --data survey.nc --val held.nc --out runs/clusters --twin-weight 0.01 --twin-set members.nc
  twinviz train --out runs/fader --resume --epochs 60       # continue (and extend) a run
  torchrun --nproc_per_node 2 -m twinviz train --data train.nc --out runs/ddp   # DDP

SIGTERM/SIGINT stop cleanly: the latest state is saved, the status becomes "cancelled" and the
exit status is 0; --resume continues from there.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per TrainConfig field — flag, help, choices from the field's declaration
    (twinviz.options) — plus --config, --resume and --overwrite."""
    from twinviz.options import flag_of, meta, options_of
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
    for f in options_of(TrainConfig):
        flag, choices = flag_of(f), meta(f, "choices")
        default = getattr(defaults, f.name)
        help_ = f"{meta(f, 'help')} (default: {_show(default)})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_)
        elif isinstance(default, list):
            parser.add_argument(flag, dest=f.name, type=_int_list, metavar="N,N",
                                default=argparse.SUPPRESS, help=help_)
        else:
            kind = type(default) if default is not None else str
            metavar = f.name.split("_")[-1].upper() if kind is not str and not choices else None
            parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=help_,
                                choices=choices, metavar=metavar)


def resumable_fields() -> set[str]:
    """Fields a resumed run may change; the rest define the model/run and come from its config.json."""
    from twinviz.options import meta, options_of
    from twinviz.training.config import TrainConfig

    return {f.name for f in options_of(TrainConfig) if meta(f, "resumable")}


def options_table() -> str:
    """docs/training.md's options table (Markdown), from the TrainConfig declarations; a test
    keeps the file equal to it. Regenerate: ``python -c "from twinviz.commands.train import
    options_table; print(options_table())"``."""
    from twinviz.options import flag_of, meta, options_of
    from twinviz.training.config import TrainConfig

    defaults = TrainConfig()
    rows = ["| option | default | range a launch from the app accepts | what it sets |", "|---|---|---|---|"]
    for f in options_of(TrainConfig):
        choices, limits = meta(f, "choices"), meta(f, "limits")
        allowed = " \\| ".join(choices) if choices else (f"{limits[0]:g} … {limits[1]:g}" if limits else "")
        if meta(f, "max_items"):
            allowed = f"1 … {meta(f, 'max_items')} widths, each {allowed}"
        default = _show(getattr(defaults, f.name)) or '""'
        resumable = " *(may change on `--resume`)*" if meta(f, "resumable") else ""
        rows.append(f"| `{flag_of(f)}` | `{default}` | {allowed} | {meta(f, 'help')}{resumable} |")
    return "\n".join(rows) + "\n"


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

    from twinviz import files as runfiles
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
        resumable = resumable_fields()
        fixed = sorted(k for k, v in given.items() if k not in resumable | {"out"} and v != getattr(base, k))
        if fixed:
            raise TrainConfigError(f"--resume keeps the run's settings; cannot change {fixed}. "
                                   f"Fix: drop those options or start a new run (changeable: "
                                   f"{', '.join(sorted(resumable))})")
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
