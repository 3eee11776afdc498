"""Open-cluster-like label sets: chemistry groups of many sizes plus field stars.

:func:`draw_cluster_labels` is the cluster counterpart of
:func:`twinviz.spectra.labels.draw_labels` (which makes groups of one fixed size, pairs by
default). A *cluster* is a group of stars born together: every member shares the cluster's
[Fe/H] and every [X/Fe], drawn from the chosen chemistry regime exactly as for twin pairs.
*Field stars* have a chemistry of their own; each gets a group id of its own (a group of one),
so the ``group`` variable keeps its meaning: equal ids, equal chemistry (docs/dataset.md).

Where members sit in (Teff, logg) — docs/synth.md, "Clusters": the stars of one cluster share an
age and a composition, so they lie on *one* isochrone rather than filling the population's band.
Each cluster gets one track: the population's mean relation (the red-giant-branch line of
``giants``, the main-sequence line of ``dwarfs``) shifted in logg by

* a metallicity term, +:data:`TRACK_FEH_SLOPE` dex per dex of [Fe/H] for giants (a metal-rich
  giant branch is cooler, so at a fixed Teff its logg is higher) and a fifth of that for dwarfs;
* an age term, one draw per cluster of N(0, :data:`TRACK_AGE_SIGMA`) × the population's logg
  scatter about its line (the scatter draw_labels uses for a single star).

Members take Teff uniform over the population's range and logg on their cluster's track with a
small per-star scatter (:data:`MEMBER_LOGG_SIGMA`, photometric/evolutionary spread), reflected
back into the logg range. Field stars take Teff and logg exactly as in draw_labels: independent,
scattered about the population's line. With ``mixed`` each star (member or field) is a dwarf
with probability ``MIXED_DWARF_FRACTION``, on its cluster's dwarf track: as in a real open
cluster, dwarfs and giants share a chemistry.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.labels import (_CHEMISTRY, CHEMISTRIES, DWARF_LOGG_RANGE, DWARF_LOGG_SIGMA, DWARF_MS_LOGG,
                                    DWARF_TEFF_RANGE, GIANT_LOGG_RANGE, GIANT_TEFF_RANGE, MIXED_DWARF_FRACTION,
                                    POPULATIONS, _dwarfs, _giants, _reflect)

__all__ = ["MEMBER_LOGG_SIGMA", "TRACK_AGE_SIGMA", "TRACK_FEH_SLOPE", "cluster_sizes", "draw_cluster_labels",
           "parse_group_sizes"]

TRACK_FEH_SLOPE = 0.33  # dex of logg per dex of [Fe/H] at fixed Teff, giants (dwarfs: a fifth)
TRACK_AGE_SIGMA = 0.5   # cluster-to-cluster track offsets, in units of the population's logg scatter
MEMBER_LOGG_SIGMA = 0.05  # dex, members' scatter about their cluster's track


def parse_group_sizes(text: str) -> tuple[int, int]:
    """``"5-50"`` → (5, 50); ``"8"`` → (8, 8). Raises ValueError with the fix on bad input."""
    parts = str(text).strip().split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, -1)
    except ValueError:
        lo, hi = 0, -1
    if not 1 <= lo <= hi:
        raise ValueError(f"group sizes: {text!r} is not MIN-MAX with 1 ≤ MIN ≤ MAX. Fix: e.g. 5-50 or 8")
    return lo, hi


def cluster_sizes(n_clusters: int, sizes: tuple[int, int], seed: int) -> np.ndarray:
    """Member counts of ``n_clusters`` clusters, uniform integers in [MIN, MAX] (its own stream)."""
    lo, hi = sizes
    return np.random.default_rng([seed, 3]).integers(lo, hi + 1, n_clusters)


def _track(rng, teff, is_dwarf, offset_giant, offset_dwarf, giant_box, dwarf_box):
    """logg on per-star tracks: the population's line at Teff + the star's cluster offset +
    a small scatter, reflected into the box's logg range."""
    (t_lo, t_hi), (g_lo, g_hi) = giant_box
    rgb = g_lo + (g_hi - g_lo) * (teff - t_lo) / (t_hi - t_lo)
    (d_lo, d_hi), dwarf_logg = dwarf_box
    ms = DWARF_MS_LOGG[0] + (DWARF_MS_LOGG[1] - DWARF_MS_LOGG[0]) * (teff - d_lo) / (d_hi - d_lo)
    scatter = rng.normal(0.0, MEMBER_LOGG_SIGMA, teff.size)
    giant = _reflect(rgb + offset_giant + scatter, g_lo, g_hi)
    dwarf = _reflect(ms + offset_dwarf + scatter, *dwarf_logg)
    return np.where(is_dwarf, dwarf, giant)


