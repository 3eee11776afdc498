"""Table 1 of de Mijolla, Ness & Viti (2019) for a model, with honest baselines beside it.

:func:`evaluate` computes, on a validation set whose twins share a ``group`` id:

* reconstruction MSE — mean over stars and good pixels of (D(E(x,u),u) − x)², flux units²;
* swapped MSE — mean of (D(E(x_twin,u_twin), u) − x)²: the twin's latent decoded with the
  star's own (Teff, logg); the twin of a star is its group-mate (for groups larger than two,
  the next member of the group in dataset order, cyclically);
* twin ranks (see :meth:`twinviz.twins.index.TwinIndex.twin_ranks`) and the fractions with rank 1,
  rank ≤ 0.001·N and rank ≤ 0.01·N, N = number of stars in the set, plus the cumulative curve;
* the doppelganger rate (:func:`twinviz.twins.ranks.doppelganger_rate`): the fraction of random
  non-twin pairs at a distance ≤ the median twin-pair distance, over all N stars (never sampled
  by query star);

for the fader network, and for the baselines: the λ = 0 conditional autoencoder (when given),
polynomial residuals, raw flux (both in pixel space, ranked by L1) and, on synthetic data, the
oracle ranking by true abundances. :func:`twinviz.evaluation.report.write_report` puts
``report.json``, ``report.md``, ``rank_curve.png`` and ``ranks.nc`` into a folder.

Pixel-space baselines cost N × N × pixels operations; by default their ranks are computed for a
random sample of query stars (``pixel_queries``) against *all* N stars, which keeps the
thresholds exact and gives unbiased fractions with the binomial standard error reported.
"""
from __future__ import annotations

import math
import time

import numpy as np
import xarray as xr

from twinviz.latents.errors import squared_error_sums
from twinviz.evaluation.baselines import (has_true_abundances, polynomial_pca_residuals, polynomial_residuals,
                                         raw_flux, true_abundances)
from twinviz.latents.encode import iter_star_chunks
from twinviz.spectra.dataset import DatasetError
from twinviz.evaluation.registry import Representation, check_provenance, data_role, model_representations
from twinviz.evaluation.results import METHOD_LABELS, EvaluationReport, MethodResult
from twinviz.spectra.fingerprint import describe_data
from twinviz.twins.groups import swap_partners
from twinviz.twins.index import TwinIndex
from twinviz.twins.ranks import doppelganger_rate, rank_fractions

__all__ = ["evaluate", "evaluate_representation", "model_errors"]


# --------------------------------------------------------------------------------------------
# the computations
# --------------------------------------------------------------------------------------------
def model_errors(model, ds: xr.Dataset, z: np.ndarray, partners: np.ndarray, *,
                 batch_size: int = 1024, chunk: int = 8192) -> tuple[float, float]:
    """(reconstruction MSE, swapped MSE) in flux units², over good pixels (mask False, finite).

    z [N, latent] are the model's latents of ``ds``; partners [N] from :func:`swap_partners`
    (stars with −1 are left out of the swapped MSE). Streams the flux in chunks of stars.
    """
    teff = np.asarray(ds["teff"].values, np.float32)
    logg = np.asarray(ds["logg"].values, np.float32)
    sums = np.zeros(2)
    counts = np.zeros(2, dtype=np.int64)
    for start, stop, block in iter_star_chunks(ds, chunk):
        flux = block["flux"].astype(np.float32)
        good = np.isfinite(flux)
        if "mask" in block:
            good &= ~block["mask"].astype(bool)
        s, c = squared_error_sums(model, z, flux, teff[start:stop], logg[start:stop], good, partners,
                                  start=start, batch_size=batch_size)
        sums += s
        counts += c
    mse = sums / np.maximum(counts, 1)
    return float(mse[0]), (float(mse[1]) if counts[1] else math.nan)


