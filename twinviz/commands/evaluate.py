"""Table 1 of de Mijolla, Ness & Viti (2019) for a trained model on a held-out set with twin
pairs, with the baselines beside it (λ=0 model when given, polynomial residuals, raw flux, and
the true-abundance oracle on synthetic data). Writes report.json, report.md (with the paper's
numbers beside ours), rank_curve.png and ranks.nc to --out.

Data without groups (e.g. `twinviz import apogee` without --groups) have no twins to rank: the
report then gives each model's reconstruction MSE only and says the rank columns are absent
(not zero); only report.json and report.md are written.

Examples:
  twinviz evaluate --model runs/fader --data test.nc          # held out: never the training or validation file
  twinviz evaluate --model runs/fader --baseline-model runs/lambda0 --data test.nc --out eval/
  twinviz evaluate --model runs/fader --data test.nc --baseline-val val.nc --baseline-train train.nc
  twinviz evaluate --model runs/fader --data test.nc --pixel-finder finders/pixel   # a saved one

The evaluated data must be held out: data that the model was trained on, whose epoch choice it
made, or on which its twin metric, calibration, the pixel finder or a baseline's choice were fitted
are refused (matched by fingerprint: star ids plus generator attributes) unless --allow-in-sample,
which marks those rows "in-sample". Every row names its supervision; the report names the file's
role. --rank-by picks what the model's twins are ranked on (auto: its twin metric on data of the
domain its twins came from, else raw z).

A model ranked in its twin metric has learned from the training twins; --baseline-train gives the
pixel baseline the same twins (polynomial-PCA residuals in a twin metric), so the comparison
measures the network, not the supervision. --pixel-finder scores a finder saved by `twinviz
fit-pixel-finder` in that row instead of fitting one (the same method; minutes saved).
"""
from __future__ import annotations

import argparse
import sys
import time

from twinviz.commands._model_arg import add_encoding_arguments, add_rank_by_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="the fader model: a run directory (runs/NAME) or its model/ directory")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="held-out spectra (.nc/.zarr) whose twins share a `group` id (without "
                             "groups: reconstruction MSE only)")
    parser.add_argument("--baseline-model", metavar="DIR", default=None,
                        help="the λ=0 conditional autoencoder run, reported beside the fader network")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="report folder (default: RUN/evaluation beside the model)")
    parser.add_argument("--baselines", default="polynomial,raw_flux,oracle",
                        help="comma-separated pixel/label baselines to include ('' for none)")
    parser.add_argument("--poly-degree", type=int, default=2,
                        help="total degree of the per-pixel polynomial in (Teff, logg)")
    parser.add_argument("--baseline-val", metavar="FILE", default=None,
                        help="a validation set (never the evaluated one) on which the polynomial-PCA baseline's "
                             "degree and number of components are chosen; adds that baseline")
    parser.add_argument("--baseline-train", metavar="FILE", default=None,
                        help="the model's training set: with --baseline-val, adds the twin-supervised baseline "
                             "(polynomial-PCA residuals in a twin metric learned from these twins, chosen on "
                             "--baseline-val), the fair peer of a fader network ranked in its twin metric")
    parser.add_argument("--pixel-finder", metavar="DIR", default=None,
                        help="…or score a saved pixel twin finder (`twinviz fit-pixel-finder`) in that row")
    parser.add_argument("--pixel-queries", type=int, default=2000,
                        help="query stars sampled for the pixel-space baselines (0: all; cost ∝ N²·pixels)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query sample")
    parser.add_argument("--metric", choices=("l1", "l2"), default="l1", help="twin-search distance")
    parser.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto",
                        help="twin-search backend (results are identical)")
    parser.add_argument("--allow-in-sample", action="store_true",
                        help="score data a row was fitted or chosen on anyway, marking those rows 'in-sample'")
    add_rank_by_argument(parser)
    add_encoding_arguments(parser)


