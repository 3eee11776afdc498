"""Twin-rank summaries: the Table-1 fractions and the cumulative rank curve.

Definitions in docs/science.md ("Metrics"): the fractions are over the stars that have a twin,
with thresholds 0.001·N and 0.01·N, N the number of stars searched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RankFractions", "cumulative_rank_curve", "rank_fractions"]


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