def evaluate_representation(key: str, vectors: np.ndarray, groups: np.ndarray, *, queries=None,
                            metric: str = "l1", backend: str = "auto", label: str | None = None) -> MethodResult:
    """Twin ranks, fractions and doppelganger rate of any per-star representation [N, d]
    (latents, residuals…); the doppelganger rate uses every star whatever ``queries`` holds."""
    t0 = time.perf_counter()
    index = TwinIndex(vectors, metric=metric, backend=backend)
    n = index.n_stars
    sampled = queries is not None and len(queries) < n
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    ranks = index.twin_ranks(groups, queries=queries)
    return MethodResult(key=key, label=label or METHOD_LABELS.get(key, key), ranks=ranks, queries=queries,
                        fractions=rank_fractions(ranks, n), sampled=sampled,
                        doppelganger=doppelganger_rate(vectors, groups, metric=metric),
                        seconds=time.perf_counter() - t0)


def _as_bundle(model):
    """A ModelBundle as given; a bare FaderNetwork (tests, notebooks) as a bundle without sidecars."""
    from twinviz.bundle import ModelBundle

    if model is None or isinstance(model, ModelBundle):
        return model
    from pathlib import Path

    return ModelBundle(Path("<in-memory model>"), model, getattr(model, "weights_sha256", "") or "")


def _score(rep, groups, partners, ds, *, queries, metric, backend, batch_size, chunk) -> MethodResult:
    """One registry row scored: its twin ranks and fractions, and a model's MSEs."""
    t0 = time.perf_counter()
    result = evaluate_representation(rep.key, rep.vectors(), groups, queries=queries if rep.sampled else None,
                                     metric=metric, backend=backend, label=rep.label)
    if rep.model is not None:
        result.mse, result.swapped_mse = model_errors(rep.model, ds, rep.z(), partners, batch_size=batch_size,
                                                      chunk=chunk)
    result.supervision, result.in_sample = rep.supervision, list(rep.in_sample)
    result.seconds = time.perf_counter() - t0
    return result


NO_GROUPS = ("absent: no two stars share a `group` id (an imported survey without known twins, group = −1), "
             "so no star has a twin to rank; the rank columns are undefined, not zero. Fix: give known "
             "twins a shared group (e.g. `twinviz import apogee --groups members.csv`)")


