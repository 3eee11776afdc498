"""How precisely each representation holds the chemistry that varies: a diagnostic of the suite.

    python benchmarks/label_precision.py --out SUITE --cells giants-lowd-noiseless --seeds 0

For each suite cell (the same data and trainings as ``bench_science.py``, which it reuses or
makes under ``--out``) the labels that vary (``fe_h`` and ``x_fe``, reduced to their principal
directions) are predicted from each representation of a star and scored on the test split.
Everything is fitted on the training split, every choice made on the validation split:

- the pixel residuals: per-pixel polynomial in Teff/logg fitted on the **training** stars, the
  residuals' 64 principal components from the training stars, both applied unchanged to the
  validation and test stars. The polynomial degree is swept 1, 2, 3, … on validation until the
  rank 1 stops rising (:data:`PATIENCE` degrees in a row without beating the best, at most
  :data:`MAX_DEGREE`);
  the same sweep for the plain polynomial residuals (no PCA, ranked by L1);
- the fader network's z (and the λ = 0 network's).

Read-outs, each fitted on the training split (settings chosen on a held-out fifth of it):
ridge regression on the representation times the Teff/logg terms (1, t, g, t², tg, g²), and two
non-linear ones on the representation with standardised Teff and logg appended: k-nearest
neighbours (k ∈ 5, 10, 20, 50, distance-weighted) and a small MLP (two hidden layers of 128,
scikit-learn, early stopping).

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


MAX_DEGREE, PATIENCE, COMPONENTS = 8, 1, 64


def varying_labels(train, *others):
    """Labels [N, d] of ``train`` and of each of ``others``, projected on the directions in which
    the training stars vary."""
    def labels(ds):
        return np.concatenate([ds["fe_h"].values[:, None], ds["x_fe"].values], axis=1).astype(np.float64)

    ytr = labels(train)
    centre = ytr.mean(0)
    _, sv, vt = np.linalg.svd(ytr - centre, full_matrices=False)
    basis = vt[: int((sv > sv[0] * 1e-3).sum())].T
    return tuple((labels(ds) - centre) @ basis for ds in (train, *others))


def train_fitted_residuals(train, others, degree: int, components: int | None = COMPONENTS):
    """Pixel residuals of a per-pixel polynomial of ``degree`` in Teff/logg fitted on ``train``
    only, projected (``components``) on the training residuals' leading principal components, or
    the residuals themselves (None); [train] + [each of ``others``], float64 / float32."""
    import torch

    from twinviz.evaluation.baselines import _clean_flux, leading_directions
    from twinviz.evaluation.supervised_baseline import _components, _design
    from twinviz.twins.metric import label_standardisation

    flux, bad = _clean_flux(train)
    center, scale = label_standardisation(train["teff"].values, train["logg"].values)
    design = _design(train, degree, center, scale)
    coef = np.linalg.lstsq(design, flux.astype(np.float64), rcond=None)[0].astype(np.float32)

    def residual(ds, f, b):
        r = f - _design(ds, degree, center, scale).astype(np.float32) @ coef
        r[b] = 0.0
        return r

    r_train = residual(train, flux, bad)
    if components is None:
        return [r_train] + [residual(ds, *_clean_flux(ds)) for ds in others]
    mean = r_train.mean(axis=0)
    x = torch.from_numpy(np.ascontiguousarray(r_train - mean))
    comps = leading_directions(x, min(components, *x.shape)).T.contiguous().numpy()
    out = [(x @ torch.from_numpy(comps.T.copy())).numpy().astype(np.float64)]
    del x, r_train
    for ds in others:
        out.append(_components(*_clean_flux(ds), _design(ds, degree, center, scale), coef, mean, comps)
                   .astype(np.float64))
    return out


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


def _held_out(n):
    order = np.random.default_rng(0).permutation(n)
    return order[: n // 5], order[n // 5:]


def knn_predict(xtr, ytr, xte, ks=(5, 10, 20, 50)):
    """k-nearest-neighbour regression (distance-weighted) on standardised features; k chosen on a
    held-out fifth of the training rows."""
    from sklearn.neighbors import KNeighborsRegressor

    mean, scale = xtr.mean(0), xtr.std(0) + 1e-12
    a, b = (xtr - mean) / scale, (xte - mean) / scale
    hold, fit = _held_out(len(a))

    def error(k):
        model = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(a[fit], ytr[fit])
        return float(np.sqrt(((model.predict(a[hold]) - ytr[hold]) ** 2).mean()))

    best = min((k for k in ks if k < len(fit)), key=error)
    return KNeighborsRegressor(n_neighbors=best, weights="distance").fit(a, ytr).predict(b), best


def mlp_predict(xtr, ytr, xte, hidden=(128, 128), seed=0):
    """A small MLP (scikit-learn, Adam, early stopping on a tenth of the training rows) on
    standardised features and standardised targets."""
    from sklearn.neural_network import MLPRegressor

    mean, scale = xtr.mean(0), xtr.std(0) + 1e-12
    ymean, yscale = ytr.mean(0), ytr.std(0) + 1e-12
    model = MLPRegressor(hidden_layer_sizes=hidden, early_stopping=True, max_iter=400, random_state=seed)
    model.fit((xtr - mean) / scale, (ytr - ymean) / yscale)
    return model.predict((xte - mean) / scale).reshape(len(xte), -1) * yscale + ymean, hidden


def twin_rank(features, groups):
    """(rank 1, within 1 %) of each star's twin under L2 on ``features`` (the twin search's own
    ranks: ties count against the star)."""
    from twinviz.twins.index import TwinIndex
    from twinviz.twins.ranks import rank_fractions

    fractions = rank_fractions(TwinIndex(features, metric="l2").twin_ranks(groups), len(groups))
    return fractions.rank1, fractions.within_1


def encoded(model_dir, ds):
    from twinviz.bundle import ModelBundle
    from twinviz.model import encode_arrays

    model = ModelBundle.open(model_dir).model  # checked weights; raw z, no metric
    mask = ds["mask"].values if "mask" in ds else None
    return encode_arrays(model, ds["flux"].values, ds["teff"].values, ds["logg"].values, mask=mask).astype(np.float64)


def degree_sweep(train, val, name: str, components, score) -> tuple[int, list]:
    """Polynomial degree 1, 2, … of the pixel residuals (fitted on train) scored on validation
    by ``score(val_vectors, train_vectors)`` → rank 1, until it stops rising: PATIENCE degrees in
    a row that do not beat the best end it (or MAX_DEGREE). Returns (best degree, table)."""
    table, best = [], (None, -1.0)
    for degree in range(1, MAX_DEGREE + 1):
        try:
            r_train, r_val = train_fitted_residuals(train, [val], degree, components)
        except np.linalg.LinAlgError:
            break
        r1 = score(r_val, r_train)
        table.append((degree, r1))
        print(f"  {name}, degree {degree}: validation rank 1 {100 * r1:.1f} %", flush=True)
        if r1 > best[1]:
            best = (degree, r1)
        elif degree - best[0] >= PATIENCE:
            break
    return best[0], table


READOUTS = ("ridge", "knn", "mlp")


def readout(kind, a, ytr, b, terms_tr, terms_te, labels_tr, labels_te):
    """Predicted labels of the test rows ``b`` from the training rows ``a`` by the read-out ``kind``."""
    if kind == "ridge":
        return ridge_predict(with_terms(a, terms_tr), ytr, with_terms(b, terms_te))[0]
    a, b = np.concatenate([a, labels_tr], axis=1), np.concatenate([b, labels_te], axis=1)
    return (knn_predict if kind == "knn" else mlp_predict)(a, ytr, b)[0]


def cell_table(cell, sizes, out: Path, seeds, threads: int, readouts=READOUTS) -> None:
    from twinviz.spectra.dataset import load_spectra

    root = out / cell["name"]
    root.mkdir(parents=True, exist_ok=True)
    data = {split: bench_science.dataset(cell, split, sizes[split], root) for split in ("train", "val", "test")}
    train, val, test = (load_spectra(data[split]) for split in ("train", "val", "test"))
    if train.sizes["star"] + test.sizes["star"] > 60_000:
        raise SystemExit(f"{cell['name']}: this diagnostic holds the splits in memory; use the suite's default size")
    ytr, yva, yte = varying_labels(train, val, test)
    spread = ytr.std(0)
    groups, g_val = test["group"].values, val["group"].values
    print(f"\n## {cell['name']}: {ytr.shape[1]} varying label directions, spread {np.round(spread, 4).tolist()}")
    print("\ntrue labels + Gaussian noise (fraction of each direction's spread) → rank 1 / within 1 %")
    rng = np.random.default_rng(1)
    for frac in NOISE_FRACTIONS:
        r1, r100 = twin_rank(yte / spread + rng.normal(0.0, frac, yte.shape), groups)
        print(f"  {frac:<6} {100 * r1:5.1f} / {100 * r100:5.1f}")

    terms_tr, centre = label_terms(train)
    terms_va, _ = label_terms(val, centre)
    terms_te, _ = label_terms(test, centre)
    labels_of = {id(ds): (terms[:, 1:3]) for ds, terms in ((train, terms_tr), (val, terms_va), (test, terms_te))}

    def l1_rank1(vectors, groups_):
        from twinviz.twins.index import TwinIndex
        from twinviz.twins.ranks import rank_fractions

        return rank_fractions(TwinIndex(np.asarray(vectors, np.float32)).twin_ranks(groups_), len(groups_)).rank1

    print("\nthe degree sweeps, on the validation split (polynomial and PCA fitted on train):")
    plain_degree, plain = degree_sweep(train, val, "polynomial residuals, L1", None,
                                       lambda v, _: l1_rank1(v, g_val))
    pca_degree, pca = degree_sweep(train, val, f"polynomial residuals on {COMPONENTS} PCs, L1", COMPONENTS,
                                   lambda v, _: l1_rank1(v, g_val))
    read_degree, read = degree_sweep(
        train, val, f"{COMPONENTS} PCs × Teff/logg terms, ridge → labels", COMPONENTS,
        lambda v, t: twin_rank(ridge_predict(with_terms(t, terms_tr), ytr, with_terms(v, terms_va))[0] / spread, g_val)[0])
    _, test_plain = train_fitted_residuals(train, [test], plain_degree, None)
    print(f"\nchosen on validation: polynomial degree {plain_degree} (L1 on residuals: test rank 1 "
          f"{100 * l1_rank1(test_plain, groups):.1f} %), {pca_degree} (L1 on {COMPONENTS} PCs), {read_degree} "
          "(ridge read-out)")
    del test_plain
    features = {}
    for degree in sorted({pca_degree, read_degree}):
        tr, te = train_fitted_residuals(train, [test], degree, COMPONENTS)
        print(f"  {COMPONENTS} PCs of degree-{degree} residuals, L1: test rank 1 {100 * l1_rank1(te, groups):.1f} %")
        features[f"pixel residuals (degree {degree}), {COMPONENTS} PCs"] = (tr, te)
    for seed in seeds:
        for name, weight in bench_science.METHODS.items():
            run = out / cell["name"] / f"seed{seed}" / name
            model_dir, _ = bench_science.trained(data, run, seed, sizes["epochs"], threads, weight)
            features[f"{name} z (seed {seed})"] = (encoded(model_dir, train), encoded(model_dir, test))

    few = ytr.shape[1] <= 4  # else the median and largest error over the directions
    heads = [f"error / spread, dir {i}" for i in range(ytr.shape[1])] if few else \
        ["error / spread, median over directions", "largest"]
    print(f"\n| representation | read-out | {' | '.join(heads)} | rank 1 / ≤ 1 % on predicted labels |")
    print("|---|---|" + "---|" * len(heads) + "---|")
    for name, (a, b) in features.items():
        for kind in readouts:
            pred = readout(kind, a, ytr, b, terms_tr, terms_te, labels_of[id(train)], labels_of[id(test)])
            err = np.sqrt(((pred - yte) ** 2).mean(0)) / spread
            shown = err if few else (np.median(err), err.max())
            r1, r100 = twin_rank(pred / spread, groups)
            label = "ridge × Teff/logg terms" if kind == "ridge" else f"{kind} (+ Teff, logg)"
            print(f"| {name} | {label} | " + " | ".join(f"{e:.4f}" for e in shown)
                  + f" | {100 * r1:.1f} / {100 * r100:.1f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the suite folder (bench_science.py --out)")
    parser.add_argument("--cells", nargs="+", default=["giants-lowd-noiseless"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--size", choices=tuple(bench_science.SIZES), default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--readouts", nargs="+", choices=READOUTS, default=list(READOUTS))
    args = parser.parse_args(argv)
    known = {c["name"]: c for c in bench_science.cells()}
    for name in args.cells:
        if name not in known:
            parser.error(f"unknown cell {name!r}; one of {', '.join(known)}")
        cell_table(known[name], bench_science.SIZES[args.size], args.out / args.size, args.seeds, args.threads,
                   args.readouts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
