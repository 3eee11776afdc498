"""The twin metric: a linear map of the latent z, learned from training twins, before L1 ranking.

L1 on raw z weighs every latent dimension by its own scale, whatever it carries. Some directions
of z move a lot between the two stars of a twin pair (what the adversary did not remove of Teff
and logg, noise), others separate chemistries. The twin metric measures that on the *training*
twins and reweights z so that distance counts what twins share:

1. features: z itself, or (``degree`` 1 or 2) z times every monomial of the star's standardised
   Teff and logg up to that degree plus the monomials themselves, so that a direction of the
   metric may turn with Teff/logg (what an imperfect adversary leaves in z is rarely a fixed
   direction);
2. within-twin scatter W: the covariance of the differences between group-mates' features (for a
   pair, half the outer product of the difference; for larger groups, the deviations from the
   group mean), with a small ridge (``SHRINK`` of its mean eigenvalue) so that many features stay
   well posed;
3. whiten by it: y = (f − mean) W^(-1/2), so every direction varies between twins by one unit;
4. rotate to the principal axes of y over all training stars, ordered by variance: in whitened
   units that variance is the between/within ratio of a direction (linear discriminant axes);
5. keep the first ``dims`` axes. ``degree`` and ``dims`` are chosen on the *validation* split
   (rank 1, then ≤ 1 %), among a few sizes and "none" (raw z): a model whose raw z ranks best
   keeps raw z.

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

__all__ = ["TwinMetric", "TwinMetricError", "fit_twin_metric", "fit_twin_metrics", "choose_twin_metric", "store_twin_metric",
           "METRIC_FILE", "METRIC_CONFIG", "candidate_name", "label_standardisation", "monomials"]

from twinviz.files import TWIN_METRIC_CONFIG as METRIC_CONFIG, TWIN_METRIC_WEIGHTS as METRIC_FILE  # noqa: E402
CANDIDATE_DIMS = (2, 4, 8, 16, 32, 64)
CANDIDATE_DEGREES = (0, 1, 2)  # Teff/logg interaction degrees tried by training
SHRINK = 1e-3                  # ridge on the within-twin scatter, relative to its mean eigenvalue
CHUNK = 65536                  # stars projected at a time (bounds memory at survey sizes)


class TwinMetricError(ValueError):
    """A twin metric that cannot be fitted or read; the message names the file or field and the fix."""


def label_standardisation(teff, logg) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale) [2] of (Teff, logg) over a set of stars: their mean and standard deviation
    (a constant label gets scale 1)."""
    labels = np.stack([np.asarray(teff, np.float64), np.asarray(logg, np.float64)], axis=1)
    scale = labels.std(axis=0)
    return labels.mean(axis=0), np.where(scale > 0, scale, 1.0)


def monomials(teff, logg, degree: int, center, scale) -> np.ndarray:
    """[N, m] every t^a g^b with a + b ≤ degree (constant first, then by total degree), t and g
    being Teff and logg standardised by ``center``/``scale``."""
    t = (np.asarray(teff, np.float64) - center[0]) / scale[0]
    g = (np.asarray(logg, np.float64) - center[1]) / scale[1]
    return np.stack([t ** a * g ** (total - a) for total in range(degree + 1) for a in range(total, -1, -1)],
                    axis=1)


def candidate_name(dims: int, degree: int) -> str:
    """A metric's key in its validation table: "8" (z alone) or "8/u2" (Teff/logg degree 2)."""
    return str(dims) if degree == 0 else f"{dims}/u{degree}"


def _features(z, teff, logg, degree: int, center, scale) -> np.ndarray:
    """[N, f] float64: z, or z times each Teff/logg monomial followed by the monomials."""
    z = np.asarray(z, dtype=np.float64)
    if degree == 0:
        return z
    if teff is None or logg is None:
        raise TwinMetricError(f"twin metric: uses Teff/logg (degree {degree}) but none were given. "
                              "Fix: pass the stars' teff and logg")
    m = monomials(teff, logg, degree, center, scale)
    return np.concatenate([(z[:, :, None] * m[:, None, :]).reshape(len(z), -1), m[:, 1:]], axis=1)


