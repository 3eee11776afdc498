"""Twin-rank summaries: the Table-1 fractions and the cumulative rank curve.

Definitions in docs/science.md ("Metrics"): the fractions are over the stars that have a twin,
with thresholds 0.001·N and 0.01·N, N the number of stars searched. The doppelganger rate (Ness
et al. 2018; de Mijolla & Ness 2022) is defined in docs/evaluation.md ("The doppelganger rate").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Doppelganger", "RankFractions", "cumulative_rank_curve", "doppelganger_rate", "pair_distances",
           "rank_fractions"]

DOPPELGANGER_PAIRS = 100_000  # random non-twin pairs drawn (all of them when there are fewer)


@dataclass(frozen=True)
class RankFractions:
    """Table-1 twin-rank fractions (docs/science.md, Metrics) over the stars that have a twin.

    ``rank1``: twin rank 1; ``within_0p1``: rank ≤ 0.001·N; ``within_1``: rank ≤ 0.01·N, with
    N = ``n_stars``, the number of stars searched (the whole set, not only those with twins).
    """

    n_stars: int
    n_ranked: int
    rank1: float
    within_0p1: float
    within_1: float

    @property
    def threshold_0p1(self) -> int:
        """Largest rank counted as ≤ 0.1 %·N (25 for N = 25 000)."""
        return self.n_stars // 1000

    @property
    def threshold_1(self) -> int:
        """Largest rank counted as ≤ 1 %·N (250 for N = 25 000)."""
        return self.n_stars // 100


def rank_fractions(ranks, n_stars: int) -> RankFractions:
    """Fractions of twin ranks equal to 1, ≤ 0.001·N and ≤ 0.01·N (N = ``n_stars``).

    Ranks < 1 (stars without a twin, see :meth:`TwinIndex.twin_ranks`) are left out. The
    thresholds compare integers (``1000·rank ≤ N``), so no float rounding moves a boundary.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    ranked = ranks[ranks >= 1]
    n = ranked.size
    if n == 0:
        return RankFractions(int(n_stars), 0, math.nan, math.nan, math.nan)
    return RankFractions(
        n_stars=int(n_stars), n_ranked=int(n),
        rank1=float(np.count_nonzero(ranked == 1) / n),
        within_0p1=float(np.count_nonzero(ranked * 1000 <= n_stars) / n),
        within_1=float(np.count_nonzero(ranked * 100 <= n_stars) / n),
    )


