"""Label distributions of the synthetic data sets: red giants drawn in chemistry groups (twins).

Stars come in groups of ``group_size`` (pairs by default). Members of a group are consecutive
rows and share *every* chemical label ([Fe/H] and all 17 [X/Fe]); their Teff and logg are drawn
independently, so they differ. Chemistry is drawn independently of Teff and logg.

Teff and logg: Teff uniform in ``teff_range``; logg scattered (σ = 15 % of the logg range, about
0.38 dex by default) about a straight red-giant-branch line from the cool, low-gravity corner
(teff_range[0], logg_range[0]) to the warm, high-gravity corner, reflected back into
``logg_range``. Every (Teff, logg) pair in the box is possible; the RGB band is just more likely.

Chemistry:

* ``independent`` (default, as in the paper's setup): [Fe/H] ~ N(−0.1, 0.25) clipped to
  [−1.0, 0.5]; each [X/Fe] ~ N(mean, σ) per element (XFE_MEAN_SIGMA; C: 0.00 ± 0.10), clipped
  at ±3σ; 18 independent dimensions.
* ``galactic``: a low-dimensional chemistry driven by three latent factors — [Fe/H], an
  α-enhancement (high for a thick-disc-like population at low [Fe/H]) and a CN-mixing factor —
  plus 0.02 dex per-element scatter. α elements (O, Mg, Si, S, Ca, Ti) follow the α factor, C and
  N anti-correlate through mixing, Mn/Ni/V follow [Fe/H]. Twins are harder to single out.
* ``low-d``: only [Fe/H] and one [α/Fe] vary. Every α element (O, Mg, Si, S, Ca, Ti) has
  [X/Fe] = [α/Fe] exactly; every other [X/Fe] is fixed at 0 (solar ratios). [Fe/H] and [α/Fe]
  are drawn as in ``galactic`` (the same two-population α) but with no per-element scatter, so a
  twin differs from its nearest non-twins in two dimensions only.

Populations (``population``):

* ``giants`` (default): the red-giant box above, Teff 4000–5500 K, logg 1.0–3.5.
* ``dwarfs``: main-sequence FGK dwarfs, Teff uniform in 4400–6800 K; logg scattered
  (σ = 0.15 dex) about a main-sequence line from 4.65 at 4400 K to 4.30 at 6800 K (the Sun,
  5772 K, sits at 4.45 on it), reflected into 4.0–5.0.
* ``mixed``: each star independently a giant or a dwarf (probability :data:`MIXED_DWARF_FRACTION`),
  whatever its group: about half of the twin pairs are a dwarf and a giant of one chemistry,
  as in an open cluster. The giants' labels are those of ``giants`` with the same seed.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.atmosphere import ELEMENTS

CHEMISTRIES = ("independent", "galactic", "low-d")
POPULATIONS = ("giants", "dwarfs", "mixed")
ALPHA_ELEMENTS = ("O", "Mg", "Si", "S", "Ca", "Ti")
GIANT_TEFF_RANGE, GIANT_LOGG_RANGE = (4000.0, 5500.0), (1.0, 3.5)
DWARF_TEFF_RANGE, DWARF_LOGG_RANGE = (4400.0, 6800.0), (4.0, 5.0)
DWARF_MS_LOGG = (4.65, 4.30)  # main-sequence logg at DWARF_TEFF_RANGE[0] and [1]
DWARF_LOGG_SIGMA = 0.15
MIXED_DWARF_FRACTION = 0.5
# [X/Fe] mean and σ (dex) of the independent chemistry, in ELEMENTS order.
XFE_MEAN_SIGMA = {
    "C": (0.00, 0.10), "N": (0.28, 0.11), "O": (0.03, 0.08), "Na": (-0.05, 0.38), "Mg": (0.06, 0.08),
    "Al": (0.07, 0.09), "Si": (0.05, 0.07), "P": (-0.04, 0.18), "S": (0.05, 0.10), "K": (0.04, 0.07),
    "Ca": (0.02, 0.04), "Ti": (-0.01, 0.06), "V": (-0.01, 0.11), "Cr": (-0.01, 0.06), "Mn": (-0.04, 0.07),
    "Co": (0.00, 0.15), "Ni": (0.02, 0.04),
}
FE_H_MEAN, FE_H_SIGMA, FE_H_RANGE = -0.1, 0.25, (-1.0, 0.5)

# galactic chemistry: [X/Fe] = offset + w_alpha·α + w_mix·mixing + w_feh·[Fe/H] + 0.02 dex noise
_GALACTIC = {  # element: (offset, w_alpha, w_mix, w_feh)
    "C": (-0.05, 0.2, -0.25, 0.0), "N": (0.15, 0.0, 0.45, 0.0), "O": (0.0, 1.0, 0.0, 0.0),
    "Na": (0.0, 0.3, 0.1, 0.1), "Mg": (0.0, 1.0, 0.0, 0.0), "Al": (0.0, 0.6, 0.0, 0.0),
    "Si": (0.0, 0.8, 0.0, 0.0), "P": (-0.05, 0.5, 0.0, 0.0), "S": (0.0, 0.9, 0.0, 0.0),
    "K": (0.0, 0.4, 0.0, 0.0), "Ca": (0.0, 0.6, 0.0, 0.0), "Ti": (0.0, 0.6, 0.0, 0.0),
    "V": (0.0, 0.2, 0.0, 0.1), "Cr": (0.0, 0.0, 0.0, 0.0), "Mn": (-0.05, -0.3, 0.0, 0.25),
    "Co": (0.0, 0.4, 0.0, 0.0), "Ni": (0.0, 0.15, 0.0, 0.05),
}


def _reflect(x, lo, hi):
    """Fold values back into [lo, hi] (keeps a smooth density, unlike clipping)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _independent_chemistry(rng, n):
    fe_h = np.clip(rng.normal(FE_H_MEAN, FE_H_SIGMA, n), *FE_H_RANGE)
    mean, sigma = (np.array([XFE_MEAN_SIGMA[el][i] for el in ELEMENTS]) for i in (0, 1))
    x_fe = np.clip(rng.normal(mean, sigma, (n, len(ELEMENTS))), mean - 3 * sigma, mean + 3 * sigma)
    return fe_h, x_fe


