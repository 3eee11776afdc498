"""Representations the fader network is compared with (docs/science.md, Published numbers).

Each function turns a spectra dataset into one vector per star; twins are then ranked by L1
distance between those vectors with :class:`twinviz.twins.index.TwinIndex`, exactly as for latents:

* :func:`polynomial_residuals` — flux minus a per-pixel polynomial in (Teff, logg) fitted by
  least squares over the whole set (Price-Jones & Bovy 2019 style, without their PCA step);
* :func:`raw_flux` — the flux itself;
* :func:`true_abundances` — the oracle: the true [Fe/H] and [X/Fe] (synthetic data only),
  each standardised to unit standard deviation over the set.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from twinviz.spectra.dataset import DatasetError

__all__ = ["polynomial_design", "polynomial_residuals", "raw_flux", "true_abundances", "has_true_abundances"]


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
    labels = np.stack([np.asarray(teff, np.float64), np.asarray(logg, np.float64)], axis=1)
    center = labels.mean(axis=0) if center is None else np.asarray(center, np.float64)
    scale = labels.std(axis=0) if scale is None else np.asarray(scale, np.float64)
    scale = np.where(scale > 0, scale, 1.0)
    t, g = ((labels - center) / scale).T
    columns = [t ** a * g ** (total - a) for total in range(degree + 1) for a in range(total, -1, -1)]
    return np.stack(columns, axis=1)


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
