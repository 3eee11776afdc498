"""Who is whose twin: stars that share a ``group`` id (≥ 0) share a chemistry; −1 is unknown.

The one home of group bookkeeping, used by the twin search, the evaluation, per-epoch
validation, the CLI and the app.
"""
from __future__ import annotations

import numpy as np

__all__ = ["group_twin_pairs", "has_twins", "swap_partners", "twin_pairs"]


class GroupsError(ValueError):
    """Group ids that cannot be used (wrong shape)."""


def group_twin_pairs(groups) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i ≠ j, of positions in the same group (group id ≥ 0).

    Group −1 means "chemistry unknown": such stars are nobody's twin.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise GroupsError(f"groups: expected a 1-D array of group ids, got shape {groups.shape}")
    order = np.argsort(groups, kind="stable")
    g_sorted = groups[order]
    valid = g_sorted >= 0
    left, right = [], []
    # Members of a group are contiguous after sorting, so pairing each star with the one
    # `offset` places later enumerates every unordered pair once; largest group bounds the loop.
    _, counts = np.unique(g_sorted[valid], return_counts=True)
    max_size = int(counts.max()) if counts.size else 0
    for offset in range(1, max_size):
        same = (g_sorted[:-offset] == g_sorted[offset:]) & valid[:-offset]
        left.append(order[:-offset][same])
        right.append(order[offset:][same])
    if not left:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    i = np.concatenate(left).astype(np.int64)
    j = np.concatenate(right).astype(np.int64)
    return np.concatenate([i, j]), np.concatenate([j, i])


def twin_pairs(groups) -> np.ndarray:
    """[n_pairs, 2] disjoint pairs of twins: consecutive members of each group in dataset order
    (a group of three gives one pair and leaves its third star out; group −1 and groups of one
    give none). The pair batches of the training's twin term are made of these."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    order = order[groups[order] >= 0]
    g = groups[order]
    pos = np.arange(g.size)
    start = np.maximum.accumulate(np.where(np.r_[True, g[1:] != g[:-1]], pos, 0))
    has_next = np.r_[g[1:] == g[:-1], False]
    firsts = np.flatnonzero(((pos - start) % 2 == 0) & has_next)
    return np.stack([order[firsts], order[firsts + 1]], axis=1).astype(np.int64)


def swap_partners(groups) -> np.ndarray:
    """The twin used for the swapped MSE: for each star, the next member of its group in
    dataset order (cyclically; for a pair, the other star); −1 without a group-mate."""
    groups = np.asarray(groups)
    partner = np.full(groups.size, -1, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], g.size]
    for s, e in zip(starts, ends):
        if g[s] < 0 or e - s < 2:
            continue
        members = order[s:e]
        partner[members] = np.roll(members, -1)
    return partner


def has_twins(groups, position: int) -> bool:
    """True when the star at ``position`` has at least one group-mate."""
    groups = np.asarray(groups)
    g = groups[position]
    return bool(g >= 0 and np.count_nonzero(groups == g) > 1)
