"""Exact nearest-neighbour twin search over latents: :class:`TwinIndex`.

Twins are found as nearest neighbours of the latent z under the L1 distance (the paper's
choice; L2 is available too). The search is *exact* and gives the same answer on every backend:

* a fast approximate pass computes distances in float32 — faiss ``IndexFlat`` on CPU, chunked
  torch on a GPU (or CPU) — in blocks, so memory stays bounded (no N×N matrix, ever);
* every decision that float32 rounding could flip (a candidate near the k-th distance, or a star
  near the twin distance) is re-decided with the *canonical* distance: float64 arithmetic on the
  stored float32 latents, summed over latent dimensions in a fixed order. The float32 pass is
  only trusted where a rigorous rounding bound says it cannot be wrong.

Hence top-k lists are sorted by (canonical distance, position) and twin ranks are counts of
strictly smaller canonical distances, which is tie-proof: backends agree bit for bit.

Distances are in the latent's own units (L1: sum of |Δz|; L2: Euclidean norm of Δz).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TwinIndex", "TwinIndexError", "RankFractions", "rank_fractions",
           "cumulative_rank_curve", "group_twin_pairs"]

METRICS = ("l1", "l2")
BACKENDS = ("auto", "faiss", "torch")
# Bytes of float32 distances one block of the approximate pass may hold (queries × stars);
# the peak is about three times this (distances plus two boolean masks).
DEFAULT_BLOCK_BYTES = 64 * 2**20
_U32 = 2.0 ** -24  # unit roundoff of float32


class TwinIndexError(ValueError):
    """Latents, groups or a query that the twin search cannot use; the message says which
    argument is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------
