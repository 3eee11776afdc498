"""The information limit: how well *any* method could find twins in a set of synthetic spectra.

With the forward model F(θ; Teff, logg, ν) of the built-in synthesizer (θ the chemistry, ν the
per-star nuisances) and per-pixel noise σ, the Fisher information of one star is

    J = Σ_pixels (∂F/∂φ)(∂F/∂φ)ᵀ / σ²,   φ = (θ, ν),

summed over its good pixels (mask False). The Cramér–Rao bound says no unbiased estimate of φ has a
covariance below J⁻¹; the nuisances are *marginalised* by taking the chemistry block of the full
inverse, (J_θθ − J_θν J_νν⁺ J_νθ)⁻¹ (the pseudo-inverse: a nuisance the spectrum does not feel,
e.g. a macroturbulence of 0, adds nothing). Teff and logg are taken as known. The "limit" row then
draws each star's chemistry estimate θ̂ ~ N(θ, C) and ranks twins by the Mahalanobis distance
(θ̂ᵢ − θ̂ⱼ)ᵀ(Cᵢ + Cⱼ)⁻¹(θ̂ᵢ − θ̂ⱼ): an efficient estimator's ranks. Noiseless data give C = 0, so
every twin ranks first (100 %). What it assumes is in docs/model.md ("The information limit").

θ are the coordinates of ([Fe/H], [X/Fe]…) along the directions in which the chemistry of the set
varies (:func:`chemistry_basis`: two for the ``low-d`` chemistry, eighteen for ``independent``).
Derivatives are central finite differences of the synthesizer (the continuum error, a product,
analytically). Only for data made by ``twinviz simulate`` (pair sets), whole and in their own
order: the nuisances are redrawn from the dataset's seed and preset (``attrs``) exactly as the
simulation drew them, which a subset or a reordered set would not match.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["CHEM_STEP", "InformationLimit", "chemistry_basis", "chemistry_covariance", "information_limit",
           "limit_scores", "mahalanobis_ranks"]

CHEM_STEP = 0.02                                   # dex, along each chemistry direction
NUISANCE_STEP = {"vmicro": 0.05, "vbroad": 0.25, "rv": 0.1}  # km/s
EPS = 1e-30                                        # added to Cᵢ + Cⱼ so that C = 0 (noiseless) ranks by |Δθ|


class InformationError(ValueError):
    """Data the information limit cannot be computed for; the message says why and the fix."""


def chemistry_basis(fe_h, x_fe, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(centre [L], basis [L, k]) of the labels (fe_h, x_fe…) [N, L]: the principal directions with a
    singular value above ``tol`` × the largest (the directions in which the chemistry varies)."""
    labels = np.concatenate([np.asarray(fe_h, np.float64)[:, None], np.asarray(x_fe, np.float64)], axis=1)
    centre = labels.mean(axis=0)
    _, sv, vt = np.linalg.svd(labels - centre, full_matrices=False)
    return centre, vt[: int((sv > sv[0] * tol).sum())].T


def chemistry_covariance(fisher: np.ndarray, n_chem: int) -> np.ndarray:
    """[n, k, k] chemistry block of the inverse of each star's Fisher matrix [n, p, p] (the first
    ``n_chem`` parameters are the chemistry, the rest nuisances, marginalised)."""
    fisher = np.asarray(fisher, np.float64)
    a, b, d = fisher[:, :n_chem, :n_chem], fisher[:, :n_chem, n_chem:], fisher[:, n_chem:, n_chem:]
    schur = a - b @ np.linalg.pinv(d, hermitian=True) @ np.swapaxes(b, 1, 2) if d.shape[1] else a
    return np.linalg.inv(schur)


@dataclass
class InformationLimit:
    """Per-star chemistry θ [N, k] (coordinates along ``basis`` about ``centre``) and its Cramér–Rao
    covariance [N, k, k] (zeros for noiseless data); ``info``: what was assumed (JSON)."""

    theta: np.ndarray
    covariance: np.ndarray
    centre: np.ndarray
    basis: np.ndarray
    info: dict

    def estimates(self, seed: int) -> np.ndarray:
        """θ̂ ~ N(θ, C) per star, seeded [N, k]."""
        rng = np.random.default_rng([int(seed), 25])
        k = self.theta.shape[1]
        root = np.linalg.cholesky(self.covariance + EPS * np.eye(k))
        return self.theta + np.einsum("nab,nb->na", root, rng.standard_normal(self.theta.shape))


