"""The science suite's supervision regimes *few* and the information limit (bench_science.py).

Three regimes, each with its fair peer (docs/model.md, "Supervision regimes"):

* **none** — the fader network's raw z: its loss has no twin term (``twin_weight`` 0), its epoch
  is the latest one (``best_epoch_key``'s rule for runs that fit a twin metric: no twin decides
  it) and z is ranked by plain L1. Peers: the baselines that never see a twin (polynomial,
  polynomial-PCA, raw flux). Rows come from the seed's ``report.json``.
* **few** — :data:`FEW_GROUPS` open-cluster-like groups, at most :data:`FEW_MAX_STARS` stars, with
  known twins (:func:`few_dataset`). The network is the same one as in *none* (the few twins are
  used **only in the metric**): a twin metric (twinviz/twins/metric.py) fitted on the few stars'
  z, its Teff/logg degree and number of axes chosen by cross-validation over the few groups
  (:func:`fit_few_metric`). Peer, RSCA-like (de Mijolla & Ness 2022): polynomial residuals
  (per-pixel degree-2 polynomial in Teff/logg fitted on all training spectra, which needs no
  twins) on their 64 leading principal components (training spectra), in a metric learned from
  the same few twins by the same procedure.
* **many** — the training split's twins (10 000 pairs at the suite's default size): a network trained
  with the twin term (``twin_weight`` = ``bench_science.TWIN_WEIGHT``) and ranked in its own twin
  metric (:func:`score_many_twin`, ``many.json``); the *none* network in its twin metric is shown too
  (``report.json``). Peer: ``polynomial_pca_metric``.

The limit row (:mod:`twinviz.evaluation.information`) is computed once per cell on the test split.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

FEW_GROUPS, FEW_MAX_STARS, FEW_SIZES, FEW_SEED = 25, 200, (4, 12), 404
FOLDS = 5          # cross-validation folds over the few groups
POOL = 2000        # unlabelled training stars that the held-out fold is ranked among
PEER_DEGREE, PEER_COMPONENTS = 2, 64
LIMIT_SEEDS = (0, 1, 2)


def few_dataset(cell: dict, root: Path, noises: dict) -> Path:
    """The few known twins: ``FEW_GROUPS`` clusters of 4–12 stars on one isochrone-like track each
    (``simulate(group_sizes=…)``, seed ``FEW_SEED``, the cell's population, chemistry, noise and
    nuisances), whole clusters kept in order while the total stays ≤ ``FEW_MAX_STARS``."""
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate

    path = root / "few.nc"
    if not path.exists():
        noise = noises[cell["noise"]]
        ds = simulate(FEW_GROUPS, group_sizes=FEW_SIZES, seed=FEW_SEED, population=cell["population"],
                      chemistry=cell["chemistry"], snr=noise["snr"], nuisances=noise["nuisances"])
        groups = ds["group"].values
        ends = np.flatnonzero(np.r_[groups[1:] != groups[:-1], True]) + 1
        keep = int(ends[ends <= FEW_MAX_STARS].max())
        save_spectra(ds.isel(star=slice(0, keep)), path)
    return path


def _score(vectors, groups, queries) -> float:
    from twinviz.twins.index import TwinIndex

    ranks = TwinIndex(np.asarray(vectors, np.float32), metric="l1").twin_ranks(groups, queries=queries)
    ranks = ranks[ranks > 0]
    return float(np.mean(ranks == 1)) if ranks.size else 0.0


def fit_few_metric(x, groups, teff, logg, pool, pool_teff, pool_logg) -> tuple[object | None, dict]:
    """A twin metric from the few twins only: candidates (Teff/logg degree × axes, and raw L1) scored
    by cross-validation over the few groups — fit on the other folds, rank the held-out fold's
    stars among themselves and ``pool`` (unlabelled training stars: no twin knowledge) — then the
    winner refitted on every few twin. Returns (metric or None for raw, the CV table)."""
    from twinviz.twins.metric import CANDIDATE_DIMS, TwinMetricError, fit_twin_metrics

    groups = np.asarray(groups, np.int64)
    ids = np.unique(groups[groups >= 0])
    fold_of = {g: i % FOLDS for i, g in enumerate(ids)}
    fold = np.array([fold_of.get(g, -1) for g in groups])
    table: dict[str, float] = {}
    for f in range(FOLDS):
        fit, held = fold != f, fold == f
        vectors = np.concatenate([x[held], pool])
        g = np.concatenate([groups[held], np.full(len(pool), -1)])
        t, lg = np.concatenate([teff[held], pool_teff]), np.concatenate([logg[held], pool_logg])
        queries = np.arange(int(held.sum()))
        table["raw"] = table.get("raw", 0.0) + _score(vectors, g, queries) / FOLDS
        try:
            metrics = fit_twin_metrics(x[fit], groups[fit], teff=teff[fit], logg=logg[fit])
        except TwinMetricError:
            continue
        for metric in metrics:
            for dims in sorted({min(c, metric.projection.shape[0]) for c in CANDIDATE_DIMS}):
                option = metric.with_dims(dims)
                table[option.name] = table.get(option.name, 0.0) + _score(option.project(vectors, t, lg), g,
                                                                           queries) / FOLDS
    best = max(table, key=lambda k: (table[k], k == "raw"))
    if best == "raw":
        return None, table
    degree = int(best.split("/u")[1]) if "/u" in best else 0
    dims = int(best.split("/")[0])
    metric = fit_twin_metrics(x, groups, teff=teff, logg=logg, degrees=(degree,))[0].with_dims(dims)
    return metric, table


def encoded_z(model_dir, ds) -> np.ndarray:
    """The network's raw z of ``ds`` [N, d] (no twin metric)."""
    from twinviz.bundle import ModelBundle
    from twinviz.model import encode_arrays

    model = ModelBundle.open(model_dir).model  # checked weights; raw z, no metric
    mask = ds["mask"].values if "mask" in ds else None
    return encode_arrays(model, ds["flux"].values, ds["teff"].values, ds["logg"].values, mask=mask)


