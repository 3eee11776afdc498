"""Nuisances of the built-in synthesizer: what makes real APOGEE spectra of twins differ besides
Teff and logg. All are off by default; ``PRESETS["realistic"]`` turns every one on.

Each is drawn per *star* (not per group: it is not chemistry) from its own random stream of the
dataset's seed, ``np.random.default_rng([seed, 3, k])`` with k fixed per nuisance, so that

* the default output (no nuisance) is unchanged bit for bit;
* switching one nuisance on or off leaves the draws of the others unchanged.

Magnitudes and their sources are in ``docs/synth.md`` ("Regimes and nuisances"). The OH sky-line
positions here are **not** a real sky-line list: see :func:`sky_lines`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from twinviz.spectra.grid import DLOG10_LAMBDA, LOG10_LAMBDA0

__all__ = ["CHIPS", "Nuisances", "PRESETS", "SKY_LINES_VERSION", "continuum_factor", "continuum_sigma", "draw_nuisances",
           "mask_pixels", "sky_lines"]

# The three APOGEE detector chips as apStar pixel ranges (the widest ASPCAP pixel ranges, DR17):
# blue (≈ 15 150–15 800 Å), green (≈ 15 860–16 430 Å), red (≈ 16 480–16 950 Å).
CHIPS = ((246, 3274), (3585, 6080), (6344, 8335))
CHIP_EDGE_PIXELS = 8            # pixels masked at each end of each chip
SKY_LINES_VERSION = "twinviz-sky-1"
SKY_LINES_SEED = 20240510
SKY_DOUBLETS = 36               # OH Λ-doublets in 15 100–17 000 Å (≈ 1 bright doublet per 50 Å)
SKY_MASK_HALF_KMS = 9.0         # a sky line masks pixels within ±9 km/s (≈ ±2 px, the LSF core)
SKY_HELIO_KMS = 100.0           # per-star line-of-sight velocity, U(−100, 100) km/s: sky lines
                                # fall on different rest-frame pixels for each star
PERSISTENCE_FRACTION = 0.25     # fraction of stars whose fibre lies in the persistence region
PERSISTENCE_RANGE_A = (15150.0, 15500.0)  # masked band of the blue chip (an approximation)
CONTINUUM_ORDER = 2             # Legendre P0 … P2 per chip

# stream k of default_rng([seed, 3, k]) for each nuisance
_STREAM = {"vmicro": 0, "vbroad": 1, "rv": 2, "continuum": 3, "masks": 4}


@dataclass(frozen=True)
class Nuisances:
    """Per-star nuisances of :func:`twinviz.spectra.simulation.simulate` (all off by default).

    vmicro_scatter : σ (km/s) of a Gaussian scatter added to the microturbulence relation ξ(logg)
    vbroad : upper end (km/s) of a uniform distribution U(0, vbroad) of the characteristic
        velocity ζ of a Gaussian macroturbulence/rotation kernel exp(−(v/ζ)²)
    rv_scatter : σ (km/s) of a Gaussian radial-velocity residual left in the rest-frame spectrum
    continuum_error : RMS (fraction) of a smooth multiplicative error per chip, per star
    masks : APOGEE-like bad-pixel masks (chip edges, sky lines, persistence)
    """

    vmicro_scatter: float = 0.0
    vbroad: float = 0.0
    rv_scatter: float = 0.0
    continuum_error: float = 0.0
    masks: bool = False

    def __post_init__(self):
        for name in ("vmicro_scatter", "vbroad", "rv_scatter", "continuum_error"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
        if self.continuum_error >= 0.2:
            raise ValueError(f"continuum_error is a fraction (0.01 = 1 %); got {self.continuum_error!r}")

    @property
    def any(self) -> bool:
        return bool(self.vmicro_scatter or self.vbroad or self.rv_scatter or self.continuum_error or self.masks)

    def replace(self, **changes) -> "Nuisances":
        return replace(self, **changes)

    def attrs(self) -> dict:
        """Provenance attributes for a dataset (netCDF-safe: numbers and strings)."""
        out = {f"nuisance_{k}": (int(v) if isinstance(v, bool) else float(v)) for k, v in asdict(self).items()}
        if self.masks:
            out["sky_lines_version"] = SKY_LINES_VERSION
            out["persistence_fraction"] = PERSISTENCE_FRACTION
        return out


PRESETS = {
    "none": Nuisances(),
    "realistic": Nuisances(vmicro_scatter=0.25, vbroad=8.0, rv_scatter=0.3, continuum_error=0.0075, masks=True),
}


def _rng(seed, name):
    return np.random.default_rng([int(seed), 3, _STREAM[name]])


def draw_nuisances(n: int, nuisances: Nuisances, seed: int, logg=None) -> dict:
    """Per-star nuisance parameters: dict with ``vmicro`` (needs ``logg``), ``vbroad``, ``rv``
    (each (n,) km/s, or None when off) and ``continuum`` ((n, 3 chips, CONTINUUM_ORDER + 1)
    Legendre coefficients, or None)."""
    from twinviz.spectra.atmosphere import microturbulence

    out = {"vmicro": None, "vbroad": None, "rv": None, "continuum": None}
    if nuisances.vmicro_scatter:
        out["vmicro"] = microturbulence(logg) + nuisances.vmicro_scatter * _rng(seed, "vmicro").standard_normal(n)
    if nuisances.vbroad:
        out["vbroad"] = _rng(seed, "vbroad").uniform(0.0, nuisances.vbroad, n)
    if nuisances.rv_scatter:
        out["rv"] = nuisances.rv_scatter * _rng(seed, "rv").standard_normal(n)
    if nuisances.continuum_error:
        sigma = continuum_sigma(nuisances.continuum_error)
        out["continuum"] = sigma * _rng(seed, "continuum").standard_normal((n, len(CHIPS), sigma.size))
    return out


def continuum_sigma(continuum_error: float) -> np.ndarray:
    """σ_j of the Legendre coefficients P0 … P_CONTINUUM_ORDER of the continuum error: the mean over a
    chip of P_j² is 1/(2j+1), so σ_j² = continuum_error² (2j+1)/(order+1) makes the expected
    mean-square deviation of the factor from 1 equal continuum_error²."""
    j = np.arange(CONTINUUM_ORDER + 1)
    return continuum_error * np.sqrt((2 * j + 1) / j.size)


def _apstar_index(wavelength):
    return np.rint((np.log10(np.asarray(wavelength, dtype=np.float64)) - LOG10_LAMBDA0) / DLOG10_LAMBDA).astype(np.int64)


def _chip_coordinate(wavelength):
    """Chip index (0 blue, 1 green, 2 red) and position x ∈ [−1, 1] across the chip of each pixel
    (pixels in a gap belong to the nearest chip, extrapolated)."""
    p = _apstar_index(wavelength)
    lo = np.array([c[0] for c in CHIPS]); hi = np.array([c[1] - 1 for c in CHIPS])
    centre = 0.5 * (lo + hi)
    chip = np.argmin(np.abs(p[:, None] - centre[None, :]) - 0.5 * (hi - lo)[None, :], axis=1)
    x = 2.0 * (p - lo[chip]) / (hi[chip] - lo[chip]) - 1.0
    return chip, x


def continuum_factor(wavelength, coefficients) -> np.ndarray:
    """Multiplicative continuum error (n, n_pixel) float32: 1 + Σ_j c_j P_j(x) on each chip."""
    chip, x = _chip_coordinate(wavelength)
    legendre = np.polynomial.legendre.legvander(x, coefficients.shape[2] - 1)  # (n_pixel, order+1)
    out = np.ones((coefficients.shape[0], chip.size), dtype=np.float32)
    for c in range(coefficients.shape[1]):
        on = chip == c
        out[:, on] += coefficients[:, c, :] @ legendre[on].T
    return out


def sky_lines() -> np.ndarray:
    """Vacuum wavelengths (Å) of the bright 'OH sky lines' used by the masks, version
    :data:`SKY_LINES_VERSION`.

    **An approximation, not real OH line data.** The H band holds a few dozen bright OH Meinel
    lines, most as Λ-doublets a few Å apart (Rousselot et al. 2000; Oliva et al. 2015). This
    list only mimics that: SKY_DOUBLETS doublet centres drawn uniformly in 15 100–17 000 Å from a
    fixed seed, with splittings of 1.5–3 Å. The number of masked pixels is realistic; their
    positions are not those of the real sky lines."""
    rng = np.random.default_rng(SKY_LINES_SEED)
    centre = np.sort(rng.uniform(15100.0, 17000.0, SKY_DOUBLETS))
    split = rng.uniform(1.5, 3.0, SKY_DOUBLETS)
    return np.sort(np.concatenate([centre - split / 2, centre + split / 2]))


def mask_pixels(wavelength, n: int, seed: int) -> np.ndarray:
    """Bad-pixel mask (n, n_pixel) bool: the ends of each chip on this grid (and any pixel in a
    chip gap, on the full apStar grid), sky lines (at a per-star line-of-sight shift)
    and, for PERSISTENCE_FRACTION of the stars, the persistence band of the blue chip."""
    wavelength = np.asarray(wavelength, dtype=np.float64)
    p = _apstar_index(wavelength)
    in_chip = np.zeros(p.size, dtype=bool)
    edge = np.zeros(p.size, dtype=bool)
    for lo, hi in CHIPS:  # the first and last CHIP_EDGE_PIXELS of each chip that the grid holds
        on = np.flatnonzero((p >= lo) & (p < hi))
        in_chip[on] = True
        edge[on[:CHIP_EDGE_PIXELS]] = edge[on[-CHIP_EDGE_PIXELS:]] = True
    mask = np.broadcast_to(edge | ~in_chip, (n, p.size)).copy()
    rng = _rng(seed, "masks")
    # Sky lines sit at fixed observed wavelengths; the rest-frame spectrum sees them at λ/(1+v/c).
    v_helio = rng.uniform(-SKY_HELIO_KMS, SKY_HELIO_KMS, n)
    c_kms = 299_792.458
    log_w = np.log(wavelength)
    half = SKY_MASK_HALF_KMS / c_kms
    shifted = np.log(sky_lines())[None, :] - np.log1p(v_helio / c_kms)[:, None]  # (n, lines)
    # pixels lo ≤ j < hi of each line are masked: mark +1/−1 and sum along the pixels
    lo = np.searchsorted(log_w, (shifted - half).ravel(), side="left").reshape(shifted.shape)
    hi = np.searchsorted(log_w, (shifted + half).ravel(), side="right").reshape(shifted.shape)
    marks = np.zeros((n, p.size + 1), dtype=np.int32)
    rows = np.repeat(np.arange(n), shifted.shape[1])
    np.add.at(marks, (rows, lo.ravel()), 1)
    np.add.at(marks, (rows, hi.ravel()), -1)
    mask |= np.cumsum(marks, axis=1)[:, :-1] > 0
    persistent = rng.random(n) < PERSISTENCE_FRACTION
    band = (wavelength >= PERSISTENCE_RANGE_A[0]) & (wavelength <= PERSISTENCE_RANGE_A[1])
    mask[np.ix_(persistent, band)] = True
    return mask
