"""The twin-supervised pixel baseline: polynomial-PCA residuals ranked in a twin metric.

The fader network's twin metric (twinviz/twins/metric.py) learns from the *training* twins which
directions of z separate chemistries. A fair peer for it is the same supervision given to the
pixel-space baseline, so that a comparison measures the network and not the supervision:

1. per pixel, a least-squares polynomial of total degree ``poly_degree`` in (Teff, logg) fitted
   on the **training** stars (not on the evaluated set, unlike the unsupervised baselines);
2. the training residuals' ``n_components`` leading principal components;
3. a twin metric on those components, with the same Teff/logg interaction degrees and sizes as
   the fader network's, fitted on the training twins;
4. the polynomial degree, the interaction degree and the number of axes chosen on the
   **validation** twins by rank 1 (then ≤ 1 %).

The evaluated (test) set is only transformed: nothing is fitted on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["PolynomialPcaMetric", "fit_polynomial_pca_metric", "POLY_DEGREES", "N_COMPONENTS"]

POLY_DEGREES = (2, 3)
N_COMPONENTS = 64


@dataclass
class PolynomialPcaMetric:
    poly_degree: int
    center: np.ndarray      # [2] Teff, logg of the training stars
    scale: np.ndarray       # [2]
    coef: np.ndarray        # [m, P] float32 per-pixel polynomial coefficients
    pca_mean: np.ndarray    # [P] float32
    components: np.ndarray  # [k, P] float32
    metric: object          # TwinMetric on the components
    info: dict

    def components_of(self, ds: xr.Dataset) -> np.ndarray:
        from twinviz.evaluation.baselines import _clean_flux

        return _components(*_clean_flux(ds), _design(ds, self.poly_degree, self.center, self.scale), self.coef,
                           self.pca_mean, self.components)

    def vectors(self, ds: xr.Dataset) -> np.ndarray:
        """[N, dims] float32: the stars of ``ds`` in the fitted metric."""
        return self.metric.project(self.components_of(ds), ds["teff"].values, ds["logg"].values)


def _design(ds, degree, center, scale):
    from twinviz.evaluation.baselines import polynomial_design

    return polynomial_design(ds["teff"].values, ds["logg"].values, degree, center, scale)


def _components(flux, bad, design, coef, mean, components, step=8192):
    """[N, k] float32: cleaned ``flux`` (``bad`` pixels zeroed after the fit) minus its polynomial
    ``design @ coef``, projected on ``components`` about ``mean``, ``step`` stars at a time."""
    design = design.astype(np.float32)
    out = np.empty((flux.shape[0], components.shape[0]), dtype=np.float32)
    for a in range(0, flux.shape[0], step):
        residual = flux[a:a + step] - design[a:a + step] @ coef
        residual[bad[a:a + step]] = 0.0
        out[a:a + step] = (residual - mean) @ components.T
    return out


def fit_polynomial_pca_metric(train: xr.Dataset, val: xr.Dataset, *, poly_degrees=POLY_DEGREES,
                              n_components: int = N_COMPONENTS, say=None) -> PolynomialPcaMetric:
    """Fit on ``train`` (polynomial, components, metric) and choose on ``val`` (module docstring)."""
    import torch

    from twinviz.evaluation.baselines import _clean_flux, leading_directions
    from twinviz.spectra.fingerprint import describe_data
    from twinviz.spectra.dataset import DatasetError
    from twinviz.twins.metric import (TwinMetric, TwinMetricError, _score, choose_twin_metric, fit_twin_metrics,
                                      label_standardisation)

    say = say or (lambda message: None)
    source = train.encoding.get("source", "<training data>")
    g_train = np.asarray(train["group"].values, dtype=np.int64)
    g_val = np.asarray(val["group"].values, dtype=np.int64)
    flux, bad = _clean_flux(train)
    val_flux, val_bad = _clean_flux(val)
    teff, logg = train["teff"].values, train["logg"].values
    center, scale = label_standardisation(teff, logg)
    best, table = None, {}
    for degree in poly_degrees:
        design = _design(train, degree, center, scale)
        if design.shape[0] <= 2 * design.shape[1]:
            continue
        coef = np.linalg.lstsq(design, flux.astype(np.float64), rcond=None)[0].astype(np.float32)
        residual = flux - design.astype(np.float32) @ coef
        residual[bad] = 0.0
        mean = residual.mean(axis=0)
        k = int(min(n_components, residual.shape[0] - 1, residual.shape[1]))
        x = torch.from_numpy(np.ascontiguousarray(residual - mean))
        v = leading_directions(x, k)
        components = v.T.contiguous().numpy()
        c_train = (x @ v).numpy()
        del x, residual
        c_val = _components(val_flux, val_bad, _design(val, degree, center, scale), coef, mean, components)
        try:
            metrics = fit_twin_metrics(c_train, g_train, teff=teff, logg=logg, source=str(source))
        except TwinMetricError as exc:
            raise DatasetError(str(exc)) from exc
        chosen = choose_twin_metric(metrics, c_val, g_val, teff=val["teff"].values, logg=val["logg"].values,
                                    source="validation split")
        if chosen is None:  # plain L1 on the components ranked validation best: keep them as they are
            chosen = TwinMetric(np.zeros(k), np.eye(k), np.ones(k), k, {"plain": True})
            score = dict(zip(("rank1", "within_1pct"), _score(c_val, g_val)))
        else:
            score = chosen.info["validation"][chosen.name]
        table[degree] = {"metric": "raw" if chosen.info.get("plain") else chosen.name, **score}
        say(f"polynomial-PCA + twin metric: polynomial degree {degree}: {chosen.name} axes, validation rank 1 "
            f"{100 * score['rank1']:.1f} %")
        key = (score["rank1"], score["within_1pct"], -degree)
        if best is None or key > best[0]:
            best = (key, PolynomialPcaMetric(degree, center, scale, coef, mean, components, chosen, {}))
    if best is None:
        raise DatasetError(f"{source}: star: {flux.shape[0]} training stars are too few for the twin-supervised "
                           "polynomial-PCA baseline. Fix: train on more stars")
    fitted = best[1]
    fitted.info = {"poly_degree": fitted.poly_degree, "n_components": int(fitted.components.shape[0]),
                   "metric": table[fitted.poly_degree]["metric"], "fitted_on": describe_data(train, source),
                   "chosen_on": describe_data(val, val.encoding.get("source", "")),
                   "validation": {str(d): v for d, v in table.items()}}
    return fitted
