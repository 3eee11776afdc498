"""A new model's fixed normalisation and basis, taken from the training data when a run starts.

The flux offset/scale, label ranges, adversary bin edges, grid id and the PCA basis are
decided here once and saved with the model; nothing is ever recomputed from later data.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from twinviz.model import FaderNetwork, ModelConfig

from twinviz.training.config import TrainConfig

__all__ = ["build_model"]


def build_model(config: TrainConfig, ds, *, logger=None, stats_stars: int = 20000) -> FaderNetwork:
    """A new FaderNetwork whose normalisation (flux offset/scale, label ranges, bin edges, grid
    id) and basis initialisation are fixed from the training dataset ``ds``."""
    from twinviz.spectra.grid import grid_id

    teff = ds["teff"].values.astype(np.float64)
    logg = ds["logg"].values.astype(np.float64)
    mc = ModelConfig(
        n_pixels=int(ds.sizes["wavelength"]), grid_id=grid_id(ds["wavelength"].values),
        latent_dim=config.latent_dim, basis_dim=config.basis_dim, basis_trainable=config.basis_trainable,
        basis_whiten=config.basis_whiten, residual_degree=config.residual_degree,
        conv_channels=config.conv_channels, hidden=config.hidden,
        adversary_hidden=config.adversary_hidden, activation=config.activation,
        teff_range=[float(teff.min()), float(max(teff.max(), teff.min() + 1.0))],
        logg_range=[float(logg.min()), float(max(logg.max(), logg.min() + 0.01))],
        teff_bin_edges=_bin_edges(teff, config.teff_bins, config.bin_edges),
        logg_bin_edges=_bin_edges(logg, config.logg_bins, config.bin_edges),
        adversary_mode=config.adversary_mode, flux_scaling=config.flux_scaling)
    model = FaderNetwork(mc)
    flux, index = _sample_flux(ds, stats_stars, config.seed, config.stream_block)
    good = np.isfinite(flux)
    counts = good.sum(axis=0)
    # A pixel masked in every star (a chip edge, say) gets the continuum level 1.
    offset = np.where(counts > 0, np.where(good, flux, 0.0).sum(axis=0) / np.maximum(counts, 1), 1.0)
    centred = np.nan_to_num(flux - offset, nan=0.0)
    var = np.mean(centred ** 2, axis=0)
    global_scale = float(np.sqrt(max(var.mean(), 1e-12)))
    if config.flux_scaling == "pixel":
        # Floor: continuum pixels have almost no variance; without one they would dominate.
        scale = np.maximum(np.sqrt(var), 0.1 * global_scale)
    else:
        scale = np.full(mc.n_pixels, global_scale)
    model.set_flux_normalisation(offset, scale)
    x = (centred / scale).astype(np.float32)
    if mc.residual_degree:
        u = model.scale_labels(teff[index], logg[index])
        x = _fit_label_mean(model, x, good, u)
    if mc.basis_dim:
        x = torch.from_numpy(x[:8192])
        q = min(mc.basis_dim + 8, *x.shape)
        _, s, v = torch.svd_lowrank(x, q=q, niter=3, M=None)
        k = min(mc.basis_dim, q)
        model.init_basis(v[:, :k].T.numpy(), (s[:k] / math.sqrt(x.shape[0])).numpy())
    if logger:
        logger.info("model: %d px on grid %s, latent %d, basis %d, hidden %s; flux scale %.4g; "
                    "%d parameters", mc.n_pixels, mc.grid_id, mc.latent_dim, mc.basis_dim, mc.hidden,
                    global_scale, sum(p.numel() for p in model.parameters()))
    return model


def _fit_label_mean(model: FaderNetwork, x: np.ndarray, good: np.ndarray, u: torch.Tensor) -> np.ndarray:
    """Fit the model's per-pixel polynomial in u to the normalised flux x [N, P] by least squares
    over each pixel's unmasked stars (``good``), set it, and return the residual (0 where masked)."""
    phi = model.label_terms(u.double()).numpy()  # [N, T]
    w = good.astype(np.float64)
    pairs = (phi[:, :, None] * phi[:, None, :]).reshape(len(phi), -1)  # [N, T²]
    gram = (w.T @ pairs).reshape(-1, phi.shape[1], phi.shape[1])      # [P, T, T]
    rhs = (w * x).T @ phi                                              # [P, T]
    ridge = 1e-8 * np.trace(gram, axis1=1, axis2=2)[:, None, None] / phi.shape[1] + 1e-12
    coef = np.linalg.solve(gram + ridge * np.eye(phi.shape[1]), rhs[..., None])[..., 0]  # [P, T]
    model.set_label_mean(coef.T)
    return np.where(good, x - (phi @ coef.T).astype(np.float32), np.float32(0.0))


def _bin_edges(values: np.ndarray, n_bins: int, kind: str) -> list[float]:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    if kind == "quantile":
        edges = np.quantile(values, np.linspace(0, 1, n_bins + 1))
        if np.all(np.diff(edges) > 0):
            return [float(e) for e in edges]
    return [float(e) for e in np.linspace(lo, hi, n_bins + 1)]


def _sample_flux(ds, n_max: int, seed: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to n_max spectra for the normalisation statistics (whole blocks when lazy, so a
    streamed file is read block-wise rather than star by star), NaN where masked, and their indices."""
    n = ds.sizes["star"]
    rng = np.random.default_rng([seed, 11])
    if n <= n_max:
        index = np.arange(n)
    elif ds["flux"].chunks:
        starts = rng.permutation(np.arange(0, n, block))
        picked, total = [], 0
        for s in starts:
            picked.append(np.arange(s, min(n, s + block)))
            total += picked[-1].size
            if total >= n_max:
                break
        index = np.sort(np.concatenate(picked))
    else:
        index = np.sort(rng.choice(n, n_max, replace=False))
    part = ds.isel(star=index)
    flux = np.asarray(part["flux"].values, dtype=np.float32)
    if "mask" in part:
        flux = np.where(part["mask"].values.astype(bool), np.nan, flux)
    return np.where(np.isfinite(flux), flux, np.nan), index
