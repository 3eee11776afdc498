"""Twin confidence: a calibrated P(same chemistry | latent distance [, SNR]) for the rows of a twin
table — a star and one of its k nearest neighbours (docs/evaluation.md, "Twin confidence").

``fit_calibration`` takes validation latents with known groups, lists every (star, neighbour)
pair of each star's ``k`` nearest neighbours, and fits on the pairs of half the groups:

* ``isotonic`` (default): scikit-learn's IsotonicRegression, P non-increasing in the distance;
* ``logistic``: LogisticRegression on log distance and, when the stars' SNR varies, log SNR of
  the noisier star of the pair.

The other half of the groups scores it: Brier score and a reliability table (bins of predicted
P with the observed fraction of twins). The fit is stored as plain JSON numbers beside the model
(``calibration.json``) with the SHA-256 of the model's weights, the name of the distance it
calibrates (``distance``: "z", or the twin metric by its digest — :class:`twinviz.bundle.ModelBundle`
names them) and the data it was fitted on: a calibration written for other weights is refused,
and one of another distance (say, raw z after the metric was removed) gives no P(twin). P depends on the mix of the data it was fitted on (pairs or clusters, SNR),
so it applies to stars like those: outside the calibration set's Teff/logg (or SNR) range it is
reported as not applicable.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twinviz import files as runfiles
from twinviz.model import file_sha256

__all__ = ["CalibrationError", "TwinCalibration", "fit_calibration", "load_calibration", "save_calibration",
           "table_probabilities", "weights_sha256"]

METHODS = ("isotonic", "logistic")
N_RELIABILITY_BINS = 10


class CalibrationError(ValueError):
    """A calibration file or input that cannot be used; the message names the file and the fix."""


def weights_sha256(model_dir) -> str:
    """SHA-256 of a model directory's weights file (what a calibration is tied to)."""
    return file_sha256(Path(model_dir) / runfiles.MODEL_WEIGHTS)


@dataclass
class TwinCalibration:
    """A fitted P(twin | distance[, SNR]) as plain numbers (see the module docstring)."""

    method: str
    model_sha256: str
    k: int
    metric: str
    params: dict  # isotonic: {"x", "y"}; logistic: {"features", "coef", "intercept"}
    teff_range: list[float]
    logg_range: list[float]
    snr_range: list[float] | None = None
    brier: float = float("nan")
    base_rate: float = float("nan")
    n_pairs_fit: int = 0
    n_pairs_scored: int = 0
    reliability: list[dict] = field(default_factory=list)
    data: str = ""
    distance: str = ""          # what the distances are: "z" or "z in twin metric <digest>" (ModelBundle)
    fitted_on: dict = field(default_factory=dict)  # twinviz.spectra.fingerprint.describe_data of the data

    def refuses(self, distance: str, metric: str) -> str:
        """Why this calibration does not apply to distances of ``distance`` under ``metric`` ("" if it does)."""
        if metric != self.metric:
            return f"calibrated for the {self.metric} distance, listed by {metric}"
        if not self.distance:
            return ("the calibration does not record which distance it calibrates (written before twinviz recorded "
                    "it). Fix: rerun `twinviz calibrate`")
        if distance != self.distance:
            return f"calibrated on {self.distance}, but twins are ranked on {distance}. Fix: rerun `twinviz calibrate`"
        return ""

    @property
    def uses_snr(self) -> bool:
        return self.method == "logistic" and "log_snr" in self.params["features"]

    def probability(self, distance, snr=None) -> np.ndarray:
        """P(twin) for distances (and the pair's lower SNR when the fit uses it)."""
        d = np.asarray(distance, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(d, self.params["x"], self.params["y"])
        x = [np.log(np.maximum(d, 1e-12))]
        if self.uses_snr:
            if snr is None:
                raise CalibrationError("snr: this calibration uses the SNR. Fix: pass the stars' SNR")
            x.append(np.log(np.maximum(np.asarray(snr, np.float64), 1e-12)))
        logit = self.params["intercept"] + sum(c * v for c, v in zip(self.params["coef"], x))
        return 1.0 / (1.0 + np.exp(-logit))

    def not_applicable(self, teff, logg, snr=None) -> str | None:
        """Why P does not apply to a star (outside the calibration data), or None."""
        checks = [("Teff", teff, self.teff_range), ("logg", logg, self.logg_range)]
        if self.uses_snr and snr is not None:
            checks.append(("SNR", snr, self.snr_range))
        for name, value, (lo, hi) in checks:
            if not lo <= float(value) <= hi:
                return f"{name} {float(value):.4g} outside the calibration data's {lo:.4g}–{hi:.4g}"
        return None


def table_probabilities(cal: TwinCalibration | None, distances, star: dict, neighbours: list[dict]):
    """P(twin) of each listed neighbour of one star, or None where it does not apply, and a note.

    ``star`` and each of ``neighbours``: {"teff", "logg"[, "snr"][, "ood"]}; ``distances`` in the
    calibration's metric; ``"ood": True`` marks an out-of-distribution star, for which the
    calibration does not apply. The note says where P comes from, or why there is none."""
    none = [None] * len(neighbours)
    if cal is None:
        return none, "P(twin): not available: this model has no calibration. Fix: `twinviz calibrate --model M --data VAL.nc`"
    if cal.uses_snr and star.get("snr") is None:
        return none, "P(twin): not applicable: this calibration needs the stars' SNR and the data has none"
    why = cal.not_applicable(star["teff"], star["logg"], star.get("snr"))
    if why:
        return none, f"P(twin): not applicable to this star: {why}"
    if star.get("ood"):
        return none, "P(twin): not applicable to this star: it is out of distribution, so the calibration does not apply"
    out = []
    for d, other in zip(np.asarray(distances, np.float64).tolist(), neighbours):
        pair_snr = None if star.get("snr") is None else min(star["snr"], other["snr"])
        ok = not other.get("ood") and cal.not_applicable(other["teff"], other["logg"], pair_snr) is None
        out.append(float(cal.probability(d, pair_snr)) if ok else None)
    note = f"P(twin): {cal.method} calibration on {cal.data} (Brier {cal.brier:.3f})"
    if None in out:
        note += "; n/a: a neighbour outside the calibration data's Teff/logg/SNR range or out of distribution"
    return out, note


def _neighbour_pairs(z, groups, k, metric):
    """(query, neighbour, distance, same group) for each star with a group-mate and its k nearest."""
    from twinviz.twins.groups import swap_partners
    from twinviz.twins.index import TwinIndex

    queries = np.flatnonzero(swap_partners(groups) >= 0)
    if queries.size == 0:
        raise CalibrationError("group: no star shares its group with another, so there are no twins to calibrate "
                               "on. Fix: calibrate on a validation set with twins (`twinviz simulate`)")
    index = TwinIndex(z, metric=metric)
    idx, dist = index.search(np.asarray(z, np.float32)[queries], min(k + 1, len(z)))
    q = np.repeat(queries, idx.shape[1])
    keep = idx.ravel() != q  # a star is not its own neighbour
    q, n, d = q[keep], idx.ravel()[keep], dist.ravel()[keep]
    return q, n, d, groups[q] == groups[n]


def _reliability(p, y, bins=N_RELIABILITY_BINS):
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(sel.sum()),
                         "mean_p": float(p[sel].mean()), "fraction_twins": float(y[sel].mean())})
    return rows


