"""Representations the fader network is compared with (docs/science.md, Published numbers).

Each function turns a spectra dataset into one vector per star; twins are then ranked by L1
distance between those vectors with :class:`twinviz.twins.index.TwinIndex`, exactly as for latents:

* :func:`polynomial_residuals` — flux minus a per-pixel polynomial in (Teff, logg) fitted by
  least squares over the whole set (Price-Jones & Bovy 2019 style, without their PCA step);
* :func:`polynomial_pca_residuals` — the same residuals projected on their leading principal
  components (the authors' stronger variant); degree and number of components are chosen on a
  validation set by :func:`choose_polynomial_pca`, never on the set being evaluated;
* :func:`raw_flux` — the flux itself;
* :func:`true_abundances` — the oracle: the true [Fe/H] and [X/Fe] (synthetic data only),
  each standardised to unit standard deviation over the set.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from twinviz.spectra.dataset import DatasetError

__all__ = ["POLY_PCA_GRID", "choose_polynomial_pca", "choose_polynomial_pca_on", "has_true_abundances", "polynomial_design",
           "polynomial_pca_residuals", "polynomial_residuals", "raw_flux", "residual_components",
           "true_abundances"]

# Candidates searched on the validation set: polynomial degree × number of components. Degrees are
# tried in order until the best rank 1 of a degree falls below the best so far (the curve turns).
POLY_PCA_GRID = {"degree": (1, 2, 3, 4, 5, 6, 7, 8), "n_components": (5, 10, 20, 40, 80)}


def _clean_flux(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Flux [N, P] float32 with bad pixels (mask or non-finite) replaced by the pixel's mean
    over good values, and the boolean bad-pixel array. A pixel bad in every star becomes 1."""
    flux = np.asarray(ds["flux"].values, dtype=np.float32)  # no copy: never modified in place
    bad = ~np.isfinite(flux)
    if "mask" in ds.variables:
        bad |= np.asarray(ds["mask"].values, dtype=bool)
    if bad.any():
        good_count = (~bad).sum(axis=0)
        sums = np.where(bad, 0.0, flux).sum(axis=0, dtype=np.float64)
        fill = np.where(good_count > 0, sums / np.maximum(good_count, 1), 1.0).astype(np.float32)
        flux = np.where(bad, fill[None, :], flux)
    return flux, bad


def polynomial_design(teff, logg, degree: int, center=None, scale=None) -> np.ndarray:
    """Design matrix [N, m] of all monomials t^a g^b with a + b ≤ degree, where t and g are
    Teff (K) and logg (dex) standardised by ``center``/``scale`` (default: their mean/std)."""
    from twinviz.twins.metric import label_standardisation, monomials

    mean, std = label_standardisation(teff, logg)
    center = mean if center is None else np.asarray(center, np.float64)
    scale = std if scale is None else np.asarray(scale, np.float64)
    return monomials(teff, logg, degree, center, np.where(scale > 0, scale, 1.0))


def polynomial_residuals(ds: xr.Dataset, degree: int = 2) -> np.ndarray:
    """Flux minus its per-pixel least-squares polynomial of total ``degree`` in (Teff, logg).

    Every pixel is fitted independently over all stars of ``ds`` (one shared design matrix, so
    one least-squares solve for all pixels). Bad pixels are filled with the pixel mean before
    the fit and their residual is set to 0, so they add nothing to L1 distances.
    Returns residuals [N, P] float32 in flux units.
    """
    if degree < 0:
        raise ValueError(f"degree must be ≥ 0, got {degree}")
    flux, bad = _clean_flux(ds)
    design = polynomial_design(ds["teff"].values, ds["logg"].values, degree)
    if design.shape[0] <= design.shape[1]:
        raise DatasetError(f"{ds.encoding.get('source', '<in-memory dataset>')}: star: {design.shape[0]} stars "
                           f"cannot constrain a degree-{degree} polynomial ({design.shape[1]} terms). "
                           "Fix: evaluate on more stars or lower the degree")
    # Residual = flux minus its projection on the span of the design columns; with the
    # orthonormal Q of a QR factorisation this is exact least squares and well conditioned.
    # Pixel blocks keep the float64 working copy small.
    q, _ = np.linalg.qr(design)
    residuals = np.empty_like(flux)
    step = 1024
    for a in range(0, flux.shape[1], step):
        block = flux[:, a:a + step].astype(np.float64)
        residuals[:, a:a + step] = block - q @ (q.T @ block)
    residuals[bad] = 0.0
    return residuals