def _row(key, vectors, test, extra) -> dict:
    from twinviz.evaluation.compute import evaluate_representation

    m = evaluate_representation(key, vectors, np.asarray(test["group"].values, np.int64))
    f = m.fractions
    return {"key": key, "rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1,
            "doppelganger_rate": m.doppelganger.rate, **extra}


def _few_rows(key, few_x, pool_x, test_x, few, train_pool, test) -> dict:
    metric, table = fit_few_metric(few_x, few["group"].values, few["teff"].values, few["logg"].values, pool_x,
                                   train_pool["teff"].values, train_pool["logg"].values)
    vectors = test_x if metric is None else metric.project(test_x, test["teff"].values, test["logg"].values)
    return _row(key, vectors, test, {"metric": "raw" if metric is None else metric.name, "cv_rank1": table,
                                     "few_stars": int(few.sizes["star"]),
                                     "few_groups": int(np.unique(few["group"].values).size)})


def score_few_fader(model_dir: Path, data: dict, out: Path) -> dict:
    """The *few* row of one trained network (its z, a metric from the few twins), cached in ``out``."""
    from twinviz.atomic import write_text_atomic
    from twinviz.spectra.dataset import load_spectra

    if out.exists():
        return json.loads(out.read_text())
    t0 = time.perf_counter()
    few, test = load_spectra(data["few"]), load_spectra(data["test"])
    pool = load_spectra(data["train"]).isel(star=slice(0, POOL))
    row = _few_rows("fader_few", *(encoded_z(model_dir, ds) for ds in (few, pool, test)), few, pool, test)
    row["seconds"] = time.perf_counter() - t0
    write_text_atomic(out, json.dumps(row, indent=2))
    return row