def _per_star_nuisances(ds: xr.Dataset):
    """The simulation's nuisances and their per-star draws, redrawn from the dataset's attrs."""
    from twinviz.spectra.nuisances import Nuisances, draw_nuisances

    attrs = ds.attrs
    if attrs.get("generator") != "twinviz.synth" or "seed" not in attrs:
        raise InformationError(f"{ds.encoding.get('source', '<dataset>')}: attrs: not made by `twinviz simulate` "
                               "(no generator/seed), so the forward model and the nuisances are unknown. Fix: "
                               "compute the information limit on simulated data")
    if "n_clusters" in attrs:
        raise InformationError("cluster sets draw their labels differently; the limit is for pair sets")
    fields = {k: float(attrs.get(f"nuisance_{k}", 0.0)) for k in ("vmicro_scatter", "vbroad", "rv_scatter",
                                                                  "continuum_error")}
    nuisances = Nuisances(**fields, masks=bool(attrs.get("nuisance_masks", 0)))
    return nuisances, draw_nuisances(ds.sizes["star"], nuisances, int(attrs["seed"]), logg=ds["logg"].values)


def _fisher_chunk(synth, labels, per, sl, basis, continuum_basis, weight) -> np.ndarray:
    """[n, p, p] Fisher matrices of the stars ``sl``: chemistry, then the nuisances that are on."""
    from twinviz.spectra.nuisances import continuum_factor

    teff, logg, lab = labels["teff"][sl], labels["logg"][sl], labels["chem"][sl]
    extra = {k: None if per[k] is None else per[k][sl] for k in ("vmicro", "vbroad", "rv")}

    def spectra(chem=lab, **change):
        kw = {**extra, **change}
        return synth.batch(teff, logg, chem[:, 0], chem[:, 1:], **kw).astype(np.float64)

    columns = []
    for direction in basis.T:
        columns.append((spectra(lab + CHEM_STEP * direction) - spectra(lab - CHEM_STEP * direction))
                       / (2 * CHEM_STEP))
    for name, step in NUISANCE_STEP.items():
        if extra[name] is None:
            continue
        hi, lo = extra[name] + step, extra[name] - step
        if name == "vbroad":
            lo = np.maximum(lo, 0.0)
        columns.append((spectra(**{name: hi}) - spectra(**{name: lo})) / (hi - lo)[:, None])
    if per["continuum"] is not None:
        factor = continuum_factor(synth.wavelength, per["continuum"][sl]).astype(np.float64)
        base = spectra()
        columns = [c * factor for c in columns] + [base * p[None, :] for p in continuum_basis]
    d = np.stack(columns, axis=2)  # [n, P, p]
    return np.einsum("npa,np,npb->nab", d, weight[sl], d)