def residual_components(residuals: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Residuals [N, P] projected on their ``n_components`` leading principal components
    (centred over the set; randomized SVD, seeded): [N, k] float32 in flux units."""
    import torch

    n, p = residuals.shape
    k = int(min(n_components, n - 1, p))
    if k < 1:
        raise ValueError(f"n_components must be ≥ 1 and below the number of stars, got {n_components}")
    x = torch.from_numpy(np.ascontiguousarray(residuals, dtype=np.float32))
    x = x - x.mean(dim=0, keepdim=True)
    return (x @ leading_directions(x, k, seed)).numpy().astype(np.float32)


def leading_directions(x, k: int, seed: int = 0):
    """[P, k] torch tensor: the ``k`` leading right singular vectors of the centred [N, P]
    tensor ``x`` (randomized SVD seeded by ``seed``; the global torch generator is left as it was)."""
    import torch

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        _, _, v = torch.svd_lowrank(x, q=min(k + 10, *x.shape), niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    return v[:, :k]


def polynomial_pca_residuals(ds: xr.Dataset, degree: int, n_components: int) -> np.ndarray:
    """:func:`polynomial_residuals` of ``degree`` projected on ``n_components`` principal
    components (:func:`residual_components`): [N, k] float32."""
    return residual_components(polynomial_residuals(ds, degree), n_components)


def choose_polynomial_pca(val: xr.Dataset, *, grid: dict | None = None, queries: int = 1000,
                          seed: int = 0) -> dict:
    """Pick (degree, n_components) of :func:`polynomial_pca_residuals` by twin rank-1 on a
    *validation* set ``val`` (ties: the simpler model). Degrees are tried in increasing order and
    the search stops at the first degree whose best rank 1 is below the best of the lower degrees
    (where rank 1 turns). Returns ``{"degree", "n_components", "scores": [{degree, n_components,
    rank1}, …], "queries"}``."""
    from twinviz.twins.groups import swap_partners
    from twinviz.twins.index import TwinIndex
    from twinviz.twins.ranks import rank_fractions

    grid = grid or POLY_PCA_GRID
    groups = np.asarray(val["group"].values, dtype=np.int64)
    with_twin = np.flatnonzero(swap_partners(groups) >= 0)
    if with_twin.size == 0:
        raise DatasetError(f"{val.encoding.get('source', '<in-memory dataset>')}: group: no twins, so "
                           "nothing to choose the polynomial-PCA baseline by. Fix: pass a validation "
                           "set with twin groups")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(with_twin, size=min(queries, with_twin.size), replace=False))
    scores = []
    for degree in sorted(grid["degree"]):
        if polynomial_design(val["teff"].values[:1], val["logg"].values[:1], degree).shape[1] * 2 >= groups.size:
            break  # more terms than half the stars: no degree beyond is fitted
        best_before = max((s["rank1"] for s in scores), default=-1.0)
        residuals = polynomial_residuals(val, degree)
        for k in grid["n_components"]:
            vectors = residual_components(residuals, k)
            ranks = TwinIndex(vectors).twin_ranks(groups, queries=chosen)
            scores.append({"degree": int(degree), "n_components": int(k),
                           "rank1": rank_fractions(ranks, groups.size).rank1})
        if max(s["rank1"] for s in scores if s["degree"] == degree) < best_before:
            break  # rank 1 turned
    best = max(scores, key=lambda s: (s["rank1"], -s["degree"], -s["n_components"]))
    return {"degree": best["degree"], "n_components": best["n_components"], "scores": scores,
            "queries": int(chosen.size)}


def choose_polynomial_pca_on(val_path, scored_path) -> dict:
    """:func:`choose_polynomial_pca` on the validation file ``val_path`` (the CLI's
    ``--baseline-val``), refusing the file that will be scored; adds ``chosen_on``."""
    from pathlib import Path

    from twinviz.spectra.dataset import load_spectra

    if Path(val_path).resolve() == Path(scored_path).resolve():
        raise ValueError("--baseline-val is the evaluated file; choosing the baseline on the data it is scored on "
                         "would flatter it. Fix: pass another validation set")
    from twinviz.spectra.fingerprint import describe_data

    val = load_spectra(val_path)
    chosen = choose_polynomial_pca(val)
    chosen["chosen_on"] = str(val_path)
    chosen["chosen_on_data"] = describe_data(val, val_path)
    return chosen


def raw_flux(ds: xr.Dataset) -> np.ndarray:
    """The flux itself [N, P] float32 (bad pixels filled with the pixel mean)."""
    return _clean_flux(ds)[0]


def has_true_abundances(ds: xr.Dataset) -> bool:
    """Whether the dataset carries true chemical labels (``fe_h`` and/or ``x_fe``)."""
    return "fe_h" in ds.variables or "x_fe" in ds.variables


def true_abundances(ds: xr.Dataset) -> np.ndarray:
    """Oracle vectors [N, 1 + n_elements]: [Fe/H] and [X/Fe] (dex), each divided by its standard
    deviation over the set so every element weighs the same in L1; constant columns are dropped.
    """
    columns = []
    if "fe_h" in ds.variables:
        columns.append(np.asarray(ds["fe_h"].values, np.float64)[:, None])
    if "x_fe" in ds.variables:
        columns.append(np.asarray(ds["x_fe"].values, np.float64))
    if not columns:
        raise DatasetError(f"{ds.encoding.get('source', '<in-memory dataset>')}: fe_h/x_fe: no true "
                           "abundances, so there is no oracle. Fix: use synthetic data "
                           "(`twinviz simulate`) or skip the oracle baseline")
    labels = np.concatenate(columns, axis=1)
    if not np.all(np.isfinite(labels)):
        raise DatasetError(f"{ds.encoding.get('source', '<in-memory dataset>')}: fe_h/x_fe: NaN "
                           "abundances. Fix: the oracle needs complete labels; skip it for this data")
    std = labels.std(axis=0)
    keep = std > 0
    return (labels[:, keep] / std[keep]).astype(np.float32)
