"""Pseudo-continuum normalisation of apStar spectra (ASPCAP aspcapStar files are normalised already).

Method (the usual one for APOGEE, as in ASPCAP and The Cannon; this is twinviz's own code):
for each of the three detector chips separately, fit a low-order Chebyshev polynomial to the
flux of the good pixels, weighted by 1/σ, and iterate: after each fit keep only the pixels whose
relative residual (flux − fit)/fit lies between −``low`` and +``high`` times the robust scatter
(1.4826 × median absolute deviation) of the kept residuals. Absorption lines sit below the fit
and are rejected quickly (``low`` small), so the fit climbs to the upper envelope of the
spectrum — the pseudo-continuum — while spikes above it (``high``) are also dropped. The
normalised flux is flux/fit and its error σ/fit.

Measured closeness to ASPCAP's own normalisation (docs/real-data.md, tests) is for the one star
present in both forms in the test data (an M dwarf): use it as a guide, not a guarantee.
"""
from __future__ import annotations

import numpy as np

__all__ = ["APSTAR_CHIPS", "CONTINUUM_DEFAULTS", "fit_continuum", "normalise"]

# apStar pixel ranges of the blue, green and red chips (split in the middle of the chip gaps).
APSTAR_CHIPS = ((0, 3445), (3445, 6230), (6230, 8575))
CONTINUUM_DEFAULTS = {"degree": 4, "low": 1.25, "high": 3.0, "iterations": 20}


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D float array without NaN (the same value; less overhead per call)."""
    n = values.size
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return 0.5 * (float(part[half - 1]) + float(part[half]))


def _fit_chip(x, flux, weight, degree, low, high, iterations):
    """Weighted least squares in the Chebyshev basis (normal equations on a Vandermonde matrix
    built once per chip: the same fit as ``numpy.polynomial.chebyshev.chebfit``, ~10× faster)."""
    vander = np.polynomial.chebyshev.chebvander(x, degree)
    wv = vander * weight[:, None]
    wf = flux * weight
    keep = np.ones(x.size, dtype=bool)
    coef = None
    for _ in range(iterations):
        if keep.sum() <= degree + 1:
            break
        k = keep.astype(np.float64)
        kwv = wv * k[:, None]  # rows of dropped pixels zeroed: their terms vanish from the sums
        try:
            coef = np.linalg.solve(kwv.T @ wv, kwv.T @ wf)
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(wv[keep], wf[keep], rcond=None)[0]
        model = vander @ coef
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = (flux - model) / np.where(model > 0, model, np.nan)
        kept = rel[keep]
        kept = kept[np.isfinite(kept)]
        if kept.size == 0:
            break
        sigma = 1.4826 * _median(np.abs(kept - _median(kept)))
        if not np.isfinite(sigma) or sigma == 0:
            break
        new = np.isfinite(rel) & (rel > -low * sigma) & (rel < high * sigma)
        if np.array_equal(new, keep):
            break
        keep = new
    return coef


def fit_continuum(flux, flux_err, bad, *, degree: int = CONTINUUM_DEFAULTS["degree"],
                  low: float = CONTINUUM_DEFAULTS["low"], high: float = CONTINUUM_DEFAULTS["high"],
                  iterations: int = CONTINUUM_DEFAULTS["iterations"], chips=APSTAR_CHIPS) -> np.ndarray:
    """The pseudo-continuum of one apStar spectrum (same units as ``flux``).

    Parameters
    ----------
    flux, flux_err : (8575,) flux and 1-σ error on the apStar grid (any flux unit)
    bad : (8575,) bool, pixels never used in the fit (masked, zero or non-finite)
    degree : Chebyshev polynomial degree per chip;  low, high : clipping limits below / above
    the fit in units of the robust relative scatter;  iterations : at most this many fits per chip

    Returns the continuum, NaN on chips (or pixels) where no fit was possible.
    """
    flux = np.asarray(flux, dtype=np.float64)
    err = np.asarray(flux_err, dtype=np.float64)
    cont = np.full(flux.shape, np.nan)
    for start, stop in chips:
        sl = slice(start, stop)
        good = ~np.asarray(bad[sl]) & np.isfinite(flux[sl]) & (flux[sl] > 0) & np.isfinite(err[sl]) & (err[sl] > 0)
        idx = np.flatnonzero(good)
        if idx.size <= 3 * (degree + 1):
            continue
        lo, hi = idx[0], idx[-1]
        x = np.linspace(-1.0, 1.0, stop - start)
        # weights 1/σ, relative to the median, so that a few tiny errors do not dominate
        w = 1.0 / err[sl][idx]
        w = np.minimum(w, 3.0 * np.median(w))
        coef = _fit_chip(x[idx], flux[sl][idx], w, degree, low, high, iterations)
        if coef is None:
            continue
        c = np.polynomial.chebyshev.chebval(x, coef)
        c[: lo] = np.nan  # no extrapolation beyond the chip's good pixels
        c[hi + 1:] = np.nan
        cont[sl] = c
    return cont


def normalise(flux, flux_err, bad, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide an apStar spectrum by its pseudo-continuum (:func:`fit_continuum`).

    Returns ``(flux/cont, err/cont, no_continuum)``, float32 arrays and a bool array that is
    True where no positive continuum exists (those pixels must be masked by the caller).
    """
    cont = fit_continuum(flux, flux_err, bad, **kwargs)
    none = ~np.isfinite(cont) | (cont <= 0)
    safe = np.where(none, 1.0, cont)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((np.asarray(flux, np.float64) / safe).astype(np.float32),
                (np.asarray(flux_err, np.float64) / safe).astype(np.float32), none)
