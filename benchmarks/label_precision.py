"""How precisely each representation holds the chemistry that varies: a diagnostic of the suite.

    python benchmarks/label_precision.py --out SUITE --cells giants-lowd-noiseless --seeds 0

For each suite cell (the same data and trainings as ``bench_science.py``, which it reuses or
makes under ``--out``) the labels that vary (``fe_h`` and ``x_fe``, reduced to their principal
directions) are predicted from each representation of a star by ridge regression fitted on the
training split (its strength chosen on a held-out fifth of it) and scored on the test split:

- the pixel residuals (degree-2 polynomial in Teff/logg removed per pixel) on 64 principal
  components, alone and times the Teff/logg terms (1, t, g, t², tg, g²);
- the fader network's z (and the λ = 0 network's), alone and times the same terms.

Printed: the prediction error per varying label direction as a fraction of that direction's
spread, and the twin rank 1 / within-1 % when stars are ranked by their predicted labels (L2,
ties against the star). A first table gives the precision twin search needs: rank 1 with true
labels plus Gaussian noise of a given fraction of each direction's spread.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import bench_science  # noqa: E402

NOISE_FRACTIONS = (0.001, 0.003, 0.01, 0.03, 0.1)


def varying_labels(train, test):
    """Labels [N, d] projected on the directions in which the training stars vary."""
    def labels(ds):
        return np.concatenate([ds["fe_h"].values[:, None], ds["x_fe"].values], axis=1).astype(np.float64)

    ytr, yte = labels(train), labels(test)
    centre = ytr.mean(0)
    _, sv, vt = np.linalg.svd(ytr - centre, full_matrices=False)
    basis = vt[: int((sv > sv[0] * 1e-3).sum())].T
    return (ytr - centre) @ basis, (yte - centre) @ basis


def label_terms(ds, centre=None):
    """[N, 6]: the degree-2 monomials of the standardised Teff/logg (the training split's
    scaling, ``centre`` = (mean, std)), as the polynomial baselines use them."""
    from twinviz.evaluation.baselines import polynomial_design
    from twinviz.twins.metric import label_standardisation

    teff, logg = ds["teff"].values, ds["logg"].values
    if centre is None:
        centre = label_standardisation(teff, logg)
    return polynomial_design(teff, logg, 2, *centre), centre


def with_terms(x, terms):
    return np.einsum("ni,nj->nij", x, terms).reshape(len(x), -1)


def ridge_predict(xtr, ytr, xte, strengths=(1e-6, 1e-4, 1e-2, 1.0, 100.0)):
    """Ridge regression on standardised features; strength chosen on a held-out fifth of train."""
    mean, scale = xtr.mean(0), xtr.std(0) + 1e-12
    a, b = (xtr - mean) / scale, (xte - mean) / scale
    order = np.random.default_rng(0).permutation(len(a))
    hold, fit = order[: len(a) // 5], order[len(a) // 5:]

    def solve(rows, strength):
        target = ytr[rows] - ytr[rows].mean(0)
        gram = a[rows].T @ a[rows] + strength * len(rows) * np.eye(a.shape[1])
        return np.linalg.solve(gram, a[rows].T @ target), ytr[rows].mean(0)

    def held_out_error(strength):
        w, offset = solve(fit, strength)
        return float(np.sqrt(((a[hold] @ w + offset - ytr[hold]) ** 2).mean()))

    best = min(strengths, key=held_out_error)
    w, offset = solve(np.arange(len(a)), best)
    return b @ w + offset, best


def twin_rank(features, groups):
    """(rank 1, within 1 %) of each star's twin under L2 on ``features`` (the twin search's own
    ranks: ties count against the star)."""
    from twinviz.twins.index import TwinIndex
    from twinviz.twins.ranks import rank_fractions

    fractions = rank_fractions(TwinIndex(features, metric="l2").twin_ranks(groups), len(groups))
    return fractions.rank1, fractions.within_1


def encoded(model_dir, ds):
    from twinviz.model import FaderNetwork, encode_arrays

    model = FaderNetwork.from_pretrained(model_dir)
    mask = ds["mask"].values if "mask" in ds else None
    return encode_arrays(model, ds["flux"].values, ds["teff"].values, ds["logg"].values, mask=mask).astype(np.float64)


def cell_table(cell, sizes, out: Path, seeds, threads: int) -> None:
    import xarray as xr

    from twinviz.evaluation.baselines import polynomial_residuals, residual_components
    from twinviz.spectra.dataset import load_spectra

    root = out / cell["name"]
    root.mkdir(parents=True, exist_ok=True)
    data = {split: bench_science.dataset(cell, split, sizes[split], root) for split in ("train", "val", "test")}
    train, test = load_spectra(data["train"]), load_spectra(data["test"])
    if train.sizes["star"] + test.sizes["star"] > 60_000:
        raise SystemExit(f"{cell['name']}: this diagnostic holds both splits in memory; use the suite's default size")
    ytr, yte = varying_labels(train, test)
    spread = ytr.std(0)
    groups = test["group"].values
    print(f"\n## {cell['name']}: {ytr.shape[1]} varying label directions, spread {np.round(spread, 4).tolist()}")
    print("\ntrue labels + Gaussian noise (fraction of each direction's spread) → rank 1 / within 1 %")
    rng = np.random.default_rng(1)
    for frac in NOISE_FRACTIONS:
        r1, r100 = twin_rank(yte / spread + rng.normal(0.0, frac, yte.shape), groups)
        print(f"  {frac:<6} {100 * r1:5.1f} / {100 * r100:5.1f}")

    terms_tr, centre = label_terms(train)
    terms_te, _ = label_terms(test, centre)
    # the polynomial residuals are fitted per split, as the pixel baselines are
    pcs = residual_components(polynomial_residuals(xr.concat([train, test], "star"), 2), 64).astype(np.float64)
    features = {"pixel residuals, 64 PCs": (pcs[: len(ytr)], pcs[len(ytr):])}
    features["pixel residuals, 64 PCs × Teff/logg terms"] = (with_terms(features["pixel residuals, 64 PCs"][0], terms_tr),
                                                              with_terms(features["pixel residuals, 64 PCs"][1], terms_te))
    for seed in seeds:
        for name, weight in bench_science.METHODS.items():
            run = out / cell["name"] / f"seed{seed}" / name
            model_dir, _ = bench_science.trained(data, run, seed, sizes["epochs"], threads, weight)
            ztr, zte = encoded(model_dir, train), encoded(model_dir, test)
            features[f"{name} z (seed {seed})"] = (ztr, zte)
            features[f"{name} z × Teff/logg terms (seed {seed})"] = (with_terms(ztr, terms_tr), with_terms(zte, terms_te))

    few = ytr.shape[1] <= 4  # else the median and largest error over the directions
    heads = [f"error / spread, dir {i}" for i in range(ytr.shape[1])] if few else \
        ["error / spread, median over directions", "largest"]
    print(f"\n| representation | {' | '.join(heads)} | rank 1 / ≤ 1 % on predicted labels |")
    print("|---|" + "---|" * len(heads) + "---|")
    for name, (a, b) in features.items():
        pred, _ = ridge_predict(a, ytr, b)
        err = np.sqrt(((pred - yte) ** 2).mean(0)) / spread
        shown = err if few else (np.median(err), err.max())
        r1, r100 = twin_rank(pred / spread, groups)
        print(f"| {name} | " + " | ".join(f"{e:.4f}" for e in shown) + f" | {100 * r1:.1f} / {100 * r100:.1f} |",
              flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the suite folder (bench_science.py --out)")
    parser.add_argument("--cells", nargs="+", default=["giants-lowd-noiseless"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--size", choices=tuple(bench_science.SIZES), default="default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    known = {c["name"]: c for c in bench_science.cells()}
    for name in args.cells:
        if name not in known:
            parser.error(f"unknown cell {name!r}; one of {', '.join(known)}")
        cell_table(known[name], bench_science.SIZES[args.size], args.out / args.size, args.seeds, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