def draw_cluster_labels(n_clusters: int, group_sizes=(5, 50), field_fraction: float = 0.0,
                        chemistry: str = "independent", seed: int = 0, population: str = "giants",
                        teff_range=None, logg_range=None) -> dict:
    """Labels of ``n_clusters`` clusters (sizes uniform in ``group_sizes``) plus field stars.

    ``field_fraction`` F in [0, 1): field stars are a fraction F of all stars (rounded), each
    with its own chemistry and group id. Members of a cluster are consecutive rows (ids
    0 … n_clusters − 1); field stars follow (ids n_clusters, n_clusters + 1, …).
    ``teff_range``/``logg_range`` replace the population's box as in draw_labels (with
    ``mixed``, the giants' box). Returns the dict of :func:`draw_labels` plus ``field`` (N,)
    bool. The same arguments always give the same labels.
    """
    if chemistry not in CHEMISTRIES:
        raise ValueError(f"chemistry must be one of {CHEMISTRIES}, got {chemistry!r}")
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")
    if n_clusters < 1:
        raise ValueError(f"need at least one cluster, got {n_clusters}")
    if not 0.0 <= field_fraction < 1.0:
        raise ValueError(f"field_fraction must lie in [0, 1), got {field_fraction!r}")
    sizes = cluster_sizes(n_clusters, parse_group_sizes(f"{group_sizes[0]}-{group_sizes[1]}"), seed)
    n_members = int(sizes.sum())
    n_field = int(round(field_fraction / (1.0 - field_fraction) * n_members))
    n = n_members + n_field
    rng = np.random.default_rng(seed)
    fe_h, x_fe = _CHEMISTRY[chemistry](rng, n_clusters + n_field)
    group = np.concatenate([np.repeat(np.arange(n_clusters, dtype=np.int64), sizes),
                            np.arange(n_clusters, n_clusters + n_field, dtype=np.int64)])
    field = group >= n_clusters
    custom = (teff_range or GIANT_TEFF_RANGE, logg_range or GIANT_LOGG_RANGE)
    giant_box = (GIANT_TEFF_RANGE, GIANT_LOGG_RANGE) if population == "dwarfs" else custom
    dwarf_box = ((teff_range or DWARF_TEFF_RANGE, logg_range or DWARF_LOGG_RANGE) if population == "dwarfs"
                 else (DWARF_TEFF_RANGE, DWARF_LOGG_RANGE))
    dwarf = np.full(n, population == "dwarfs")
    if population == "mixed":
        dwarf = np.random.default_rng([seed, 2]).random(n) < MIXED_DWARF_FRACTION
    # One track per chemistry group: age offset drawn per group (field entries unused).
    giant_sigma = 0.15 * (giant_box[1][1] - giant_box[1][0])
    age = rng.normal(0.0, TRACK_AGE_SIGMA, n_clusters + n_field)
    off_giant = (TRACK_FEH_SLOPE * fe_h + age * giant_sigma)[group]
    off_dwarf = (TRACK_FEH_SLOPE / 5 * fe_h + age * DWARF_LOGG_SIGMA)[group]
    teff = np.where(dwarf, rng.uniform(*dwarf_box[0], n), rng.uniform(*giant_box[0], n))
    logg = _track(rng, teff, dwarf, off_giant, off_dwarf, giant_box, dwarf_box)
    if n_field:  # field stars: the population's band, as in draw_labels
        g_teff, g_logg = _giants(rng, n_field, *giant_box)
        d_teff, d_logg = _dwarfs(rng, n_field, *dwarf_box)
        teff[field] = np.where(dwarf[field], d_teff, g_teff)
        logg[field] = np.where(dwarf[field], d_logg, g_logg)
    return {"teff": teff, "logg": logg, "fe_h": fe_h[group], "x_fe": x_fe[group], "group": group,
            "dwarf": dwarf, "field": field}