def _fe_h_and_alpha(rng, n):
    """[Fe/H] and a two-population [α/Fe] (the ``galactic`` and ``low-d`` chemistries)."""
    fe_h = np.clip(rng.normal(-0.15, 0.3, n), -1.2, 0.5)
    # high-α (thick-disc-like) stars are more common at low metallicity
    p_high = 0.6 / (1.0 + np.exp((fe_h + 0.3) / 0.12))
    high = rng.random(n) < p_high
    alpha = np.where(high, np.clip(0.30 - 0.35 * (fe_h + 0.5), 0.10, 0.30), np.clip(-0.08 * fe_h, -0.03, 0.1))
    alpha = alpha + rng.normal(0.0, 0.02, n)
    return fe_h, alpha


def _low_d_chemistry(rng, n):
    fe_h, alpha = _fe_h_and_alpha(rng, n)
    is_alpha = np.isin(np.array(ELEMENTS), ALPHA_ELEMENTS)
    x_fe = np.where(is_alpha[None, :], alpha[:, None], 0.0)
    return fe_h, x_fe


def _galactic_chemistry(rng, n):
    fe_h, alpha = _fe_h_and_alpha(rng, n)
    mixing = rng.random(n)
    coef = np.array([_GALACTIC[el] for el in ELEMENTS])  # (17, 4)
    x_fe = (coef[:, 0] + np.outer(alpha, coef[:, 1]) + np.outer(mixing, coef[:, 2])
            + np.outer(fe_h, coef[:, 3]) + rng.normal(0.0, 0.02, (n, len(ELEMENTS))))
    return fe_h, x_fe


