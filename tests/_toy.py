"""Tiny synthetic spectra for the model/training tests (fast, no synthesizer needed).

Each group shares a hidden "chemistry" vector c (n_chem values); a star's spectrum is
1 − Σ_lines depth·gaussian, where each line's depth depends non-linearly on c and on
(Teff, logg), differently from line to line — a miniature of the real problem.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.dataset import make_spectra, save_spectra


def toy_arrays(n_groups: int = 100, group_size: int = 2, n_pixels: int = 160, n_chem: int = 3,
               n_lines: int = 24, seed: int = 0, noise: float = 0.0):
    """Arrays (flux [N,P], wavelength [P] Å, teff [N] K, logg [N] dex, group [N], chem [N,n_chem])."""
    lines = np.random.default_rng(1234)  # fixed "line list", independent of the sample seed
    centre = lines.uniform(0, n_pixels, n_lines)
    width = lines.uniform(1.0, 2.5, n_lines)
    chem_w = lines.normal(0, 1, (n_lines, n_chem))
    t_sens = lines.normal(0, 1.0, n_lines)
    g_sens = lines.normal(0, 0.6, n_lines)
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    chem = np.repeat(rng.normal(0, 1, (n_groups, n_chem)), group_size, axis=0)
    group = np.repeat(np.arange(n_groups), group_size)
    teff = rng.uniform(4000, 5500, n)
    logg = rng.uniform(1.0, 3.5, n)
    t = (teff - 4750) / 750
    g = (logg - 2.25) / 1.25
    strength = chem @ chem_w.T * 0.5 + t[:, None] * t_sens + g[:, None] * g_sens  # [N, lines]
    depth = 0.6 / (1 + np.exp(-strength))
    pix = np.arange(n_pixels)
    profile = np.exp(-0.5 * ((pix[None, :] - centre[:, None]) / width[:, None]) ** 2)  # [lines, P]
    flux = np.exp(-depth @ profile * 1.5)
    if noise:
        flux = flux + rng.normal(0, noise, flux.shape)
    wavelength = 15200.0 + 0.2 * pix
    return flux.astype(np.float32), wavelength, teff, logg, group, chem


def toy_dataset(n_groups: int = 100, seed: int = 0, noise: float = 0.0, **kw):
    """The toy arrays as a validated twinviz spectra dataset (flux_err set when noisy)."""
    flux, wave, teff, logg, group, _ = toy_arrays(n_groups=n_groups, seed=seed, noise=noise, **kw)
    err = np.full_like(flux, noise) if noise else None
    return make_spectra(flux, wave, teff, logg, group=group, flux_err=err)


def write_toy(path, n_groups: int = 100, seed: int = 0, **kw):
    """Write a toy dataset to ``path`` (.nc or .zarr); returns the path."""
    save_spectra(toy_dataset(n_groups=n_groups, seed=seed, **kw), path)
    return path
