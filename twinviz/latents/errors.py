"""Reconstruction errors in flux units² — the one home of the MSE and the swapped MSE.

* reconstruction MSE: mean over stars and good pixels of (D(E(x,u),u) − x)²;
* swapped MSE: mean of (D(z_twin, u) − x)², the twin's latent decoded with the star's own
  (Teff, logg); the twin is the star's partner from :func:`twinviz.twins.groups.swap_partners`.

Used by the evaluation (streamed over a file), per-epoch validation (in memory) and the app
(one spectrum at a time, :func:`flux_mse`).
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np

__all__ = ["flux_mse", "squared_error_sums"]


def flux_mse(a, b) -> float:
    """Mean squared difference of two spectra over the pixels where both are finite (NaN if none)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d = d[np.isfinite(d)]
    return float(np.mean(d * d)) if d.size else float("nan")


def squared_error_sums(model, z, flux, teff, logg, good, partners, *, start: int = 0, batch_size: int = 1024,
                       autocast=None, star_mse: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sums of squared errors and pixel counts, ``([recon, swapped], [recon, swapped])``.

    ``flux``, ``good`` [n, P], ``teff``, ``logg`` [n] are stars ``start … start+n`` of a set whose
    latents are ``z`` [N, d] and partners ``partners`` [N] (positions in the set, −1: no twin,
    left out of the swapped sum). Bad pixels (``good`` False) count in neither. ``autocast`` is
    an optional context-manager factory (mixed precision on a GPU). Divide sums by counts for MSEs.
    ``star_mse``, when given, is an output array [n]: each star's own reconstruction MSE over
    its good pixels (NaN for a star without one) — the per-star distribution that
    :mod:`twinviz.latents.ood` compares new stars with.
    """
    import torch

    device = model.device
    sums = np.zeros(2)
    counts = np.zeros(2, dtype=np.int64)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b0 in range(0, len(flux), batch_size):
            b1 = min(len(flux), b0 + batch_size)
            rows = slice(start + b0, start + b1)
            t = torch.as_tensor(np.asarray(teff[b0:b1], np.float32), device=device)
            g = torch.as_tensor(np.asarray(logg[b0:b1], np.float32), device=device)
            x = np.asarray(flux[b0:b1], np.float32)
            ok = np.asarray(good[b0:b1], bool)
            with autocast() if autocast else nullcontext():
                recon = model.decode(torch.as_tensor(z[rows], device=device), t, g)
            err = np.where(ok, (recon.float().cpu().numpy() - x).astype(np.float64) ** 2, 0.0)
            sums[0] += err.sum()
            counts[0] += int(ok.sum())
            if star_mse is not None:
                n_ok = ok.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    star_mse[b0:b1] = np.where(n_ok > 0, err.sum(axis=1) / n_ok, np.nan)
            mate = np.asarray(partners[rows])
            has = mate >= 0
            if has.any():
                keep = torch.as_tensor(has, device=device)
                with autocast() if autocast else nullcontext():
                    swapped = model.decode(torch.as_tensor(z[mate[has]], device=device), t[keep], g[keep])
                ok_s = ok[has]
                err = np.where(ok_s, (swapped.float().cpu().numpy() - x[has]).astype(np.float64) ** 2, 0.0)
                sums[1] += err.sum()
                counts[1] += int(ok_s.sum())
    model.train(was_training)
    return sums, counts