def score_many_twin(run_dir: Path, data: dict, out: Path, queries: int) -> dict:
    """The *many* network's rows (its twin metric and its raw z on the test split) and its training
    wall time, cached in ``out``."""
    from twinviz.atomic import write_text_atomic
    from twinviz.bundle import ModelBundle
    from twinviz.evaluation import evaluate
    from twinviz.spectra.dataset import load_spectra

    if out.exists():
        return json.loads(out.read_text())
    t0 = time.perf_counter()
    report = evaluate(ModelBundle.open(run_dir / "model"), load_spectra(data["test"]), baselines=(),
                      pixel_queries=queries)
    methods = {m["key"]: m for m in report.to_dict()["methods"]}
    keep = ("rank1", "within_0p1", "within_1", "doppelganger_rate", "n_ranked", "label")
    rows = {name: {k: methods[key][k] for k in keep} for name, key in
            (("metric", "fader"), ("raw_z", "fader_raw_z" if "fader_raw_z" in methods else "fader"))}
    result = {**rows, "train_seconds": json.loads((run_dir / "wall_seconds.json").read_text())["seconds"],
              "seconds": time.perf_counter() - t0}
    write_text_atomic(out, json.dumps(result, indent=2))
    return result


def score_few_peer(data: dict, out: Path) -> dict:
    """The RSCA-like peer's *few* row (polynomial-PCA residuals, a metric from the few twins)."""
    from twinviz.atomic import write_text_atomic
    from twinviz.evaluation.supervised_baseline import PolynomialPcaMetric, _components, _design
    from twinviz.evaluation.baselines import _clean_flux, leading_directions
    from twinviz.spectra.dataset import load_spectra
    from twinviz.twins.metric import label_standardisation

    if out.exists():
        return json.loads(out.read_text())
    import torch

    t0 = time.perf_counter()
    train = load_spectra(data["train"])
    flux, bad = _clean_flux(train)
    center, scale = label_standardisation(train["teff"].values, train["logg"].values)
    design = _design(train, PEER_DEGREE, center, scale)
    coef = np.linalg.lstsq(design, flux.astype(np.float64), rcond=None)[0].astype(np.float32)
    residual = flux - design.astype(np.float32) @ coef
    residual[bad] = 0.0
    mean = residual.mean(axis=0)
    x = torch.from_numpy(np.ascontiguousarray(residual - mean))
    components = leading_directions(x, min(PEER_COMPONENTS, *x.shape)).T.contiguous().numpy()
    pool_x = (x[:POOL] @ torch.from_numpy(components.T.copy())).numpy()
    del x, residual, flux
    peer = PolynomialPcaMetric(PEER_DEGREE, center, scale, coef, mean, components, None, {})
    few, test = load_spectra(data["few"]), load_spectra(data["test"])
    row = _few_rows("polynomial_pca_few", peer.components_of(few), pool_x, peer.components_of(test), few,
                    train.isel(star=slice(0, POOL)), test)
    row["seconds"] = time.perf_counter() - t0
    write_text_atomic(out, json.dumps(row, indent=2))
    return row


def score_limit(data: dict, out: Path, queries: int) -> dict:
    """The cell's information-limit row on the test split (``queries`` seeded query stars)."""
    from twinviz.atomic import write_text_atomic
    from twinviz.evaluation.information import information_limit, limit_scores
    from twinviz.spectra.dataset import load_spectra
    from twinviz.twins.groups import swap_partners

    if out.exists():
        return json.loads(out.read_text())
    t0 = time.perf_counter()
    test = load_spectra(data["test"])
    groups = np.asarray(test["group"].values, np.int64)
    limit = information_limit(test)
    with_twin = np.flatnonzero(swap_partners(groups) >= 0)
    chosen = None
    if queries and queries < with_twin.size:
        chosen = np.sort(np.random.default_rng(0).choice(with_twin, size=queries, replace=False))
    rows = limit_scores(limit, groups, seeds=LIMIT_SEEDS, queries=chosen)
    result = {"key": "limit", "draws": rows, "info": limit.info,
              "queries": None if chosen is None else int(chosen.size), "seconds": time.perf_counter() - t0}
    write_text_atomic(out, json.dumps(result, indent=2))
    return result
