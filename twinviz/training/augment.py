"""Nuisances drawn on the fly, for the invariance term (``TrainConfig.invariance_weight``).

Twins in a survey differ by more than noise: the continuum normalisation leaves a smooth error
on each detector chip, line profiles are broadened by macroturbulence and rotation, and sky lines
and detector persistence mask different pixels in each star. None of that is chemistry, and
none of it needs a twin to describe: it can be applied to any observed spectrum. The invariance
term (docs/model.md, "Nuisance invariance") encodes a batch twice — as observed and with such
nuisances added — and penalises how far z moves, relative to the spread of z in the batch.

The magnitudes are APOGEE's (docs/synth.md, "Regimes and nuisances"): a continuum error of
0.75 % RMS per chip (Legendre P0…P2), an extra Gaussian broadening of characteristic velocity
U(0, 8) km/s, ~1 % of the pixels masked in narrow windows at random positions, and the blue
chip's persistence band masked in a quarter of the stars. Masked windows are placed at random,
not at the synthesizer's sky-line list, so the term does not learn that list.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from twinviz.spectra.nuisances import (CHIPS, CONTINUUM_ORDER, PERSISTENCE_FRACTION, PERSISTENCE_RANGE_A,
                                       continuum_factor, continuum_sigma)

__all__ = ["NuisanceAugmenter", "invariance_loss", "make_augmenter"]

C_KMS = 299_792.458


class NuisanceAugmenter:
    """Adds random nuisances to batches of flux in dataset units (continuum-normalised).

    ``augment(flux, mask, generator)`` → (flux', mask'): flux' = broadened flux × continuum factor,
    mask' = mask | new windows | persistence band. Everything is torch on the flux's device.
    """

    def __init__(self, wavelength, *, continuum_error: float = 0.0075, vbroad: float = 8.0,
                 mask_fraction: float = 0.01, mask_width: int = 5,
                 persistence_fraction: float = PERSISTENCE_FRACTION):
        w = np.asarray(wavelength, dtype=np.float64)
        if w.ndim != 1 or w.size < 2 or np.any(np.diff(w) <= 0):
            raise ValueError("wavelength must be a strictly increasing 1-D grid")
        self.n_pixels = w.size
        self.continuum_error, self.vbroad = float(continuum_error), float(vbroad)
        self.mask_width, self.persistence_fraction = int(mask_width), float(persistence_fraction)
        self.n_windows = max(0, int(round(mask_fraction * w.size / max(1, mask_width))))
        # the synthesizer's continuum error, linear in its coefficients: row k of the design is the
        # factor − 1 of coefficient k alone (chips × Legendre orders, flattened)
        k = len(CHIPS) * (CONTINUUM_ORDER + 1)
        self.design = torch.from_numpy(continuum_factor(w, np.eye(k).reshape(k, len(CHIPS), -1)) - 1.0)
        self.sigma = torch.from_numpy(np.tile(continuum_sigma(1.0), len(CHIPS)).astype(np.float32))
        # broadening: pixel size in km/s (log-uniform grid; the local step where it is not)
        step = np.median(np.diff(np.log(w)))
        self.kms_per_pixel = float(step * C_KMS)
        self.half_kernel = max(1, int(math.ceil(3 * (self.vbroad / math.sqrt(2)) / self.kms_per_pixel)))
        self.persistence = torch.from_numpy((w >= PERSISTENCE_RANGE_A[0]) & (w <= PERSISTENCE_RANGE_A[1]))

    def _continuum(self, n, gen, device):
        coef = torch.randn(n, self.sigma.numel(), generator=gen, device="cpu") * self.sigma * self.continuum_error
        return 1.0 + coef.to(device) @ self.design.to(device)

    def _broaden(self, flux, gen):
        """Convolve each star with a Gaussian kernel exp(−(v/ζ)²), ζ ~ U(0, vbroad) km/s."""
        n = flux.shape[0]
        zeta = torch.rand(n, generator=gen, device="cpu") * self.vbroad
        v = torch.arange(-self.half_kernel, self.half_kernel + 1, dtype=torch.float32) * self.kms_per_pixel
        kern = torch.exp(-(v[None, :] / zeta.clamp_min(1e-3)[:, None]) ** 2)
        kern = (kern / kern.sum(1, keepdim=True)).to(flux.device, flux.dtype)
        padded = torch.nn.functional.pad(flux[None], (self.half_kernel, self.half_kernel), mode="replicate")
        return torch.nn.functional.conv1d(padded, kern[:, None, :], groups=n)[0]

    def _masks(self, n, gen, device):
        out = torch.zeros(n, self.n_pixels, dtype=torch.bool)
        if self.n_windows:
            start = torch.randint(0, self.n_pixels, (n, self.n_windows), generator=gen)
            cols = (start[..., None] + torch.arange(self.mask_width)).clamp_max(self.n_pixels - 1)
            rows = torch.arange(n)[:, None, None].expand_as(cols)
            out[rows.reshape(-1), cols.reshape(-1)] = True
        hit = torch.rand(n, generator=gen) < self.persistence_fraction
        out[hit] |= self.persistence
        return out.to(device)

    def augment(self, flux: torch.Tensor, mask: torch.Tensor | None, gen):
        """(flux with nuisances added, the mask with new masked pixels). ``gen``: a CPU
        torch.Generator, or a tuple of ints that seeds one (the trainer's (seed, rank, step), so a
        resumed run draws the nuisances an uninterrupted one would)."""
        if not isinstance(gen, torch.Generator):
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence(list(gen)).generate_state(1)[0]))
        if flux.shape[-1] != self.n_pixels:
            raise ValueError(f"flux has {flux.shape[-1]} pixels, the augmenter's grid {self.n_pixels}")
        n, device = flux.shape[0], flux.device
        with torch.no_grad():
            out = flux.float()
            if self.vbroad:
                out = self._broaden(out, gen)
            if self.continuum_error:
                out = out * self._continuum(n, gen, device)
            new = self._masks(n, gen, device)
        return out, new if mask is None else (new | mask.to(torch.bool))


def make_augmenter(config, wavelength, log=None) -> NuisanceAugmenter | None:
    """The augmenter of a training run (None when ``config.invariance_weight`` is 0)."""
    if not config.invariance_weight:
        return None
    if log:
        log("invariance term: ν = %g, nuisances (%s) drawn on the fly for every batch (pixels, not "
            "precomputed basis coefficients)", config.invariance_weight, config.invariance_nuisances)
    kinds = set(config.invariance_nuisances.split("+"))
    off = {"continuum": {"continuum_error": 0.0}, "broadening": {"vbroad": 0.0},
           "masks": {"mask_fraction": 0.0, "persistence_fraction": 0.0}}
    return NuisanceAugmenter(wavelength, **{k: v for kind, kw in off.items() if kind not in kinds for k, v in kw.items()})


def invariance_loss(z: torch.Tensor, z_aug: torch.Tensor) -> torch.Tensor:
    """Mean squared move of z under the nuisances over the mean variance of z in the batch (scale
    free: shrinking z cannot lower it)."""
    return ((z_aug - z) ** 2).mean() / z.var(0).mean().clamp_min(1e-8)
