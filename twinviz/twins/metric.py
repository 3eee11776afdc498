"""The twin metric: a linear map of the latent z, learned from training twins, before L1 ranking.

L1 on raw z weighs every latent dimension by its own scale, whatever it carries. Some directions
of z move a lot between the two stars of a twin pair (what the adversary did not remove of Teff
and logg, noise), others separate chemistries. The twin metric measures that on the *training*
twins and reweights z so that distance counts what twins share:

1. within-twin scatter W: the covariance of the differences between group-mates (for a pair,
   half the outer product of z_a − z_b; for larger groups, the deviations from the group mean);
2. whiten by it: y = (z − mean) W^(-1/2), so every direction varies between twins by one unit;
3. rotate to the principal axes of y over all training stars, ordered by variance: in whitened
   units that variance is the between/within ratio of a direction (linear discriminant axes);
4. keep the first ``dims`` axes. ``dims`` is chosen on the *validation* split (rank 1, then
   ≤ 1 %), among a few sizes and "none" (raw z): a model whose raw z ranks best keeps raw z.

The map is stored beside the model weights (``twin_metric.safetensors`` + ``twin_metric.json``,
no pickle, atomic writes) and loaded with the model; everything that ranks twins with a fader
model (evaluation, ``twinviz embed``/``twins``, the app's twin table, P(twin) calibration) then
works on the projected vectors ``z_twin``. Training fits it when the training and validation
data have groups (``TrainConfig.twin_metric``); data without twins keep raw z.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TwinMetric", "TwinMetricError", "fit_twin_metric", "choose_twin_metric", "store_twin_metric",
           "METRIC_FILE", "METRIC_CONFIG"]

METRIC_FILE = "twin_metric.safetensors"
METRIC_CONFIG = "twin_metric.json"
CANDIDATE_DIMS = (2, 4, 8, 16, 32, 64)


class TwinMetricError(ValueError):
    """A twin metric that cannot be fitted or read; the message names the file or field and the fix."""


@dataclass
class TwinMetric:
    """z_twin = (z − mean) @ projection[:, :dims]."""

    mean: np.ndarray        # [d] float64
    projection: np.ndarray  # [d, d] float64, columns by decreasing between/within ratio
    ratios: np.ndarray      # [d] between/within variance ratio of each column
    dims: int               # columns kept
    info: dict = field(default_factory=dict)  # how it was fitted and chosen (JSON)

    def project(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return ((z - self.mean) @ self.projection[:, :self.dims]).astype(np.float32)

    def with_dims(self, dims: int) -> "TwinMetric":
        return TwinMetric(self.mean, self.projection, self.ratios, int(dims), dict(self.info))

    # --- files ---------------------------------------------------------------------------------
    def save(self, directory) -> None:
        from safetensors.numpy import save_file

        from twinviz.atomic import atomic_path, write_text_atomic

        directory = Path(directory)
        with atomic_path(directory / METRIC_FILE) as tmp:
            save_file({"mean": self.mean, "projection": self.projection, "ratios": self.ratios}, str(tmp))
        write_text_atomic(directory / METRIC_CONFIG, json.dumps(
            {"format": "twinviz-twin-metric", "dims": self.dims, **self.info}, indent=2))

    @classmethod
    def load(cls, directory) -> "TwinMetric | None":
        """The metric stored in a model directory, or None when it has none."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        directory = Path(directory)
        cfg_path, w_path = directory / METRIC_CONFIG, directory / METRIC_FILE
        if not cfg_path.is_file() and not w_path.is_file():
            return None
        fix = "Fix: retrain the model, or delete both twin_metric files to rank on raw z"
        try:
            cfg = json.loads(cfg_path.read_text())
            tensors = load_file(str(w_path))
            mean, projection, ratios = tensors["mean"], tensors["projection"], tensors["ratios"]
            dims = int(cfg["dims"])
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise TwinMetricError(f"{directory}: twin metric: unreadable ({exc}). {fix}") from exc
        d = mean.shape[0]
        if projection.shape != (d, d) or ratios.shape != (d,) or not 1 <= dims <= d:
            raise TwinMetricError(f"{cfg_path}: dims: {dims} with a {projection.shape} projection "
                                  f"for a {d}-dim latent. {fix}")
        info = {k: v for k, v in cfg.items() if k not in ("format", "dims")}
        return cls(mean.astype(np.float64), projection.astype(np.float64), ratios.astype(np.float64), dims, info)