def _mse_only_report(model, baseline_model, ds, groups, source, *, metric, backend, batch_size, chunk, say):
    """The report of data without groups: each model's reconstruction MSE, no ranks, no baselines."""
    from twinviz.latents.encode import encode_dataset

    n = groups.size
    no_partners = np.full(n, -1, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    methods = []
    for key, m in (("fader", model), ("lambda0", baseline_model)):
        if m is None:
            continue
        m = m.model
        say(f"no groups: reconstruction MSE of the {METHOD_LABELS[key]} only (no twin ranks)")
        t0 = time.perf_counter()
        z = encode_dataset(m, ds, batch_size=batch_size, chunk=chunk)["z"].values
        mse, _ = model_errors(m, ds, z, no_partners, batch_size=batch_size, chunk=chunk)
        methods.append(MethodResult(key=key, label=METHOD_LABELS[key], ranks=empty, queries=empty,
                                    fractions=rank_fractions(empty, n), mse=mse, swapped_mse=None,
                                    seconds=time.perf_counter() - t0))
    settings = {"data": str(source), "metric": metric, "ranks": NO_GROUPS,
                "domain": model.domain_note(ds.attrs) if model is not None else "",
                "baselines": "none: the pixel-space baselines and the oracle only rank twins",
                "backend": TwinIndex(np.zeros((1, 1)), backend=backend).backend,
                "batch_size": batch_size, "chunk": chunk}
    return EvaluationReport(n_stars=n, n_with_twin=0, methods=methods, star_ids=np.asarray(ds["star"].values),
                            settings=settings, reference=())


def evaluate(model, ds: xr.Dataset, *, baseline_model=None, baselines=("polynomial", "raw_flux", "oracle"),
             poly_degree: int = 2, poly_pca: dict | None = None, supervised=None, pixel_queries: int | None = 2000, seed: int = 0, metric: str = "l1",
             backend: str = "auto", batch_size: int = 1024, chunk: int = 8192,
             progress=None, rank_by: str = "auto", allow_in_sample: bool = False) -> EvaluationReport:
    """Table 1 for ``model`` (a :class:`~twinviz.bundle.ModelBundle`, a bare FaderNetwork ranked on
    raw z, or None for baselines only) on the held-out set ``ds``.

    Every row comes from one registry (:mod:`twinviz.evaluation.registry`) and is scored by one
    function; each row says its supervision. Data that a row was fitted or chosen on (the model's
    training or epoch-choice data, its twin metric's, a baseline's choice, the pixel finder's) are
    refused (:class:`~twinviz.evaluation.registry.InSampleError`) unless ``allow_in_sample``, which
    marks those rows "in-sample" instead; ``settings["data_role"]`` says what the file is.

    Data without groups (no two stars share a ``group`` id, e.g. an imported survey) have no twin
    ranks: the report then holds each model's reconstruction MSE only, ``n_with_twin`` = 0 and
    ``settings["ranks"]`` saying why the rank columns are absent (never zero).

    baseline_model : the λ = 0 conditional AE, reported as "lambda0" when given
    baselines : any of "polynomial", "polynomial_pca", "raw_flux", "oracle" (the oracle is skipped
        silently on data without true abundances)
    poly_degree : total degree of the per-pixel polynomial in (Teff, logg)
    poly_pca : {"degree", "n_components"} of the "polynomial_pca" baseline, chosen on a validation
        set with :func:`~twinviz.evaluation.baselines.choose_polynomial_pca` (required for it)
    supervised : a fitted :class:`~twinviz.evaluation.supervised_baseline.PolynomialPcaMetric`
        (training twins, chosen on validation): adds the "polynomial_pca_metric" row, the fair peer
        of a fader network ranked in its own twin metric
    pixel_queries : number of query stars (drawn with ``seed`` among stars with a twin) for the
        pixel-space baselines; None or 0 ranks every star (cost N²·pixels)
    metric, backend : passed to :class:`TwinIndex` (L1 is the paper's metric)
    progress : optional callable(message) for the CLI
    """
    say = progress or (lambda message: None)
    model, baseline_model = _as_bundle(model), _as_bundle(baseline_model)
    source = ds.encoding.get("source", "<in-memory dataset>")
    groups = np.asarray(ds["group"].values, dtype=np.int64)
    n = groups.size
    partners = swap_partners(groups)
    n_with_twin = int(np.count_nonzero(partners >= 0))
    if n_with_twin == 0:
        if model is None and baseline_model is None:
            raise DatasetError(f"{source}: group: no star shares its group id with another, so there are no "
                               "twins to rank, and without a model there is no reconstruction MSE either. "
                               "Fix: evaluate on a validation set with twin pairs (`twinviz simulate` makes "
                               "them) or set `group` for known twins")
        return _mse_only_report(model, baseline_model, ds, groups, source, metric=metric, backend=backend,
                                batch_size=batch_size, chunk=chunk, say=say)
    unknown = set(baselines) - {"polynomial", "polynomial_pca", "raw_flux", "oracle"}
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from polynomial, polynomial_pca, "
                         "raw_flux, oracle")
    if "polynomial_pca" in baselines and not poly_pca:
        raise ValueError("the polynomial_pca baseline needs its degree and number of components chosen on a "
                         "validation set: pass poly_pca=choose_polynomial_pca(val) (CLI: --baseline-val VAL.nc)")
    queries = None
    if pixel_queries and pixel_queries < n_with_twin:
        rng = np.random.default_rng(seed)
        queries = np.sort(rng.choice(np.flatnonzero(partners >= 0), size=int(pixel_queries), replace=False))
    registry = _registry(model, baseline_model, ds, baselines, poly_degree, poly_pca, supervised,
                         rank_by=rank_by, batch_size=batch_size, chunk=chunk)
    data = describe_data(ds, source if source != "<in-memory dataset>" else "")
    check_provenance(registry, data, None if source == "<in-memory dataset>" else source,
                     allow_in_sample=allow_in_sample)
    methods = []
    for rep in registry:
        say(f"{rep.label}: ranking twins")
        methods.append(_score(rep, groups, partners, ds, queries=queries, metric=metric, backend=backend,
                              batch_size=batch_size, chunk=chunk))
    domain = model.domain_note(ds.attrs) if model is not None else ""
    settings = {"data": str(source), "data_role": data_role(registry, data), "data_fingerprint": data["fingerprint"],
                "domain": domain,
                "metric": metric, "poly_degree": poly_degree,
                "poly_pca": poly_pca,
                "polynomial_pca_metric": None if supervised is None else supervised.info,
                "pixel_queries": int(queries.size) if queries is not None else None, "seed": seed,
                "backend": TwinIndex(np.zeros((1, 1)), backend=backend).backend,
                "batch_size": batch_size, "chunk": chunk}
    return EvaluationReport(n_stars=n, n_with_twin=n_with_twin, methods=methods,
                            star_ids=np.asarray(ds["star"].values), settings=settings)


