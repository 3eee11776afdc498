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
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.atmosphere import ELEMENTS

CHEMISTRIES = ("independent", "galactic")
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


def _galactic_chemistry(rng, n):
    fe_h = np.clip(rng.normal(-0.15, 0.3, n), -1.2, 0.5)
    # high-α (thick-disc-like) stars are more common at low metallicity
    p_high = 0.6 / (1.0 + np.exp((fe_h + 0.3) / 0.12))
    high = rng.random(n) < p_high
    alpha = np.where(high, np.clip(0.30 - 0.35 * (fe_h + 0.5), 0.10, 0.30), np.clip(-0.08 * fe_h, -0.03, 0.1))
    alpha = alpha + rng.normal(0.0, 0.02, n)
    mixing = rng.random(n)
    coef = np.array([_GALACTIC[el] for el in ELEMENTS])  # (17, 4)
    x_fe = (coef[:, 0] + np.outer(alpha, coef[:, 1]) + np.outer(mixing, coef[:, 2])
            + np.outer(fe_h, coef[:, 3]) + rng.normal(0.0, 0.02, (n, len(ELEMENTS))))
    return fe_h, x_fe


def draw_labels(n_groups: int, group_size: int = 2, chemistry: str = "independent", seed: int = 0,
                teff_range=(4000.0, 5500.0), logg_range=(1.0, 3.5)) -> dict:
    """Draw labels of ``n_groups × group_size`` red giants in chemistry groups.

    Returns a dict of arrays over stars: ``teff`` (N,) K, ``logg`` (N,) dex, ``fe_h`` (N,) dex,
    ``x_fe`` (N, 17) dex in ELEMENTS order, ``group`` (N,) int64 (members are consecutive).
    The same arguments always give the same labels.
    """
    if chemistry not in CHEMISTRIES:
        raise ValueError(f"chemistry must be one of {CHEMISTRIES}, got {chemistry!r}")
    if n_groups < 1 or group_size < 1:
        raise ValueError(f"need n_groups ≥ 1 and group_size ≥ 1, got {n_groups} and {group_size}")
    rng = np.random.default_rng(seed)
    fe_h, x_fe = (_independent_chemistry if chemistry == "independent" else _galactic_chemistry)(rng, n_groups)
    n = n_groups * group_size
    (t_lo, t_hi), (g_lo, g_hi) = teff_range, logg_range
    teff = rng.uniform(t_lo, t_hi, n)
    rgb = g_lo + (g_hi - g_lo) * (teff - t_lo) / (t_hi - t_lo)
    logg = _reflect(rgb + rng.normal(0.0, 0.15 * (g_hi - g_lo), n), g_lo, g_hi)
    group = np.repeat(np.arange(n_groups, dtype=np.int64), group_size)
    return {"teff": teff, "logg": logg, "fe_h": fe_h[group], "x_fe": x_fe[group], "group": group}
