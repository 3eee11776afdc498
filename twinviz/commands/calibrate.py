"""Fit a twin confidence — P(two stars share a chemistry | their latent distance [, SNR]) — on a
validation set with known groups, and store it beside the model (calibration.json, tied to the
weights' SHA-256). `twinviz twins --model M` then shows it as a column. The report (--out,
default RUN/calibration) has the reliability diagram and the Brier score on held-out groups.

Example:
  twinviz calibrate --model runs/fader --data val.nc
"""
from __future__ import annotations

import argparse
import sys

from twinviz.commands._model_arg import add_encoding_arguments, add_rank_by_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the fader model (run or model directory)")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="validation spectra with twins (`group`); never the training set")
    parser.add_argument("--method", choices=("isotonic", "logistic"), default="isotonic",
                        help="isotonic (distance only) or logistic (log distance, and log SNR when it varies)")
    parser.add_argument("-k", "--k", type=int, default=10, help="neighbours per star: the pairs a twin table shows")
    parser.add_argument("--metric", choices=("l1", "l2"), default="l1", help="latent distance")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fit/score split of the groups")
    parser.add_argument("--out", metavar="DIR", default=None, help="report folder (default: RUN/calibration)")
    add_rank_by_argument(parser)
    add_encoding_arguments(parser)


def main(args) -> int:
    from pathlib import Path

    from twinviz import files as runfiles
    from twinviz.bundle import ModelBundle
    from twinviz.commands._model_arg import pick_device, resolve_model_dir, run_dir_of
    from twinviz.evaluation.calibration_report import calibration_markdown, write_calibration_report
    from twinviz.latents.encode import twin_vectors
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import open_spectra
    from twinviz.spectra.fingerprint import describe_data, same_data
    from twinviz.twins.confidence import CalibrationError, fit_calibration, save_calibration

    try:
        model_dir = resolve_model_dir(args.model)
        # the calibration this command replaces may belong to earlier weights: not loaded
        bundle = ModelBundle.open(model_dir, device=pick_device(args.device), skip=(runfiles.MODEL_CALIBRATION,))
        ds = open_spectra(args.data, chunks={})
        data = describe_data(ds, args.data)
        if same_data(bundle.fitted_records().get("training data"), data):
            raise ModelError(f"--data {args.data}: the model was trained on these stars; a calibration on them "
                             "would promise more than held-out stars get. Fix: calibrate on the validation split")
        lat = bundle.embed(ds, rank_by=args.rank_by, ood=False, batch_size=args.batch_size, chunk=args.chunk)
        cal = fit_calibration(twin_vectors(lat), lat["group"].values, lat["teff"].values, lat["logg"].values,
                              snr=lat["snr"].values if "snr" in lat else None, method=args.method, k=args.k,
                              metric=args.metric, seed=args.seed, model_sha256=bundle.weights_sha256,
                              data=args.data, distance=lat.attrs["distance"], fitted_on=data)
    except (ModelError, CalibrationError) as exc:
        print(f"twinviz calibrate: error: {exc}", file=sys.stderr)
        return 2
    stored = save_calibration(cal, model_dir)
    paths = write_calibration_report(cal, Path(args.out) if args.out else run_dir_of(model_dir) / "calibration")
    print(calibration_markdown(cal, plot_name=None))
    print(f"wrote {stored}, {paths['md']}, {paths['png']}")
    return 0
