"""Recover clusters (groups of stars born together) by density-based clustering — scikit-learn's
HDBSCAN under the L1 distance — of the fader latent z, beside the same clustering of the
polynomial-residual baselines and of the true abundances. Prints the scores (homogeneity,
completeness, V-measure, fraction of true groups recovered; docs/clusters.md) and, with --out,
writes report.json, report.md and labels.nc there. Data without groups still clusters: the
group scores are then reported as absent.

Examples:
  twinviz simulate --pairs 60 --group-sizes 5-50 --field-fraction 0.5 --seed 5 --out clusters.nc
  twinviz clusters --model data/demo/model --data clusters.nc --out reports/clusters
"""
from __future__ import annotations

import argparse
import sys

from twinviz.commands._model_arg import add_encoding_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="the fader model (run or model directory)")
    parser.add_argument("--data", required=True, metavar="FILE", help="spectra (.nc/.zarr); `group` gives the truth")
    parser.add_argument("--out", metavar="DIR", default=None, help="report folder (default: print only)")
    parser.add_argument("--baselines", default="polynomial_pca,oracle",
                        help="comma-separated: polynomial_pca, polynomial (every pixel; slower), oracle; '' for none")
    parser.add_argument("--baseline-val", metavar="FILE", default=None,
                        help="validation set (never the clustered one) on which the polynomial-PCA baseline's degree "
                             "and number of components are chosen (default: degree 2, 20 components)")
    parser.add_argument("--min-cluster-size", type=int, default=5, help="HDBSCAN min_cluster_size")
    parser.add_argument("--min-samples", type=int, default=None, help="HDBSCAN min_samples (default: min_cluster_size)")
    add_encoding_arguments(parser)


def main(args) -> int:
    from twinviz.commands._model_arg import elapsed_printer, load_model
    from twinviz.evaluation.baselines import choose_polynomial_pca_on
    from twinviz.evaluation.cluster_report import cluster_dataset, cluster_markdown, write_cluster_report
    from twinviz.latents.encode import encode_dataset
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import load_spectra

    say = elapsed_printer()
    if args.min_cluster_size < 2:
        print(f"twinviz clusters: error: --min-cluster-size: {args.min_cluster_size} is below 2. Fix: e.g. 5",
              file=sys.stderr)
        return 2
    try:
        model = load_model(args.model, args.device)
        ds = load_spectra(args.data)
        model.model.check_grid(ds)
        baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
        poly_pca = None
        if args.baseline_val and "polynomial_pca" in baselines:
            say(f"choosing the polynomial-PCA baseline on {args.baseline_val}")
            chosen = choose_polynomial_pca_on(args.baseline_val, args.data)
            poly_pca = {key: chosen[key] for key in ("degree", "n_components", "chosen_on")}
        say("encoding")
        z = encode_dataset(model.model, ds, batch_size=args.batch_size, chunk=args.chunk)["z"].values
        report = cluster_dataset(ds, z, baselines=baselines, poly_pca=poly_pca, min_cluster_size=args.min_cluster_size,
                                 min_samples=args.min_samples, progress=say)
    except (ModelError, ValueError) as exc:
        if type(exc).__name__ == "DatasetError":
            raise
        print(f"twinviz clusters: error: {exc}", file=sys.stderr)
        return 2
    report.settings["model"] = str(args.model)
    print(cluster_markdown(report))
    if args.out:
        paths = write_cluster_report(report, args.out)
        print(f"wrote {paths['md']}, {paths['json']}, {paths['labels']}")
    return 0