# canonical distances: the single definition all backends defer to
# --------------------------------------------------------------------------------------------
def _canonical(a64: np.ndarray, b64: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distance between float64 arrays a, b [m, d], summed over d in a fixed order.

    L1 → Σ|a−b|; L2 → Σ(a−b)² (squared; ranking on it equals ranking on the norm). The
    explicit loop over dimensions fixes the summation order, so the same pair always gives
    the same bits whichever code path asks.
    """
    acc = np.zeros(a64.shape[0], dtype=np.float64)
    for k in range(a64.shape[1]):
        diff = a64[:, k] - b64[:, k]
        acc += np.abs(diff) if metric == "l1" else diff * diff
    return acc


def _canonical_pairs(a32: np.ndarray, ia: np.ndarray, b32: np.ndarray, ib: np.ndarray, metric: str,
                     budget_bytes: int = 32 * 2**20) -> np.ndarray:
    """Canonical distances between rows a32[ia[p]] and b32[ib[p]] for every pair p, computed in
    batches of pairs so float64 copies stay within ``budget_bytes`` (high-d flux vectors too)."""
    n_pairs = ia.size
    out = np.empty(n_pairs, dtype=np.float64)
    step = max(1, budget_bytes // (16 * a32.shape[1]))
    for s in range(0, n_pairs, step):
        # Fortran order makes each dimension's column contiguous for the fixed-order loop.
        a = np.asfortranarray(a32[ia[s:s + step]], dtype=np.float64)
        b = np.asfortranarray(b32[ib[s:s + step]], dtype=np.float64)
        out[s:s + step] = _canonical(a, b, metric)
    return out


@dataclass(frozen=True)
class RankFractions:
    """Table-1 twin-rank fractions (SCIENCE.md §2) over the stars that have a twin.

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


def group_twin_pairs(groups) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i ≠ j, of positions in the same group (group id ≥ 0).

    Group −1 means "chemistry unknown": such stars are nobody's twin.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise TwinIndexError(f"groups: expected a 1-D array of group ids, got shape {groups.shape}")
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


def _count_band_numpy(approx: np.ndarray, lo, hi, c0: int, qpos: np.ndarray):
    """Split float32 distances [m, n] (columns c0…) against per-row bands [lo, hi]:
    counts of entries < lo per row, and (row, column) of entries inside the band; the query's
    own column (qpos − c0) is dropped either way."""
    lo, hi = lo[:, None], hi[:, None]
    clear = approx < lo
    counts = np.count_nonzero(clear, axis=1).astype(np.int64)
    le_hi = approx <= hi
    n_le_hi = np.count_nonzero(le_hi, axis=1)
    # The star itself is never "another star": drop it whichever side it fell on.
    self_in = (qpos >= c0) & (qpos < c0 + approx.shape[1])
    rows_self = np.flatnonzero(self_in)
    cols_self = qpos[self_in] - c0
    counts[rows_self] -= clear[rows_self, cols_self]
    n_le_hi[rows_self] -= le_hi[rows_self, cols_self]
    le_hi[rows_self, cols_self] = False
    clear[rows_self, cols_self] = False
    # Only rows with something inside the band need a closer look.
    doubtful = np.flatnonzero(n_le_hi > counts)
    r, c = np.nonzero(le_hi[doubtful] & ~clear[doubtful])
    return counts, doubtful[r], c


# --------------------------------------------------------------------------------------------
# approximate backends: float32 distances, fast, bounded memory
# --------------------------------------------------------------------------------------------
class _FaissBackend:
    name = "faiss"

    def __init__(self, z32: np.ndarray, metric: str):
        import faiss

        self._faiss = faiss
        self.metric = metric
        self._metric_id = faiss.METRIC_L1 if metric == "l1" else faiss.METRIC_L2
        self.z32 = z32
        self._index = None

    @property
    def index(self):
        # Built on first search only: twin ranks use pairwise distances and need no index, and
        # the index holds a second copy of the vectors (large for pixel-space baselines).
        if self._index is None:
            index = self._faiss.IndexFlat(self.z32.shape[1], self._metric_id)
            index.add(self.z32)
            self._index = index
        return self._index

    def knn(self, q32: np.ndarray, k: int):
        # faiss returns squared distances for L2, as does our canonical L2.
        dist, idx = self.index.search(np.ascontiguousarray(q32), k)
        return dist.astype(np.float64), idx.astype(np.int64)

    def pairwise(self, q32: np.ndarray, start: int, stop: int) -> np.ndarray:
        return self._faiss.pairwise_distances(np.ascontiguousarray(q32), self.z32[start:stop],
                                              self._metric_id)

    def count_band(self, q32, lo, hi, c0, c1, qpos):
        return _count_band_numpy(self.pairwise(q32, c0, c1), lo, hi, c0, qpos)


class _TorchBackend:
    name = "torch"

    def __init__(self, z32: np.ndarray, metric: str, device=None):
        import torch

        self._torch = torch
        self.metric = metric
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.z = torch.from_numpy(z32).to(self.device)
        # On CPU the numpy band counter is faster; on a GPU counting stays on the device.
        # (Tests flip this to run the device path on CPU.)
        self.count_on_device = self.device.type != "cpu"

    def _dist(self, q, zc):
        torch = self._torch
        if self.metric == "l1":
            return torch.cdist(q, zc, p=1.0)
        # Direct differences (not the matrix-product expansion, and no TF32): relative error
        # stays within the bound the exact pass assumes.
        return torch.cdist(q, zc, p=2.0, compute_mode="donot_use_mm_for_euclid_dist") ** 2

    def knn(self, q32: np.ndarray, k: int):
        torch = self._torch
        q = torch.from_numpy(np.ascontiguousarray(q32)).to(self.device)
        n = self.z.shape[0]
        rows = max(1, DEFAULT_BLOCK_BYTES // (4 * max(q.shape[0], 1)))
        best_d = best_i = None
        for start in range(0, n, rows):
            d = self._dist(q, self.z[start:start + rows])
            kk = min(k, d.shape[1])
            vals, idx = torch.topk(d, kk, dim=1, largest=False)
            idx = idx + start
            if best_d is not None:
                vals = torch.cat([best_d, vals], 1)
                idx = torch.cat([best_i, idx], 1)
                vals, sel = torch.topk(vals, min(k, vals.shape[1]), dim=1, largest=False)
                idx = torch.gather(idx, 1, sel)
            best_d, best_i = vals, idx
        order = torch.argsort(best_d, dim=1)
        best_d = torch.gather(best_d, 1, order)
        best_i = torch.gather(best_i, 1, order)
        return best_d.double().cpu().numpy(), best_i.cpu().numpy().astype(np.int64)

    def pairwise(self, q32: np.ndarray, start: int, stop: int) -> np.ndarray:
        q = self._torch.from_numpy(np.ascontiguousarray(q32)).to(self.device)
        return self._dist(q, self.z[start:stop]).cpu().numpy()

    def count_band(self, q32, lo, hi, c0, c1, qpos):
        """As _count_band_numpy, on the torch device: only counts and the (few) doubtful
        indices travel back to the host, never the block of distances."""
        torch = self._torch
        if not self.count_on_device:
            return _count_band_numpy(self.pairwise(q32, c0, c1), lo, hi, c0, qpos)
        q = torch.from_numpy(np.ascontiguousarray(q32)).to(self.device)
        d = self._dist(q, self.z[c0:c1])
        lo_t = torch.from_numpy(lo).to(self.device)[:, None]
        hi_t = torch.from_numpy(hi).to(self.device)[:, None]
        self_in = (qpos >= c0) & (qpos < c1)
        rows_self = torch.from_numpy(np.flatnonzero(self_in)).to(self.device)
        cols_self = torch.from_numpy(qpos[self_in] - c0).to(self.device)
        d[rows_self, cols_self] = float("inf")  # the star itself: neither closer nor doubtful
        clear = d < lo_t
        counts = clear.sum(1)
        r, c = torch.nonzero((d <= hi_t) & ~clear, as_tuple=True)
        return counts.cpu().numpy().astype(np.int64), r.cpu().numpy(), c.cpu().numpy()


# --------------------------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------------------------
class TwinIndex:
    """Exact top-k L1 (or L2) neighbours and twin ranks over latents z [N, d].

    Parameters
    ----------
    z : array [N, d]
        Latents (any float dtype; stored as float32, and distances are defined exactly on those
        float32 values).
    metric : "l1" (default, as the paper) or "l2".
    backend : "auto", "faiss" or "torch". "auto" picks torch on a CUDA GPU when one is present,
        else faiss (CPU), else torch on CPU. Results are identical whichever runs.
    ids : optional array [N] of star ids (e.g. the dataset's ``star`` coordinate), for
        :meth:`position_of`; positions (0…N−1) are what :meth:`search` returns.
    device : torch device for the torch backend (default: CUDA if available, else CPU).
    block_bytes : memory budget of one block of float32 distances in the all-stars pass.
    """

    def __init__(self, z, metric: str = "l1", backend: str = "auto", *, ids=None, device=None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
        z32 = np.ascontiguousarray(np.asarray(z, dtype=np.float32))
        if z32.ndim != 2 or z32.shape[0] == 0 or z32.shape[1] == 0:
            raise TwinIndexError(f"z: expected a non-empty 2-D array [stars, latent], got shape {z32.shape}. "
                                 "Fix: pass the latents of at least one star")
        if not np.all(np.isfinite(z32)):
            bad = np.flatnonzero(~np.all(np.isfinite(z32), axis=1))
            raise TwinIndexError(f"z: {bad.size} stars have NaN/inf latents (first positions {bad[:5].tolist()}). "
                                 "Fix: drop them or check the spectra they were encoded from")
        metric = str(metric).lower()
        if metric not in METRICS:
            raise TwinIndexError(f"metric: unknown '{metric}'. Fix: use one of {METRICS}")
        if backend not in BACKENDS:
            raise TwinIndexError(f"backend: unknown '{backend}'. Fix: use one of {BACKENDS}")
        self.z32 = z32
        self.metric = metric
        self.n_stars, self.dim = z32.shape
        self.block_bytes = int(block_bytes)
        if ids is not None:
            ids = np.asarray(ids)
            if ids.shape != (self.n_stars,):
                raise TwinIndexError(f"ids: expected {self.n_stars} star ids, got shape {ids.shape}")
        self.ids = ids
        self._id_lookup = None
        self._backend = self._make_backend(backend, device)
        # Rounding bound of the float32 pass, relative to (distance + squared norms for L2):
        # |d32 − d| ≤ γ·(d + ‖q‖² + ‖z‖²). Generous (4× the textbook (d+2)u for summation of
        # d terms plus the difference), because it only decides what gets re-checked exactly.
        self._gamma = 4.0 * (self.dim + 4) * _U32
        self._sqnorm = (np.einsum("ij,ij->i", z32.astype(np.float64), z32.astype(np.float64))
                        if metric == "l2" else None)

    def _make_backend(self, backend: str, device):
        if backend == "auto":
            try:
                import torch

                if device is not None or torch.cuda.is_available():
                    if device is None or str(device).startswith("cuda"):
                        return _TorchBackend(self.z32, self.metric, device)
            except ImportError:
                pass
            try:
                return _FaissBackend(self.z32, self.metric)
            except ImportError:
                return _TorchBackend(self.z32, self.metric, device or "cpu")
        if backend == "faiss":
            try:
                return _FaissBackend(self.z32, self.metric)
            except ImportError as exc:
                raise TwinIndexError("backend: faiss is not installed. Fix: `pip install faiss-cpu` "
                                     "or use backend='torch'") from exc
        return _TorchBackend(self.z32, self.metric, device)

    @property
    def backend(self) -> str:
        """Name of the backend running the float32 pass ("faiss" or "torch")."""
        return self._backend.name

    def __len__(self) -> int:
        return self.n_stars

    def __repr__(self) -> str:
        return f"TwinIndex(n_stars={self.n_stars}, dim={self.dim}, metric='{self.metric}', backend='{self.backend}')"

    # ---- helpers -----------------------------------------------------------------------
    def position_of(self, star_id) -> int:
        """Position (row of z) of the star with id ``star_id``; needs ``ids``."""
        if self.ids is None:
            raise TwinIndexError("position_of: this index has no star ids. Fix: build it with "
                                 "TwinIndex(z, ids=dataset.star.values)")
        if self._id_lookup is None:
            self._id_lookup = {v: i for i, v in enumerate(self.ids.tolist())}
        try:
            return self._id_lookup[np.asarray(star_id).item()]
        except KeyError:
            raise TwinIndexError(f"star: no star with id {star_id!r} in this index of {self.n_stars} stars. "
                                 "Fix: use an id from the dataset's `star` coordinate") from None

    def _to_distance(self, canonical: np.ndarray) -> np.ndarray:
        return np.sqrt(canonical) if self.metric == "l2" else canonical

    # ---- top-k -------------------------------------------------------------------------
    def search(self, query, k: int = 10):
        """The k nearest stars to a query, exactly, sorted by (distance, position).

        query : int → the star at that position (it is excluded from its own neighbours);
            1-D array [d] → one latent vector; 2-D array [m, d] → m latent vectors.
        Returns (positions, distances): int64 and float64 arrays of shape [k] for one query,
        [m, k] for several (k is capped at the number of candidates). Distances are L1 (or
        Euclidean for L2) in latent units.
        """
        k = int(k)
        if k < 1:
            raise TwinIndexError(f"k: must be ≥ 1, got {k}")
        if isinstance(query, (int, np.integer)):
            pos = int(query)
            if not 0 <= pos < self.n_stars:
                raise TwinIndexError(f"query: star position {pos} out of range 0…{self.n_stars - 1}. "
                                     "Fix: use TwinIndex.position_of(star_id) for star ids")
            idx, dist = self._search(self.z32[pos:pos + 1], k, exclude=np.array([pos]))
            return idx[0], dist[0]
        q = np.asarray(query, dtype=np.float32)
        single = q.ndim == 1
        q = np.atleast_2d(q)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise TwinIndexError(f"query: expected a latent vector of length {self.dim} (or [m, {self.dim}]), "
                                 f"got shape {np.shape(query)}")
        if not np.all(np.isfinite(q)):
            raise TwinIndexError("query: contains NaN/inf")
        idx, dist = self._search(np.ascontiguousarray(q), k, exclude=None)
        return (idx[0], dist[0]) if single else (idx, dist)

    def _search(self, q32: np.ndarray, k: int, exclude):
        m = q32.shape[0]
        k = min(k, self.n_stars - (1 if exclude is not None else 0))
        out_i = np.empty((m, k), dtype=np.int64)
        out_d = np.empty((m, k), dtype=np.float64)
        kprime0 = min(self.n_stars, max(2 * k + 16, k + 1 + (exclude is not None)))
        # Queries per batch, so the float64 candidate block stays near 64 MiB.
        rows = max(1, (64 * 2**20) // (8 * kprime0 * self.dim))
        for a in range(0, m, rows):
            sel = np.arange(a, min(m, a + rows))
            self._search_rows(q32, sel, k, kprime0, exclude, out_i, out_d)
        return out_i, out_d

    def _search_rows(self, q32, todo, k, kprime, exclude, out_i, out_d):
        q64 = q32[todo].astype(np.float64)
        q_sq = np.einsum("ij,ij->i", q64, q64) if self.metric == "l2" else np.zeros(todo.size)
        z_sq_max = float(self._sqnorm.max()) if self.metric == "l2" else 0.0
        while todo.size:
            approx, cand = self._backend.knn(q32[todo], kprime)
            valid = cand >= 0
            if exclude is not None:
                valid &= cand != exclude[todo][:, None]
            safe = np.where(valid, cand, 0)
            t, kp = cand.shape
            d64 = _canonical_pairs(q32[todo], np.repeat(np.arange(t), kp), self.z32, safe.ravel(),
                                   self.metric).reshape(t, kp)
            d64[~valid] = np.inf
            # Sort by (canonical distance, position); invalid slots last.
            order = np.lexsort((np.where(valid, cand, np.iinfo(np.int64).max), d64), axis=1)[:, :k]
            best_d = np.take_along_axis(d64, order, axis=1)
            best_i = np.take_along_axis(cand, order, axis=1)
            if kprime >= self.n_stars:
                complete = np.ones(t, dtype=bool)
            else:
                # Stars not fetched have float32 distance ≥ the largest fetched one, so their
                # canonical distance is at least that minus the rounding bound.
                f_max = approx[:, -1]
                tol = self._gamma * (f_max + q_sq + z_sq_max) + 1e-300
                complete = f_max - tol > best_d[:, -1]
            out_i[todo[complete]] = best_i[complete]
            out_d[todo[complete]] = self._to_distance(best_d[complete])
            todo, q64, q_sq = todo[~complete], q64[~complete], q_sq[~complete]
            kprime = min(self.n_stars, 4 * kprime)

    # ---- all-stars twin ranks -----------------------------------------------------------
    def twin_distances(self, groups) -> tuple[np.ndarray, np.ndarray]:
        """Each star's nearest group-mate: (positions, distances) [N]; −1 and inf where a star
        has no group-mate (group −1 or a group of one). Distances in latent units."""
        twin_pos, twin_c = self._twin_canonical(groups)
        return twin_pos, self._to_distance(twin_c)

    def _twin_canonical(self, groups, rows=None):
        groups = np.asarray(groups)
        if groups.shape != (self.n_stars,):
            raise TwinIndexError(f"groups: expected {self.n_stars} group ids (one per star), got shape "
                                 f"{groups.shape}. Fix: pass the dataset's `group` variable")
        i, j = group_twin_pairs(groups)
        if rows is not None:  # only the twins of these stars are needed
            wanted = np.zeros(self.n_stars, dtype=bool)
            wanted[rows] = True
            keep = wanted[i]
            i, j = i[keep], j[keep]
        twin_c = np.full(self.n_stars, np.inf)
        twin_pos = np.full(self.n_stars, -1, dtype=np.int64)
        if i.size:
            d = _canonical_pairs(self.z32, i, self.z32, j, self.metric)
            # Closest group-mate; among equal distances the lowest position (deterministic).
            order = np.lexsort((j, d, i))
            i, j, d = i[order], j[order], d[order]
            first = np.r_[True, i[1:] != i[:-1]]
            twin_c[i[first]] = d[first]
            twin_pos[i[first]] = j[first]
        return twin_pos, twin_c

    def twin_ranks(self, groups, queries=None) -> np.ndarray:
        """Twin rank of every star (or of the stars at positions ``queries``).

        groups : int array [N], stars of the same chemistry share an id; −1 = unknown.
        rank = 1 + the number of *other* stars strictly closer to the star than its nearest
        group-mate (SCIENCE.md §2; for pairs the group-mate is the twin, for larger groups it is
        the closest group-mate). Other group-mates count like any star. Ties never count as
        closer, so equal distances cannot move a rank. Stars without a group-mate get rank −1.

        Memory: one block of float32 distances of at most ``block_bytes`` at a time.
        """
        if queries is None:
            queries = np.arange(self.n_stars)
        queries = np.asarray(queries, dtype=np.int64).reshape(-1)
        if queries.size and (queries.min() < 0 or queries.max() >= self.n_stars):
            raise TwinIndexError(f"queries: positions must lie in 0…{self.n_stars - 1}")
        _, twin_c = self._twin_canonical(groups, rows=queries)
        ranks = np.full(queries.size, -1, dtype=np.int64)
        has_twin = np.isfinite(twin_c[queries])
        active = np.flatnonzero(has_twin)
        n = self.n_stars
        rows = max(1, min(active.size, self.block_bytes // (4 * n))) if active.size else 1
        cols = n if rows > 1 or self.block_bytes // 4 >= n else max(1, self.block_bytes // 4)
        for a in range(0, active.size, rows):
            sel = active[a:a + rows]
            qpos = queries[sel]
            counts = np.zeros(sel.size, dtype=np.int64)
            for c0 in range(0, n, cols):
                c1 = min(n, c0 + cols)
                counts += self._count_closer(qpos, twin_c[qpos], c0, c1)
            ranks[sel] = 1 + counts
        return ranks

    def _count_closer(self, qpos, thresh, c0, c1) -> np.ndarray:
        """Per query: stars in [c0, c1), other than itself, with canonical distance < thresh."""
        # Per-row band [lo, hi] outside which the float32 value is on the same side of the
        # threshold as the canonical one: |d32 − d| ≤ γ·(d + ‖q‖² + max‖z‖²) solved for d32.
        g = self._gamma
        extra = (self._sqnorm[qpos] + self._sqnorm[c0:c1].max()) if self.metric == "l2" else 0.0
        lo = (thresh - g * (thresh + extra)).astype(np.float32)
        hi = ((thresh + g * extra) / (1.0 - g)).astype(np.float32)
        # float32 rounding of the band edges themselves: widen by one ulp each way.
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
        counts, r, c = self._backend.count_band(self.z32[qpos], lo, hi, c0, c1, qpos)
        if r.size:
            # Re-decide the doubtful ones with the canonical float64 distance.
            d64 = _canonical_pairs(self.z32, qpos[r], self.z32, c0 + c, self.metric)
            np.add.at(counts, r[d64 < thresh[r]], 1)
        return counts
