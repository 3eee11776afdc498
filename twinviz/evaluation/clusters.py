"""Cluster recovery: density-based clustering (scikit-learn's HDBSCAN) of per-star vectors — the
fader latent z, a baseline representation, the true abundances — scored against the true
chemistry groups (docs/clusters.md).

Scores (Price-Jones & Bovy 2019 used the first three):

* homogeneity — each found cluster holds stars of one true group only;
* completeness — each true group ends up in one found cluster;
* V-measure — their harmonic mean;
* recovered fraction — of the true groups with at least ``min_cluster_size`` members (the ones
  the clustering can find at all), those for which some found cluster is more than half made of
  the group's stars *and* holds more than half of the group.

Stars HDBSCAN calls noise (label −1) each count as a cluster of their own, and field stars are
groups of one (twinviz.spectra.clusters), so a field star left as noise is scored as right, and a
noise label never merges unrelated stars. Stars of unknown group (−1) are left out of the scores.
Without any true group of two or more stars the group scores are absent (None), not zero.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClusterResult", "PRECOMPUTED_MAX_STARS", "cluster_scores", "find_clusters", "score_representation"]

# Up to this many stars the L1 distances are computed once (float32, torch) and handed to HDBSCAN as a
# matrix; scikit-learn's own manhattan search is far slower on high-dimensional vectors.
PRECOMPUTED_MAX_STARS = 6000
LABELS = {"fader": "fader latent z", "polynomial_pca": "polynomial residuals on principal components",
          "polynomial": "polynomial residuals (pixel space)", "oracle": "true abundances (oracle)"}


@dataclass
class ClusterResult:
    """One representation's clustering and its scores (group scores None when absent)."""

    key: str
    label: str
    dim: int
    labels: np.ndarray = field(repr=False)
    n_clusters: int = 0
    noise_fraction: float = 0.0
    homogeneity: float | None = None
    completeness: float | None = None
    v_measure: float | None = None
    recovered_fraction: float | None = None
    n_groups_scored: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("key", "label", "dim", "n_clusters", "noise_fraction", "homogeneity",
                                              "completeness", "v_measure", "recovered_fraction",
                                              "n_groups_scored", "seconds")}


def _l1_matrix(x: np.ndarray) -> np.ndarray:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    rows = max(1, (64 * 2**20) // (4 * max(t.shape[0], 1)))
    out = np.empty((t.shape[0], t.shape[0]), dtype=np.float64)
    for a in range(0, t.shape[0], rows):
        out[a:a + rows] = torch.cdist(t[a:a + rows], t, p=1.0).numpy()
    np.fill_diagonal(out, 0.0)
    return out


def find_clusters(vectors, *, min_cluster_size: int = 5, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN labels [N] (−1 = noise) of vectors [N, d] under the L1 distance (as twins use)."""
    from sklearn.cluster import HDBSCAN

    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"vectors: expected [stars ≥ 2, dims], got shape {x.shape}. Fix: cluster at least two stars")
    if x.shape[0] <= min_cluster_size:
        return np.full(x.shape[0], -1, dtype=np.int64)
    kw = dict(min_cluster_size=int(min_cluster_size), min_samples=min_samples, copy=True)
    if x.shape[0] <= PRECOMPUTED_MAX_STARS:
        return HDBSCAN(metric="precomputed", **kw).fit_predict(_l1_matrix(x)).astype(np.int64)
    return HDBSCAN(metric="manhattan", **kw).fit_predict(x).astype(np.int64)


def cluster_scores(groups, labels, min_cluster_size: int = 5) -> dict | None:
    """Homogeneity, completeness, V-measure and recovered fraction (module docstring), or None
    when no true group has two or more stars of known group."""
    from sklearn.metrics import homogeneity_completeness_v_measure

    groups, labels = np.asarray(groups, np.int64), np.asarray(labels, np.int64)
    known = groups >= 0
    groups, labels = groups[known], labels[known]
    _, true_ids, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if sizes.size == 0 or sizes.max() < 2:
        return None
    # noise → a cluster of its own per star (ids beyond every real cluster id)
    noise = labels < 0
    found = labels.copy()
    found[noise] = labels.max(initial=-1) + 1 + np.arange(np.count_nonzero(noise))
    h, c, v = homogeneity_completeness_v_measure(true_ids, found)
    scored = np.flatnonzero(sizes >= max(2, min_cluster_size))
    recovered = 0
    if scored.size and (~noise).any():
        _, found_ids, found_sizes = np.unique(found, return_inverse=True, return_counts=True)
        overlap = np.zeros((sizes.size, found_sizes.size), dtype=np.int64)
        np.add.at(overlap, (true_ids, found_ids), 1)
        ok = (2 * overlap > sizes[:, None]) & (2 * overlap > found_sizes[None, :]) & (found_sizes[None, :] > 1)
        recovered = int(np.count_nonzero(ok[scored].any(axis=1)))
    return {"homogeneity": float(h), "completeness": float(c), "v_measure": float(v),
            "recovered_fraction": float(recovered / scored.size) if scored.size else None,
            "n_groups_scored": int(scored.size)}


def score_representation(key: str, vectors, groups, *, min_cluster_size: int = 5,
                         min_samples: int | None = None, label: str | None = None) -> ClusterResult:
    """Cluster ``vectors`` and score the clusters against ``groups`` (None groups: no scores)."""
    t0 = time.perf_counter()
    labels = find_clusters(vectors, min_cluster_size=min_cluster_size, min_samples=min_samples)
    result = ClusterResult(key=key, label=label or LABELS.get(key, key), dim=int(np.shape(vectors)[1]),
                           labels=labels, n_clusters=int(np.unique(labels[labels >= 0]).size),
                           noise_fraction=float(np.mean(labels < 0)))
    scores = None if groups is None else cluster_scores(groups, labels, min_cluster_size)
    for name, value in (scores or {}).items():
        setattr(result, name, value)
    result.seconds = time.perf_counter() - t0
    return result