@dataclass
class TwinMetric:
    """z_twin = (features(z, Teff, logg) − mean) @ projection[:, :dims]; the features are z itself
    when ``degree`` is 0."""

    mean: np.ndarray        # [f] float64
    projection: np.ndarray  # [f, f] float64, columns by decreasing between/within ratio
    ratios: np.ndarray      # [f] between/within variance ratio of each column
    dims: int               # columns kept
    info: dict = field(default_factory=dict)  # how it was fitted and chosen (JSON)
    degree: int = 0         # Teff/logg interaction degree of the features
    label_center: np.ndarray = field(default_factory=lambda: np.zeros(2))  # Teff, logg
    label_scale: np.ndarray = field(default_factory=lambda: np.ones(2))

    def features(self, z, teff=None, logg=None) -> np.ndarray:
        """[N, f] float64: z, or z times each Teff/logg monomial followed by the monomials."""
        return _features(z, teff, logg, self.degree, self.label_center, self.label_scale)

    def project(self, z, teff=None, logg=None) -> np.ndarray:
        """[N, dims] float32, computed CHUNK stars at a time."""
        z = np.asarray(z)
        out = np.empty((len(z), self.dims), dtype=np.float32)
        p = self.projection[:, :self.dims]
        for a in range(0, len(z), CHUNK):
            b = a + CHUNK
            f = self.features(z[a:b], None if teff is None else np.asarray(teff)[a:b],
                              None if logg is None else np.asarray(logg)[a:b])
            out[a:b] = (f - self.mean) @ p
        return out

    def with_dims(self, dims: int) -> "TwinMetric":
        return TwinMetric(self.mean, self.projection, self.ratios, int(dims), dict(self.info), self.degree,
                          self.label_center, self.label_scale)

    @property
    def name(self) -> str:
        """The candidate's key in the validation table: "8" (z alone) or "8/u2" (degree 2)."""
        return candidate_name(self.dims, self.degree)

    # --- files ---------------------------------------------------------------------------------
    def save(self, directory) -> None:
        from safetensors.numpy import save_file

        from twinviz.atomic import atomic_path, write_text_atomic

        directory = Path(directory)
        with atomic_path(directory / METRIC_FILE) as tmp:
            save_file({"mean": self.mean, "projection": self.projection, "ratios": self.ratios,
                       "label_center": np.asarray(self.label_center, np.float64),
                       "label_scale": np.asarray(self.label_scale, np.float64)}, str(tmp))
        write_text_atomic(directory / METRIC_CONFIG, json.dumps(
            {"format": "twinviz-twin-metric", "dims": self.dims, "degree": self.degree, **self.info}, indent=2))

    @classmethod
    def load(cls, directory, latent_dim: int | None = None) -> "TwinMetric | None":
        """The metric stored in a model directory, or None when it has none; with ``latent_dim``,
        a metric made for another latent size is refused."""
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
            dims, degree = int(cfg["dims"]), int(cfg.get("degree", 0))  # files before degree: z alone
            center = tensors.get("label_center", np.zeros(2))
            scale = tensors.get("label_scale", np.ones(2))
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise TwinMetricError(f"{directory}: twin metric: unreadable ({exc}). {fix}") from exc
        f = mean.shape[0]
        if (projection.shape != (f, f) or ratios.shape != (f,) or not 1 <= dims <= f or degree not in (0, 1, 2)
                or center.shape != (2,) or scale.shape != (2,) or not np.all(scale > 0)):
            raise TwinMetricError(f"{cfg_path}: dims/degree: {dims}/{degree} with a {projection.shape} projection "
                                  f"for {f} features. {fix}")
        m = (degree + 1) * (degree + 2) // 2  # Teff/logg monomials, the constant included
        if latent_dim is not None and f != latent_dim * m + m - 1:
            raise TwinMetricError(f"{cfg_path}: {f} features do not fit a {latent_dim}-dim latent at Teff/logg "
                                  f"degree {degree} ({latent_dim * m + m - 1} expected): the metric belongs to "
                                  f"other weights. {fix}")
        info = {k: v for k, v in cfg.items() if k not in ("format", "dims", "degree")}
        return cls(mean.astype(np.float64), projection.astype(np.float64), ratios.astype(np.float64), dims, info,
                   degree, center.astype(np.float64), scale.astype(np.float64))


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