UNSUPERVISED = "unsupervised (no twin seen)"


def _registry(model, baseline_model, ds, baselines, poly_degree, poly_pca, supervised, *, rank_by, batch_size,
              chunk) -> list[Representation]:
    """Every row to score, in display order (module docstring of twinviz.evaluation.registry)."""
    rows = []
    kw = dict(rank_by=rank_by, batch_size=batch_size, chunk=chunk)
    if model is not None:
        rows += model_representations("fader", METHOD_LABELS["fader"], model, ds, **kw)
    if baseline_model is not None:
        rows += model_representations("lambda0", METHOD_LABELS["lambda0"], baseline_model, ds, **kw)
    if "polynomial" in baselines:
        rows.append(Representation("polynomial", f"{METHOD_LABELS['polynomial']} (degree {poly_degree})",
                                   UNSUPERVISED, lambda: polynomial_residuals(ds, poly_degree), sampled=True))
    if "polynomial_pca" in baselines:
        degree, k = int(poly_pca["degree"]), int(poly_pca["n_components"])
        rows.append(Representation(
            "polynomial_pca", f"{METHOD_LABELS['polynomial_pca']} (degree {degree}, {k})",
            UNSUPERVISED + "; its size chosen on the twins of " + str(poly_pca.get("chosen_on", "a validation set")),
            lambda: polynomial_pca_residuals(ds, degree, k), sampled=True,
            fitted_on={"baseline choice": poly_pca.get("chosen_on_data") or poly_pca.get("chosen_on")}))
    if supervised is not None:
        info = supervised.info
        fitted, chosen = info.get("fitted_on"), info.get("chosen_on")
        n = (fitted or {}).get("n_star", "?") if isinstance(fitted, dict) else "?"
        where = fitted.get("path") if isinstance(fitted, dict) else fitted
        rows.append(Representation(
            "polynomial_pca_metric", METHOD_LABELS["polynomial_pca_metric"],
            f"twin-supervised (twin metric: {n} stars with known twins from {where})", lambda: supervised.vectors(ds),
            fitted_on={"pixel finder fit": fitted, "pixel finder choice": chosen}))
    if "raw_flux" in baselines:
        rows.append(Representation("raw_flux", METHOD_LABELS["raw_flux"], UNSUPERVISED, lambda: raw_flux(ds),
                                   sampled=True))
    if "oracle" in baselines and has_true_abundances(ds):
        rows.append(Representation("oracle", METHOD_LABELS["oracle"], "the true labels (a ceiling, not a method)",
                                   lambda: true_abundances(ds)))
    return rows
