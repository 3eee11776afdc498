"""2-D maps of latents for the app's latent map: PCA and UMAP.

Both return float32 arrays [N, 2] and are stored in a latent dataset as ``pca(star, axis)`` and
``umap(star, axis)`` by :func:`add_projections`, with their parameters in the variable's attrs.

UMAP parameters (defaults, all recorded):
  n_neighbors = 15   size of the local neighbourhood (larger → more global structure)
  min_dist    = 0.1  how tightly points may pack in the map
  metric      = "manhattan"  L1, the distance twins are found with
  seed        = 0    ``random_state``; with a seed umap-learn runs single-threaded and the map is
                     reproducible on the same machine and library versions
  fit_stars   = 200 000  above this many stars the map is fitted on a seeded random subset and
                     the rest are placed with ``transform`` (memory and time stay bounded)
umap-learn compiles its numba kernels on first use in a process (≈ 20–60 s); keep it out of
request paths — compute once (``twinviz embed``) and reuse the stored map.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["UMAP_DEFAULTS", "pca_projection", "umap_projection", "add_projections"]

UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "manhattan", "seed": 0, "fit_stars": 200_000}


def pca_projection(z, n_components: int = 2):
    """Principal-component map of z [N, d] by SVD of the centred latents.

    Returns (coords [N, n_components] float32, components [n_components, d], explained variance
    ratio [n_components]). Each component's sign is fixed so its largest-|loading| entry is
    positive, so the map does not flip between runs.
    """
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, vt.shape[0])
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    coords = centred @ comps.T
    if k < n_components:  # fewer latent dims than requested axes: pad with zeros
        coords = np.pad(coords, ((0, 0), (0, n_components - k)))
        comps = np.pad(comps, ((0, n_components - k), (0, 0)))
        s = np.pad(s, (0, n_components - k))
    var = s ** 2
    ratio = var[:n_components] / var.sum() if var.sum() > 0 else np.zeros(n_components)
    return coords.astype(np.float32), comps, ratio


def umap_projection(z, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "manhattan",
                    seed: int | None = 0, fit_stars: int = 200_000) -> np.ndarray:
    """UMAP map [N, 2] float32 of z [N, d] (parameters: module docstring).

    With N ≤ ``fit_stars`` the map is fitted on all stars; above, on a random subset drawn with
    ``seed`` and the others are placed with ``transform``.
    """
    import umap

    z = np.asarray(z, dtype=np.float32)
    n = z.shape[0]
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                        metric=metric, random_state=seed, init="spectral" if n > 10 else "random",
                        # A seed forces one thread anyway; saying so avoids umap's warning.
                        **({"n_jobs": 1} if seed is not None else {}))
    if n <= fit_stars:
        return reducer.fit_transform(z).astype(np.float32)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, size=fit_stars, replace=False))
    out = np.empty((n, 2), dtype=np.float32)
    out[fit] = reducer.fit_transform(z[fit])
    rest = np.setdiff1d(np.arange(n), fit)
    for start in range(0, rest.size, 100_000):
        sel = rest[start:start + 100_000]
        out[sel] = reducer.transform(z[sel])
    return out


def add_projections(latents: xr.Dataset, methods=("pca", "umap"), **umap_params) -> xr.Dataset:
    """Return ``latents`` with ``pca(star, axis)`` and/or ``umap(star, axis)`` added.

    umap_params override :data:`UMAP_DEFAULTS` (n_neighbors, min_dist, metric, seed, fit_stars).
    """
    unknown = set(methods) - {"pca", "umap"}
    if unknown:
        raise ValueError(f"unknown projections {sorted(unknown)}; choose from pca, umap")
    bad = set(umap_params) - set(UMAP_DEFAULTS)
    if bad:
        raise ValueError(f"unknown UMAP parameters {sorted(bad)}; known: {sorted(UMAP_DEFAULTS)}")
    z = latents["z"].values
    out = latents.assign_coords(axis=np.arange(2, dtype=np.int64))
    if "pca" in methods:
        coords, comps, ratio = pca_projection(z, 2)
        out["pca"] = (("star", "axis"), coords, {
            "long_name": "PCA of z", "explained_variance_ratio": ratio.astype(np.float64),
            "method": "SVD of the centred latents"})
    if "umap" in methods:
        params = {**UMAP_DEFAULTS, **umap_params}
        coords = umap_projection(z, **params)
        attrs = {"long_name": "UMAP of z", **{k: (v if v is not None else "none") for k, v in params.items()}}
        try:
            import umap as umap_module

            attrs["umap_version"] = umap_module.__version__
        except (ImportError, AttributeError):
            pass
        out["umap"] = (("star", "axis"), coords, attrs)
    return out