def fit_calibration(z, groups, teff, logg, *, snr=None, method: str = "isotonic", k: int = 10,
                    metric: str = "l1", seed: int = 0, model_sha256: str = "", data: str = "", distance: str = "",
                    fitted_on: dict | None = None) -> TwinCalibration:
    """Fit on half the groups' neighbour pairs, score on the other half (module docstring)."""
    if method not in METHODS:
        raise CalibrationError(f"method: {method!r} is unknown. Fix: use one of {', '.join(METHODS)}")
    groups = np.asarray(groups, np.int64)
    q, n, d, same = _neighbour_pairs(z, groups, int(k), metric)
    ids = np.unique(groups[q])
    fit_groups = np.random.default_rng(seed).permutation(ids)[: max(1, ids.size // 2)]
    fit = np.isin(groups[q], fit_groups)
    score = ~fit if (~fit).any() else fit
    y = same.astype(np.float64)
    pair_snr = None if snr is None else np.minimum(np.asarray(snr)[q], np.asarray(snr)[n]).astype(np.float64)
    use_snr = method == "logistic" and pair_snr is not None and np.ptp(pair_snr) > 0
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(d[fit], y[fit])
        params = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    else:
        from sklearn.linear_model import LogisticRegression

        cols = [np.log(np.maximum(d, 1e-12))] + ([np.log(pair_snr)] if use_snr else [])
        x = np.stack(cols, axis=1)
        if np.unique(y[fit]).size < 2:
            raise CalibrationError("group: the fitted pairs are all twins or all non-twins. Fix: use a larger "
                                   "validation set or a larger k")
        lr = LogisticRegression(C=1e4).fit(x[fit], y[fit])
        params = {"features": ["log_distance"] + (["log_snr"] if use_snr else []),
                  "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}
    teff, logg = np.asarray(teff, np.float64), np.asarray(logg, np.float64)
    cal = TwinCalibration(method=method, model_sha256=model_sha256, k=int(k), metric=metric, params=params,
                          teff_range=[float(teff.min()), float(teff.max())],
                          logg_range=[float(logg.min()), float(logg.max())],
                          snr_range=[float(pair_snr.min()), float(pair_snr.max())] if use_snr else None,
                          n_pairs_fit=int(fit.sum()), n_pairs_scored=int(score.sum()),
                          base_rate=float(y[score].mean()), data=str(data), distance=distance,
                          fitted_on=dict(fitted_on or {}))
    p = cal.probability(d[score], None if pair_snr is None else pair_snr[score])
    cal.brier = float(np.mean((p - y[score]) ** 2))
    cal.reliability = _reliability(p, y[score])
    return cal


def save_calibration(cal: TwinCalibration, model_dir) -> Path:
    """Write ``calibration.json`` into the model directory, atomically."""
    from twinviz.atomic import write_json_atomic

    return write_json_atomic(Path(model_dir) / runfiles.MODEL_CALIBRATION, asdict(cal))


def load_calibration(model_dir) -> TwinCalibration | None:
    """The model's calibration, or None when it has none. Raises CalibrationError for a file that
    belongs to other weights (by hash) or cannot be read."""
    path = Path(model_dir) / runfiles.MODEL_CALIBRATION
    if not path.is_file():
        return None
    try:
        cal = TwinCalibration(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise CalibrationError(f"{path}: calibration: unreadable ({exc}). Fix: rerun `twinviz calibrate`") from None
    actual = weights_sha256(model_dir)
    if cal.model_sha256 != actual:
        raise CalibrationError(f"{path}: model_sha256: written for weights {cal.model_sha256[:12]}…, but this model's "
                               f"weights are {actual[:12]}…. Fix: rerun `twinviz calibrate --model {model_dir}` "
                               "on a validation set")
    return cal