def store_twin_metric(directory, metric: TwinMetric | None) -> None:
    """Make ``directory``'s twin metric ``metric``: written, or (None) any older one removed."""
    directory = Path(directory)
    if metric is not None:
        metric.save(directory)
        return
    for name in (METRIC_CONFIG, METRIC_FILE):
        (directory / name).unlink(missing_ok=True)


def _within_differences(z: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Deviations of every grouped star from its group's mean, scaled so that their covariance
    estimates the within-group covariance (unbiased: × sqrt(n / (n − 1)) per group)."""
    groups = np.asarray(groups)
    keep = groups >= 0
    z, groups = z[keep], groups[keep]
    ids, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sums = np.zeros((len(ids), z.shape[1]))
    np.add.at(sums, inverse, z)
    dev = z - sums[inverse] / counts[inverse, None]
    n = counts[inverse]
    multi = n > 1
    return dev[multi] * np.sqrt(n[multi] / (n[multi] - 1.0))[:, None]


def fit_twin_metric(z, groups, *, source: str = "") -> TwinMetric:
    """Fit the map on training latents ``z`` [N, d] with chemistry groups ``groups`` [N]
    (−1: no group). Keeps every dimension; :func:`choose_twin_metric` picks how many."""
    z = np.asarray(z, dtype=np.float64)
    dev = _within_differences(z, groups)
    if len(dev) < 2 * z.shape[1]:
        raise TwinMetricError(f"{source or 'training data'}: group: {len(dev)} stars with a group-mate for a "
                              f"{z.shape[1]}-dim "
                              "latent, too few to learn a twin metric. Fix: train on data with more groups "
                              "(or set twin_metric off)")
    within = dev.T @ dev / len(dev)
    evals, evecs = np.linalg.eigh(within)
    floor = max(float(evals.max()), 1e-30) * 1e-9
    whiten = evecs / np.sqrt(np.maximum(evals, floor))  # [d, d]: y = (z − mean) @ whiten
    mean = z.mean(axis=0)
    y = (z - mean) @ whiten
    between, axes = np.linalg.eigh(np.cov(y, rowvar=False))
    order = np.argsort(between)[::-1]
    projection = whiten @ axes[:, order]
    info = {"fitted_on": source, "fit_stars": int(len(z)), "within_samples": int(len(dev))}
    return TwinMetric(mean, projection, between[order], z.shape[1], info)


def _score(vectors, groups) -> tuple[float, float]:
    from twinviz.twins.index import TwinIndex

    ranks = TwinIndex(np.asarray(vectors, dtype=np.float32), metric="l1").twin_ranks(groups)
    ranks = ranks[ranks > 0]
    if len(ranks) == 0:
        return 0.0, 0.0
    return float(np.mean(ranks == 1)), float(np.mean(ranks <= max(1, int(0.01 * len(groups)))))


def choose_twin_metric(metric: TwinMetric, z_val, groups_val, *, source: str = "",
                       candidates=CANDIDATE_DIMS) -> TwinMetric | None:
    """How many axes to keep, chosen on validation latents by rank 1 (then ≤ 1 %); None when raw
    z ranks the validation twins at least as well as every candidate."""
    d = metric.projection.shape[0]
    scores = {"raw": _score(z_val, groups_val)}
    for dims in sorted({min(c, d) for c in candidates}):
        scores[dims] = _score(metric.with_dims(dims).project(z_val), groups_val)
    best = max(scores, key=lambda k: (scores[k], k == "raw"))  # ties keep raw z
    table = {str(k): {"rank1": v[0], "within_1pct": v[1]} for k, v in scores.items()}
    if best == "raw":
        return None
    chosen = metric.with_dims(best)
    chosen.info.update(chosen_on=source or "validation split", validation=table)
    return chosen
