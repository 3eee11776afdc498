"""Distances with a scale: a twin distance read against twin-pair and random-pair distances.

A bare L1 distance in latent z (or the twin metric, or the pixel finder's metric) means nothing
on its own. :func:`distance_scale` measures, on the loaded stars (the model's validation or
calibration data when the app is opened on them, as the demo is), the distances of known twin
pairs and of random pairs that are not twins, for the session's ranking. A distance d is then
shown as

* **twin pct** — the percentile of d among twin-pair distances (50 %: a typical twin pair; 99 %:
  farther apart than almost every known twin pair), absent without known twins;
* **random ≤ d** — the fraction of random non-twin pairs at distance ≤ d: the rate at which a
  random star would pass for a twin at this distance (the doppelganger rate).

Computed once per (data, ranking) on up to MAX_PAIRS pairs of each kind (milliseconds).
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = ["DistanceScale", "MAX_PAIRS", "distance_scale"]

MAX_PAIRS = 20_000
_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class DistanceScale:
    twin: np.ndarray      # sorted L1 distances of known twin pairs (may be empty)
    random: np.ndarray    # sorted L1 distances of random non-twin pairs
    source: str           # where the pairs come from, for the note under the table

    def twin_percentile(self, d) -> np.ndarray:
        """[%] of twin pairs at distance ≤ d (NaN without twin pairs)."""
        return _fraction_at_most(self.twin, d)

    def random_fraction(self, d) -> np.ndarray:
        """[%] of random non-twin pairs at distance ≤ d: the doppelganger rate at d."""
        return _fraction_at_most(self.random, d)

    def note(self) -> str:
        twin = (f"{self.twin.size:,} known twin pairs" if self.twin.size else
                "no known twin pairs (twin pct absent)")
        return (f"Distance scale: **twin pct** = percentile among {twin}; **random ≤ d** = share of "
                f"{self.random.size:,} random non-twin pairs at that distance or closer (how often a random "
                f"star would pass for a twin). Pairs from {self.source}.")


def _fraction_at_most(sorted_values: np.ndarray, d) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if sorted_values.size == 0:
        return np.full(d.shape, np.nan)
    return 100.0 * np.searchsorted(sorted_values, d, side="right") / sorted_values.size


def _l1(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sort(np.abs(vectors[a].astype(np.float64) - vectors[b]).sum(axis=1))


def distance_scale(data, rank_by: str = "latent") -> DistanceScale:
    """The scale of ``data``'s distances for ``rank_by`` (data.twin_vectors), computed once."""
    ranking = data.ranking(rank_by)
    with _lock:
        per_data = _cache.setdefault(data, {})
        if ranking in per_data:
            return per_data[ranking]
    from twinviz.twins.groups import group_twin_pairs

    vectors = data.twin_vectors(ranking)
    rng = np.random.default_rng(0)
    i, j = group_twin_pairs(data.group)
    keep = i < j  # each unordered pair once
    i, j = i[keep], j[keep]
    if i.size > MAX_PAIRS:
        pick = rng.choice(i.size, MAX_PAIRS, replace=False)
        i, j = i[pick], j[pick]
    n = data.n_stars
    a, b = rng.integers(0, n, 2 * MAX_PAIRS), rng.integers(0, n, 2 * MAX_PAIRS)
    ok = (a != b) & ~((data.group[a] >= 0) & (data.group[a] == data.group[b]))
    a, b = a[ok][:MAX_PAIRS], b[ok][:MAX_PAIRS]
    name = data.data_path.name if data.data_path is not None else "the loaded data"
    scale = DistanceScale(twin=_l1(vectors, i, j), random=_l1(vectors, a, b),
                          source=f"the loaded stars ({name}, {n:,} stars)")
    with _lock:
        _cache[data][ranking] = scale
    return scale


def add_scale_columns(table, scale: DistanceScale, distances) -> None:
    """Put "twin pct" and "random ≤ d" (both %) right after the table's "distance" column."""
    at = list(table.columns).index("distance") + 1
    twin = scale.twin_percentile(distances)
    table.insert(at, "random ≤ d", [_pct(v) for v in scale.random_fraction(distances)])
    table.insert(at, "twin pct", [_pct(v) for v in twin])


def _pct(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2g} %" if value < 1 else f"{value:.0f} %"
