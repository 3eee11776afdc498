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
canonical distances at most the twin's (ties count against the star), which is exact:
backends agree bit for bit.

Distances are in the latent's own units (L1: sum of |Δz|; L2: Euclidean norm of Δz).
"""
from __future__ import annotations


import numpy as np

from twinviz.twins.groups import group_twin_pairs
from twinviz.twins.backends import DEFAULT_BLOCK_BYTES, FaissBackend, TorchBackend, canonical_pairs

__all__ = ["TwinIndex", "TwinIndexError"]

METRICS = ("l1", "l2")
BACKENDS = ("auto", "faiss", "torch")
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24  # unit roundoff of float32


class TwinIndexError(ValueError):
    """Latents, groups or a query that the twin search cannot use; the message says which
    argument is wrong and how to fix it."""


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
        self._gamma = 4.0 * (self.dim + 4) * FLOAT32_UNIT_ROUNDOFF
        self._sqnorm = (np.einsum("ij,ij->i", z32.astype(np.float64), z32.astype(np.float64))
                        if metric == "l2" else None)

    def _make_backend(self, backend: str, device):
        if backend == "auto":
            try:
                import torch

                if device is not None or torch.cuda.is_available():
                    if device is None or str(device).startswith("cuda"):
                        return TorchBackend(self.z32, self.metric, device)
            except ImportError:
                pass
            try:
                return FaissBackend(self.z32, self.metric)
            except ImportError:
                return TorchBackend(self.z32, self.metric, device or "cpu")
        if backend == "faiss":
            try:
                return FaissBackend(self.z32, self.metric)
            except ImportError as exc:
                raise TwinIndexError("backend: faiss is not installed. Fix: `pip install faiss-cpu` "
                                     "or use backend='torch'") from exc
        return TorchBackend(self.z32, self.metric, device)

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
            d64 = canonical_pairs(q32[todo], np.repeat(np.arange(t), kp), self.z32, safe.ravel(),
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

    def twin_of(self, groups, position: int) -> tuple[int, float]:
        """One star's nearest group-mate: (position, distance), (−1, inf) when it has none."""
        twin_pos, twin_c = self._twin_canonical(groups, rows=[int(position)])
        return int(twin_pos[position]), float(self._to_distance(twin_c[position:position + 1])[0])

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
            d = canonical_pairs(self.z32, i, self.z32, j, self.metric)
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
        rank = 1 + the number of other stars, the twin excluded, at a distance ≤ the twin's
        (docs/science.md, Metrics; for pairs the twin is the group-mate, for larger groups it is
        the closest group-mate, and the other group-mates count like any star). Ties count
        *against* the star: a collapsed latent (all z equal) gives every star rank N − 1, never
        rank 1. Stars without a group-mate get rank −1.

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
                counts += self._count_at_most(qpos, twin_c[qpos], c0, c1)
            # counts include the twin itself (its distance equals the threshold): it is the
            # "1 +" of the definition.
            ranks[sel] = counts
        return ranks

    def _count_at_most(self, qpos, thresh, c0, c1) -> np.ndarray:
        """Per query: stars in [c0, c1), other than itself, with canonical distance ≤ thresh."""
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
            d64 = canonical_pairs(self.z32, qpos[r], self.z32, c0 + c, self.metric)
            np.add.at(counts, r[d64 <= thresh[r]], 1)
        return counts