def cumulative_rank_curve(ranks, n_stars: int, n_points: int | None = None):
    """Cumulative twin-rank curve: fraction of ranked stars with twin rank ≤ r.

    Returns (r, fraction) as numpy arrays. With ``n_points`` the curve is sampled at about that
    many log-spaced ranks between 1 and ``n_stars`` (exact values at those ranks); without it,
    at every rank 1…n_stars.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    ranked = np.sort(ranks[ranks >= 1])
    if n_points is None:
        r = np.arange(1, max(int(n_stars), 1) + 1, dtype=np.int64)
    else:
        r = np.unique(np.round(np.logspace(0, math.log10(max(int(n_stars), 1)), n_points)).astype(np.int64))
    if ranked.size == 0:
        return r, np.full(r.shape, math.nan)
    frac = np.searchsorted(ranked, r, side="right") / ranked.size
    return r, frac


@dataclass(frozen=True)
class Doppelganger:
    """The doppelganger rate of a representation (docs/evaluation.md, "The doppelganger rate").

    ``rate``: fraction of the non-twin pairs drawn at a distance ≤ ``median_twin_distance``, the
    median distance of all twin pairs; ``n_pairs`` non-twin pairs (``sampled``: a seeded uniform
    sample; else every non-twin pair), ``n_twin_pairs`` twin pairs.
    """

    rate: float
    median_twin_distance: float
    n_twin_pairs: int
    n_pairs: int
    sampled: bool
    seed: int

    @property
    def stderr(self) -> float | None:
        """Binomial standard error of a sampled rate (None when every pair was counted)."""
        if not self.sampled or self.n_pairs == 0 or math.isnan(self.rate):
            return None
        return math.sqrt(self.rate * (1.0 - self.rate) / self.n_pairs)

    def to_dict(self) -> dict:
        return {"rate": self.rate, "median_twin_distance": self.median_twin_distance,
                "n_twin_pairs": self.n_twin_pairs, "n_pairs": self.n_pairs, "sampled": self.sampled,
                "seed": self.seed, "stderr": self.stderr}


def pair_distances(vectors, i, j, metric: str = "l1", block_bytes: int = 64 << 20) -> np.ndarray:
    """Canonical distances [len(i)] between rows ``i`` and ``j`` of ``vectors`` [N, d]: float64
    arithmetic on the float32 values, summed over dimensions in a fixed order (as
    :class:`~twinviz.twins.index.TwinIndex` decides ties), ``block_bytes`` of differences at a time."""
    if metric not in ("l1", "l2"):
        raise ValueError(f"metric: {metric!r}; choose l1 or l2")
    x = np.asarray(vectors, dtype=np.float32)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(i.size, dtype=np.float64)
    step = max(1, block_bytes // (8 * max(x.shape[1], 1)))
    for a in range(0, i.size, step):
        diff = x[i[a:a + step]].astype(np.float64) - x[j[a:a + step]].astype(np.float64)
        out[a:a + step] = np.abs(diff).sum(axis=1) if metric == "l1" else np.sqrt((diff * diff).sum(axis=1))
    return out


def _non_twin_pairs(groups: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(i, j, sampled): every unordered non-twin pair when there are at most ``n_pairs`` of them,
    else ``n_pairs`` pairs drawn uniformly (with replacement) from them with ``seed``."""
    n = groups.size
    known = groups[groups >= 0]
    _, sizes = np.unique(known, return_counts=True)
    total = n * (n - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())
    if total <= n_pairs:
        i, j = np.triu_indices(n, k=1)
        keep = (groups[i] != groups[j]) | (groups[i] < 0)
        return i[keep].astype(np.int64), j[keep].astype(np.int64), False
    rng = np.random.default_rng(seed)
    found_i, found_j, count = [], [], 0
    while count < n_pairs:  # rejection: a uniform ordered pair, kept when it is not a twin pair
        a = rng.integers(0, n, 2 * (n_pairs - count) + 16)
        b = rng.integers(0, n, a.size)
        keep = (a != b) & ((groups[a] != groups[b]) | (groups[a] < 0))
        found_i.append(a[keep]); found_j.append(b[keep])
        count += int(keep.sum())
    return np.concatenate(found_i)[:n_pairs], np.concatenate(found_j)[:n_pairs], True


def doppelganger_rate(vectors, groups, *, metric: str = "l1", n_pairs: int = DOPPELGANGER_PAIRS, seed: int = 0,
                      distance=None) -> Doppelganger:
    """The fraction of random non-twin pairs whose distance is ≤ the median twin-pair distance.

    Twin pairs: every unordered pair of stars sharing a group id ≥ 0. Non-twin pairs: pairs of
    distinct stars that do not (a star of group −1 is nobody's twin); all of them when there are at
    most ``n_pairs``, else ``n_pairs`` drawn uniformly with ``seed`` (deterministic). Distances are
    :func:`pair_distances` (``metric`` l1 or l2), or ``distance(i, j)`` → [len(i)] when given (then
    ``vectors`` may be None). Lower is better; a collapsed representation (all vectors equal)
    scores 1. NaN when the set has no twin pair or no non-twin pair.
    """
    from twinviz.twins.groups import group_twin_pairs

    groups = np.asarray(groups, dtype=np.int64)
    if distance is None:
        def distance(i, j):
            return pair_distances(vectors, i, j, metric)
    ti, tj = group_twin_pairs(groups)
    once = ti < tj
    ti, tj = ti[once], tj[once]
    i, j, sampled = _non_twin_pairs(groups, int(n_pairs), int(seed))
    if ti.size == 0 or i.size == 0:
        return Doppelganger(math.nan, math.nan, int(ti.size), int(i.size), sampled, int(seed))
    median = float(np.median(distance(ti, tj)))
    rate = float(np.count_nonzero(distance(i, j) <= median) / i.size)
    return Doppelganger(rate, median, int(ti.size), int(i.size), sampled, int(seed))