def fit_twin_metric(z, groups, *, teff=None, logg=None, degree: int = 0, source: str = "") -> TwinMetric:
    """Fit the map on training latents ``z`` [N, d] with chemistry groups ``groups`` [N]
    (−1: no group) and, for ``degree`` > 0, the stars' Teff and logg. Keeps every axis;
    :func:`choose_twin_metric` picks how many."""
    z = np.asarray(z, dtype=np.float64)
    center, scale = np.zeros(2), np.ones(2)
    if degree:
        if teff is None or logg is None:
            raise TwinMetricError(f"{source or 'training data'}: teff/logg: needed for a degree-{degree} "
                                  "twin metric. Fix: pass them, or use degree 0")
        center, scale = label_standardisation(teff, logg)
    feats = _features(z, teff, logg, degree, center, scale)
    dev = _within_differences(feats, groups)
    if len(dev) < 2 * feats.shape[1]:
        raise TwinMetricError(f"{source or 'training data'}: group: {len(dev)} stars with a group-mate for "
                              f"{feats.shape[1]} features (a {z.shape[1]}-dim latent, Teff/logg degree {degree}), "
                              "too few to learn a twin metric. Fix: train on data with more groups "
                              "(or set twin_metric off)")
    within = dev.T @ dev / len(dev)
    within += SHRINK * max(float(np.trace(within)) / len(within), 1e-30) * np.eye(len(within))
    evals, evecs = np.linalg.eigh(within)
    whiten = evecs / np.sqrt(evals)  # [f, f]: y = (f − mean) @ whiten
    mean = feats.mean(axis=0)
    y = (feats - mean) @ whiten
    between, axes = np.linalg.eigh(np.cov(y, rowvar=False))
    order = np.argsort(between)[::-1]
    info = {"fitted_on": source, "fit_stars": int(len(z)), "within_samples": int(len(dev))}
    return TwinMetric(mean, whiten @ axes[:, order], between[order], feats.shape[1], info, degree, center, scale)


def fit_twin_metrics(z, groups, *, teff=None, logg=None, degrees=CANDIDATE_DEGREES, source: str = "") -> list:
    """:func:`fit_twin_metric` for each degree the data can support (degree 0 must fit: its
    error is raised; a higher degree with too few twins for its features is left out)."""
    fitted = []
    for degree in degrees:
        try:
            fitted.append(fit_twin_metric(z, groups, teff=teff, logg=logg, degree=degree, source=source))
        except TwinMetricError:
            if degree == 0:
                raise
    return fitted


def _score(vectors, groups) -> tuple[float, float]:
    from twinviz.twins.index import TwinIndex

    ranks = TwinIndex(np.asarray(vectors, dtype=np.float32), metric="l1").twin_ranks(groups)
    ranks = ranks[ranks > 0]
    if len(ranks) == 0:
        return 0.0, 0.0
    return float(np.mean(ranks == 1)), float(np.mean(ranks <= max(1, int(0.01 * len(groups)))))


def choose_twin_metric(metrics, z_val, groups_val, *, teff=None, logg=None, source: str = "",
                       candidates=CANDIDATE_DIMS) -> TwinMetric | None:
    """Which fitted metric (one, or a list from :func:`fit_twin_metrics`) and how many axes to
    keep, chosen on validation latents by rank 1 (then ≤ 1 %, then the smaller map); None when
    raw z ranks the validation twins at least as well as every candidate."""
    metrics = [metrics] if isinstance(metrics, TwinMetric) else list(metrics)
    scores = {"raw": _score(z_val, groups_val)}
    options = {}
    for metric in metrics:
        f = metric.projection.shape[0]
        for dims in sorted({min(c, f) for c in candidates}):
            option = metric.with_dims(dims)
            options[option.name] = option
            scores[option.name] = _score(option.project(z_val, teff, logg), groups_val)
    # ties keep raw z, then the fewest features and axes
    best = max(scores, key=lambda k: (scores[k], k == "raw",
                                      0 if k == "raw" else -options[k].projection.shape[0] * options[k].dims))
    table = {k: {"rank1": v[0], "within_1pct": v[1]} for k, v in scores.items()}
    if best == "raw":
        return None
    chosen = options[best]
    chosen.info.update(chosen_on=source or "validation split", validation=table)
    return chosen