def main(args) -> int:
    from pathlib import Path

    from twinviz.evaluation import evaluate, write_report
    from twinviz.evaluation.report import report_markdown
    from twinviz.model import ModelError
    from twinviz.evaluation.baselines import choose_polynomial_pca_on
    from twinviz.spectra.dataset import open_spectra
    from twinviz.twins.index import TwinIndexError
    from twinviz.commands._model_arg import elapsed_printer, load_model, resolve_model_dir, run_dir_of

    say = elapsed_printer()
    start = say.start

    try:
        model_dir = resolve_model_dir(args.model)
        model = load_model(model_dir, args.device)
        baseline = load_model(args.baseline_model, args.device) if args.baseline_model else None
        ds = open_spectra(args.data, chunks={})  # lazily, in the file's own chunks
        model.model.check_grid(ds)
        if baseline is not None:
            baseline.model.check_grid(ds)
        baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
        poly_pca = None
        if args.baseline_val:
            say(f"choosing the polynomial-PCA baseline on {args.baseline_val}")
            poly_pca = choose_polynomial_pca_on(args.baseline_val, args.data)
            baselines = baselines + ("polynomial_pca",)
        supervised = None
        if args.baseline_train and args.pixel_finder:
            raise ModelError("--baseline-train fits the twin-supervised row and --pixel-finder loads one: give "
                             "one of them. Fix: drop --baseline-train to score the saved finder")
        if args.baseline_train:
            supervised = _supervised_baseline(args, say)
        elif args.pixel_finder:
            from twinviz.evaluation.pixel_finder import load_pixel_finder

            supervised = load_pixel_finder(args.pixel_finder)  # a ValueError: reported below
            supervised.check(ds)
        report = evaluate(model, ds, baseline_model=baseline, baselines=baselines,
                          poly_degree=args.poly_degree, poly_pca=poly_pca, supervised=supervised, pixel_queries=args.pixel_queries or None,
                          seed=args.seed, metric=args.metric, backend=args.backend,
                          batch_size=args.batch_size, chunk=args.chunk, progress=say, rank_by=args.rank_by,
                          allow_in_sample=args.allow_in_sample)
    except (ModelError, TwinIndexError, ValueError) as exc:
        if type(exc).__name__ == "DatasetError":
            raise
        print(f"twinviz evaluate: error: {exc}", file=sys.stderr)
        return 2
    report.settings.update(model=str(model_dir), model_fingerprint=model.fingerprint, baseline_model=args.baseline_model,
                           seconds=round(time.perf_counter() - start, 1))
    out = Path(args.out) if args.out else run_dir_of(model_dir) / "evaluation"
    paths = write_report(report, out)
    print(report_markdown(report, plot_name=None))
    print("wrote " + ", ".join(str(paths[k]) for k in ("md", "json", "png", "ranks") if k in paths))
    return 0


def _supervised_baseline(args, say):
    """The twin-supervised baseline fitted on --baseline-train and chosen on --baseline-val."""
    from pathlib import Path

    from twinviz.evaluation.supervised_baseline import fit_polynomial_pca_metric
    from twinviz.spectra.dataset import DatasetError, load_spectra

    if not args.baseline_val:
        raise DatasetError(f"--baseline-train {args.baseline_train}: needs a validation set to choose on. "
                           "Fix: add --baseline-val VAL.nc (not the evaluated file)")
    if Path(args.baseline_train).resolve() == Path(args.data).resolve():  # (--baseline-val: checked when chosen)
        raise DatasetError(f"--baseline-train {args.baseline_train}: is the evaluated file; a baseline fitted on it "
                           "would be scored on its own twins. Fix: pass the training split")
    say(f"fitting the twin-supervised baseline on {args.baseline_train}, choosing on {args.baseline_val}")
    return fit_polynomial_pca_metric(load_spectra(args.baseline_train), load_spectra(args.baseline_val), say=say)
