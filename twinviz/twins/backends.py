"""Distance machinery behind :class:`twinviz.twins.index.TwinIndex`.

* the *canonical* distance — float64 arithmetic on float32 latents, summed over dimensions in a
  fixed order — the one definition every backend defers to;
* approximate float32 backends (faiss on CPU, torch on CPU or GPU) that propose candidates and
  count clear cases fast, in blocks of bounded memory.
"""
from __future__ import annotations

import numpy as np

# Bytes of float32 distances one block of the approximate pass may hold (queries × stars);
# the peak is about three times this (distances plus two boolean masks).
DEFAULT_BLOCK_BYTES = 64 * 2**20

# --------------------------------------------------------------------------------------------
# canonical distances: the single definition all backends defer to
# --------------------------------------------------------------------------------------------
def canonical(a64: np.ndarray, b64: np.ndarray, metric: str) -> np.ndarray:
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


def canonical_pairs(a32: np.ndarray, ia: np.ndarray, b32: np.ndarray, ib: np.ndarray, metric: str,
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
        out[s:s + step] = canonical(a, b, metric)
    return out


def count_band_numpy(approx: np.ndarray, lo, hi, c0: int, qpos: np.ndarray):
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
class FaissBackend:
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
        return count_band_numpy(self.pairwise(q32, c0, c1), lo, hi, c0, qpos)


class TorchBackend:
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
        """As count_band_numpy, on the torch device: only counts and the (few) doubtful
        indices travel back to the host, never the block of distances."""
        torch = self._torch
        if not self.count_on_device:
            return count_band_numpy(self.pairwise(q32, c0, c1), lo, hi, c0, qpos)
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