def _giants(rng, n, teff_range, logg_range):
    (t_lo, t_hi), (g_lo, g_hi) = teff_range, logg_range
    teff = rng.uniform(t_lo, t_hi, n)
    rgb = g_lo + (g_hi - g_lo) * (teff - t_lo) / (t_hi - t_lo)
    logg = _reflect(rgb + rng.normal(0.0, 0.15 * (g_hi - g_lo), n), g_lo, g_hi)
    return teff, logg


def _dwarfs(rng, n, teff_range, logg_range):
    (t_lo, t_hi), (g_lo, g_hi) = teff_range, logg_range
    teff = rng.uniform(t_lo, t_hi, n)
    ms = DWARF_MS_LOGG[0] + (DWARF_MS_LOGG[1] - DWARF_MS_LOGG[0]) * (teff - t_lo) / (t_hi - t_lo)
    logg = _reflect(ms + rng.normal(0.0, DWARF_LOGG_SIGMA, n), g_lo, g_hi)
    return teff, logg


_CHEMISTRY = {"independent": _independent_chemistry, "galactic": _galactic_chemistry, "low-d": _low_d_chemistry}


def draw_labels(n_groups: int, group_size: int = 2, chemistry: str = "independent", seed: int = 0,
                teff_range=None, logg_range=None, population: str = "giants") -> dict:
    """Draw labels of ``n_groups × group_size`` stars in chemistry groups.

    ``population``: ``giants`` (default), ``dwarfs`` or ``mixed`` (see the module docstring).
    ``teff_range``/``logg_range`` (K, dex) replace the population's box (giants: (4000, 5500),
    (1.0, 3.5); dwarfs: (4400, 6800), (4.0, 5.0)); with ``mixed`` they apply to the giants.

    Returns a dict of arrays over stars: ``teff`` (N,) K, ``logg`` (N,) dex, ``fe_h`` (N,) dex,
    ``x_fe`` (N, 17) dex in ELEMENTS order, ``group`` (N,) int64 (members are consecutive),
    ``dwarf`` (N,) bool. The same arguments always give the same labels; chemistry and groups
    do not depend on the population.
    """
    if chemistry not in CHEMISTRIES:
        raise ValueError(f"chemistry must be one of {CHEMISTRIES}, got {chemistry!r}")
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")
    if n_groups < 1 or group_size < 1:
        raise ValueError(f"need n_groups ≥ 1 and group_size ≥ 1, got {n_groups} and {group_size}")
    rng = np.random.default_rng(seed)
    fe_h, x_fe = _CHEMISTRY[chemistry](rng, n_groups)
    n = n_groups * group_size
    if population == "dwarfs":
        teff, logg = _dwarfs(rng, n, teff_range or DWARF_TEFF_RANGE, logg_range or DWARF_LOGG_RANGE)
        dwarf = np.ones(n, dtype=bool)
    else:  # the giants' draws come first from the main stream, as they always have
        teff, logg = _giants(rng, n, teff_range or GIANT_TEFF_RANGE, logg_range or GIANT_LOGG_RANGE)
        dwarf = np.zeros(n, dtype=bool)
        if population == "mixed":
            mix_rng = np.random.default_rng([seed, 2])  # a separate stream: giants unchanged
            dwarf = mix_rng.random(n) < MIXED_DWARF_FRACTION
            d_teff, d_logg = _dwarfs(mix_rng, n, DWARF_TEFF_RANGE, DWARF_LOGG_RANGE)
            teff, logg = np.where(dwarf, d_teff, teff), np.where(dwarf, d_logg, logg)
    group = np.repeat(np.arange(n_groups, dtype=np.int64), group_size)
    return {"teff": teff, "logg": logg, "fe_h": fe_h[group], "x_fe": x_fe[group], "group": group,
            "dwarf": dwarf}
