"""Fit the twin metric of an already trained model — what `twinviz train` does after its last
epoch (TrainConfig twin_metric "fit"), for a model trained without it (or before it existed).

The model encodes the training spectra (their twins teach the map: within-twin scatter
whitened, axes ordered by between-chemistry over within-twin variance) and the validation
spectra (which choose how many axes to keep, or raw z when no choice beats it). The result is
stored beside the weights (twin_metric.safetensors + twin_metric.json); `twinviz evaluate`,
`twins`, `calibrate`, `embed` and the app then rank twins in it. A calibration fitted before
measured other distances, so it is removed (refit it with `twinviz calibrate`).

Example:
  twinviz fit-metric --model runs/fader --data train.nc --val val.nc
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the fader model (run or model directory)")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="the spectra the model was trained on, with twins (`group`)")
    parser.add_argument("--val", required=True, metavar="FILE",
                        help="validation spectra with twins (chooses the number of axes); never the test set")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")


def main(args) -> int:
    from twinviz.commands._model_arg import resolve_model_dir
    from twinviz.model import ModelError
    from twinviz import files as runfiles
    from twinviz.bundle.fit import fit_model_twin_metric

    try:
        model_dir = resolve_model_dir(args.model)
        result = fit_model_twin_metric(model_dir, args.data, args.val, device=args.device,
                                       log=lambda fmt, *a: print(fmt % a))
    except ModelError as exc:
        print(f"twinviz fit-metric: error: {exc}", file=sys.stderr)
        return 2
    if result["status"] == "skipped":
        print(f"twinviz fit-metric: error: {args.data} / {args.val}: {result['why']}. Fix: give the "
              "training and validation spectra with their `group` variable (twins)", file=sys.stderr)
        return 2
    calibration = model_dir / runfiles.MODEL_CALIBRATION
    if calibration.exists():
        calibration.unlink()
        print(f"removed {calibration}: it was fitted on the previous distances. "
              f"Fix: twinviz calibrate --model {args.model} --data {args.val}")
    return 0