def information_limit(ds: xr.Dataset, *, basis=None, chunk: int = 64, progress=None) -> InformationLimit:
    """The Cramér–Rao chemistry covariance of every star of the simulated set ``ds`` (module
    docstring). ``basis``: (centre, basis) of the chemistry directions (default: those of ``ds``)."""
    from twinviz.spectra.nuisances import CHIPS, CONTINUUM_ORDER
    from twinviz.spectra.synth import Synthesizer

    nuisances, per = _per_star_nuisances(ds)
    centre, basis = chemistry_basis(ds["fe_h"].values, ds["x_fe"].values) if basis is None else basis
    chem = np.concatenate([ds["fe_h"].values[:, None], ds["x_fe"].values], axis=1).astype(np.float64)
    theta = (chem - centre) @ basis
    n, k = theta.shape
    info = {"chemistry_directions": int(k), "teff_logg": "known", "step_dex": CHEM_STEP,
            "nuisances_marginalised": [name for name, on in (("vmicro", per["vmicro"]), ("vbroad", per["vbroad"]),
                                                             ("rv", per["rv"]), ("continuum", per["continuum"]))
                                       if on is not None], "masked_pixels": "left out"}
    if "flux_err" not in ds:
        info["noise"] = "none: the chemistry is known exactly (covariance 0)"
        return InformationLimit(theta, np.zeros((n, k, k)), centre, basis, info)
    sigma = np.asarray(ds["flux_err"].values, np.float64)
    good = np.isfinite(sigma) & (sigma > 0)
    if "mask" in ds:
        good &= ~np.asarray(ds["mask"].values, bool)
    weight = np.where(good, 1.0 / np.where(good, sigma, 1.0) ** 2, 0.0)
    from twinviz.spectra.grid import identify_grid

    synth = Synthesizer(identify_grid(ds["wavelength"].values))
    continuum_basis = []
    if per["continuum"] is not None:
        from twinviz.spectra.nuisances import continuum_factor

        for c in range(len(CHIPS)):
            for j in range(CONTINUUM_ORDER + 1):
                one = np.zeros((1, len(CHIPS), CONTINUUM_ORDER + 1))
                one[0, c, j] = 1.0
                continuum_basis.append(continuum_factor(synth.wavelength, one)[0].astype(np.float64) - 1.0)
    labels = {"teff": ds["teff"].values.astype(np.float64), "logg": ds["logg"].values.astype(np.float64),
              "chem": chem}
    covariance = np.empty((n, k, k))
    for a in range(0, n, chunk):
        sl = slice(a, min(a + chunk, n))
        covariance[sl] = chemistry_covariance(_fisher_chunk(synth, labels, per, sl, basis, continuum_basis, weight), k)
        if progress:
            progress(sl.stop, n)
    info["noise"] = "flux_err per pixel"
    return InformationLimit(theta, covariance, centre, basis, info)


def _mahalanobis(theta, cov, i, j) -> np.ndarray:
    k = theta.shape[1]
    delta = theta[i] - theta[j]
    s = cov[i] + cov[j] + EPS * np.eye(k)
    return np.einsum("na,na->n", delta, np.linalg.solve(s, delta[:, :, None])[:, :, 0])


def mahalanobis_ranks(theta, cov, groups, queries=None, block: int = 16) -> np.ndarray:
    """Twin ranks [len(queries)] under (θ̂ᵢ − θ̂ⱼ)ᵀ(Cᵢ + Cⱼ)⁻¹(θ̂ᵢ − θ̂ⱼ): 1 + the other stars (the
    closest group-mate excluded) at a distance ≤ the closest group-mate's; −1 without a twin."""
    groups = np.asarray(groups, np.int64)
    n = groups.size
    queries = np.arange(n) if queries is None else np.asarray(queries, np.int64)
    ranks = np.full(queries.size, -1, dtype=np.int64)
    everyone = np.arange(n)
    for a in range(0, queries.size, block):
        q = queries[a:a + block]
        i, j = np.repeat(q, n), np.tile(everyone, q.size)
        d = _mahalanobis(theta, cov, i, j).reshape(q.size, n)
        d[np.arange(q.size), q] = np.inf  # not oneself
        mates = (groups[None, :] == groups[q][:, None]) & (groups[q][:, None] >= 0)
        mates[np.arange(q.size), q] = False
        twin = np.where(mates, d, np.inf).min(axis=1)
        has = mates.any(axis=1)
        ranks[a:a + block] = np.where(has, (d <= twin[:, None]).sum(axis=1), -1)  # the twin counts itself: 1 +
    return ranks


def limit_scores(limit: InformationLimit, groups, *, seeds=(0, 1, 2), queries=None) -> list[dict]:
    """The limit row for each draw seed: {seed, rank1, within_0p1, within_1, doppelganger_rate}."""
    from twinviz.twins.ranks import doppelganger_rate, rank_fractions

    groups = np.asarray(groups, np.int64)
    rows = []
    for seed in seeds:
        theta = limit.estimates(seed)
        f = rank_fractions(mahalanobis_ranks(theta, limit.covariance, groups, queries), groups.size)
        d = doppelganger_rate(None, groups, distance=lambda i, j: _mahalanobis(theta, limit.covariance, i, j))
        rows.append({"seed": int(seed), "rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1,
                     "doppelganger_rate": d.rate})
    return rows
