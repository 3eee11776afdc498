"""Out-of-distribution flags — the one home of "can this model speak for this star?".

A star is flagged ``ood`` when either holds:

* **labels**: its Teff or logg lies outside the model's training range
  (``ModelConfig.teff_range`` / ``logg_range``, the training set's min/max; NaN counts as
  outside). The decoder would extrapolate, and the adversary never saw such stars.
* **reconstruction**: its reconstruction MSE — mean over its good pixels (mask False, finite) of
  (D(E(x,u),u) − x)², flux units² — exceeds ``RECON_FACTOR`` × the 99th percentile of the same
  per-star MSE on the validation subset the model was chosen on. The trainer stores that
  distribution beside the weights (``validation_stats.json``, written atomically with the best
  model; :func:`write_validation_stats`). A spectrum reconstructed that badly is unlike anything
  the model was validated on, whatever its labels.

A model without ``validation_stats.json`` (trained before it existed, or without ``--val``) is
judged on the label range only, and every description says so. The flags travel in latent files
(``twinviz embed``: ``recon_mse``, ``ood``, ``ood_labels``, ``ood_recon`` per star and the
criteria as ``ood_*`` attributes) and are shown by ``twinviz twins`` and the app.

Caveat: the MSE includes the noise of the spectrum, so a model validated on noiseless spectra
flags every noisy real star; a model validated on real spectra flags stars far noisier than its
validation stars. That is the intended reading: its twins are not to be trusted as is.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinviz.atomic import write_json_atomic
from twinviz import files as runfiles

__all__ = ["RECON_FACTOR", "OODCriteria", "add_ood", "criteria_for", "ood_from_latents",
           "read_validation_stats",
           "star_recon_mse", "validation_stats", "write_validation_stats"]

#: A star is flagged when its reconstruction MSE exceeds this many times the validation p99.
RECON_FACTOR = 3.0
STATS_FORMAT = "twinviz-validation-stats"
STATS_FORMAT_VERSION = 1
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


# --------------------------------------------------------------------------------------------
# the validation distribution stored beside the weights
# --------------------------------------------------------------------------------------------
def validation_stats(star_mse) -> dict:
    """Summary of per-star reconstruction MSEs: n_stars, mean, p50, p90, p99, max (flux units²)."""
    v = np.asarray(star_mse, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n_stars": 0}
    out = {"n_stars": int(v.size), "mean": float(v.mean())}
    out.update({k: float(np.quantile(v, q)) for k, q in QUANTILES.items()})
    out["max"] = float(v.max())
    return out


def _weights_digest(model_dir: Path) -> str | None:
    path = Path(model_dir) / runfiles.MODEL_WEIGHTS
    if not path.is_file():
        return None
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_sha256(model_dir: Path) -> str | None:
    from twinviz.model import file_sha256

    path = Path(model_dir) / runfiles.MODEL_WEIGHTS
    return file_sha256(path) if path.is_file() else None


def write_validation_stats(model_dir, star_mse, *, source=None, epoch=None, step=None, data=None) -> Path:
    """Write ``validation_stats.json`` into a model directory (atomically), for the weights that
    are in it now: the distribution of per-star validation reconstruction MSEs."""
    model_dir = Path(model_dir)
    doc = {"format": STATS_FORMAT, "format_version": STATS_FORMAT_VERSION,
           "recon_mse": validation_stats(star_mse),
           "units": "flux units²; per star, the mean over good pixels of (D(E(x,u),u) − x)²",
           "validation": {"file": str(source) if source else None, "epoch": epoch, "step": step, "data": data},
           "weights_sha256": _weights_sha256(model_dir)}
    return write_json_atomic(model_dir / runfiles.MODEL_VALIDATION_STATS, doc)


def read_validation_stats(model_dir) -> tuple[dict | None, str]:
    """(the stats document, "") or (None, why it cannot be used) for a model directory."""
    if model_dir is None:
        return None, "the model's directory is unknown"
    path = Path(model_dir) / runfiles.MODEL_VALIDATION_STATS
    if not path.is_file():
        return None, f"the model has no validation stats ({runfiles.MODEL_VALIDATION_STATS})"
    try:
        doc = json.loads(path.read_text())
        p99 = float(doc["recon_mse"]["p99"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc})"
    if doc.get("format") != STATS_FORMAT or not math.isfinite(p99):
        return None, f"{path}: not a {STATS_FORMAT} file with a finite p99"
    digest = doc.get("weights_sha256")
    legacy = doc.get("weights_sha1")  # files written before the one digest scheme
    if (digest and digest != _weights_sha256(Path(model_dir))) or (
            not digest and legacy and legacy != _weights_digest(Path(model_dir))):
        return None, f"{path}: belongs to other weights than {runfiles.MODEL_WEIGHTS} beside it"
    return doc, ""


# --------------------------------------------------------------------------------------------
# the criteria and the flags
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OODCriteria:
    """What a star is compared with. ``recon_p99`` None: label range only (``missing`` says why)."""

    teff_range: tuple[float, float]
    logg_range: tuple[float, float]
    recon_p99: float | None = None
    recon_factor: float = RECON_FACTOR
    missing: str = ""

    @property
    def recon_threshold(self) -> float | None:
        return None if self.recon_p99 is None else self.recon_factor * self.recon_p99

    @property
    def basis(self) -> str:
        """One line: what the flags are based on."""
        t, g = self.teff_range, self.logg_range
        labels = f"Teff {t[0]:.0f}–{t[1]:.0f} K, logg {g[0]:.2f}–{g[1]:.2f} dex (training range)"
        if self.recon_p99 is None:
            return f"label range only ({labels}): {self.missing or 'no validation stats'}"
        return (f"{labels}; recon MSE ≤ {self.recon_factor:g} × validation p99 {self.recon_p99:.3g} "
                f"= {self.recon_threshold:.3g}")

    def flags(self, teff, logg, recon_mse=None) -> dict[str, np.ndarray]:
        """Per-star booleans ``ood_labels``, ``ood_recon`` (False without stats) and ``ood``."""
        teff = np.asarray(teff, dtype=np.float64)
        logg = np.asarray(logg, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            labels = ~((teff >= self.teff_range[0]) & (teff <= self.teff_range[1])
                       & (logg >= self.logg_range[0]) & (logg <= self.logg_range[1]))
            if self.recon_threshold is None or recon_mse is None:
                recon = np.zeros(teff.shape, dtype=bool)
            else:
                recon = np.asarray(recon_mse, dtype=np.float64) > self.recon_threshold
        return {"ood_labels": labels, "ood_recon": recon, "ood": labels | recon}

    def describe(self, teff: float, logg: float, recon_mse: float | None = None) -> str:
        """Why one star is out of distribution, with its numbers ("" when it is not)."""
        reasons = []
        t0, t1 = self.teff_range
        g0, g1 = self.logg_range
        if not (t0 <= teff <= t1):
            reasons.append(f"Teff {teff:.0f} K outside the training range {t0:.0f}–{t1:.0f} K")
        if not (g0 <= logg <= g1):
            reasons.append(f"logg {logg:.2f} outside the training range {g0:.2f}–{g1:.2f}")
        limit = self.recon_threshold
        if limit is not None and recon_mse is not None and recon_mse > limit:
            reasons.append(f"recon MSE {recon_mse:.3g} > {self.recon_factor:g} × validation p99 "
                           f"{self.recon_p99:.3g} ({recon_mse / self.recon_p99:.3g} × p99)")
        if not reasons:
            return ""
        if limit is None:
            reasons.append("label range only: " + (self.missing or "no validation stats"))
        return "; ".join(reasons)

    def short(self, teff: float, logg: float, recon_mse: float | None = None) -> str:
        """A table cell: "⚠ Teff 2627 K < 4000, recon 2.1e+04× p99" ("" when in distribution)."""
        parts = []
        for name, v, (lo, hi), fmt in (("Teff", teff, self.teff_range, "{:.0f}"),
                                       ("logg", logg, self.logg_range, "{:.2f}")):
            unit = " K" if name == "Teff" else ""
            if v < lo:
                parts.append(f"{name} {fmt.format(v)}{unit} < {fmt.format(lo)}")
            elif v > hi:
                parts.append(f"{name} {fmt.format(v)}{unit} > {fmt.format(hi)}")
            elif not math.isfinite(v):
                parts.append(f"{name} unknown")
        limit = self.recon_threshold
        if limit is not None and recon_mse is not None and recon_mse > limit:
            parts.append(f"recon {recon_mse / self.recon_p99:.2g}× p99")
        if not parts:
            return ""
        return "⚠ " + ", ".join(parts) + (" (labels only)" if limit is None else "")

    def to_attrs(self) -> dict:
        """The criteria as ``ood_*`` attributes of a latent file."""
        return {"ood_teff_range": list(self.teff_range), "ood_logg_range": list(self.logg_range),
                "ood_recon_p99": self.recon_p99 if self.recon_p99 is not None else float("nan"),
                "ood_recon_factor": self.recon_factor, "ood_missing": self.missing, "ood_basis": self.basis}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "OODCriteria | None":
        if "ood_teff_range" not in attrs:
            return None
        p99 = float(attrs.get("ood_recon_p99", float("nan")))
        return cls(tuple(float(v) for v in np.ravel(attrs["ood_teff_range"])),
                   tuple(float(v) for v in np.ravel(attrs["ood_logg_range"])),
                   p99 if math.isfinite(p99) else None, float(attrs.get("ood_recon_factor", RECON_FACTOR)),
                   str(attrs.get("ood_missing", "")))


def criteria_for(model, model_dir=None) -> OODCriteria:
    """The criteria of a model: its label ranges and, when ``model_dir`` holds matching
    validation stats, their p99."""
    doc, why = read_validation_stats(model_dir)
    cfg = model.config
    return OODCriteria(tuple(float(v) for v in cfg.teff_range), tuple(float(v) for v in cfg.logg_range),
                       float(doc["recon_mse"]["p99"]) if doc else None, missing=why)


# --------------------------------------------------------------------------------------------
# a dataset's stars
# --------------------------------------------------------------------------------------------
def star_recon_mse(model, ds, z, *, batch_size: int = 1024, chunk: int = 8192) -> np.ndarray:
    """Each star's reconstruction MSE [N] (flux units², good pixels; NaN when none is good),
    from its latent ``z`` [N, d]; streams the flux in chunks of stars."""
    from twinviz.latents.errors import squared_error_sums
    from twinviz.latents.encode import iter_star_chunks

    teff = np.asarray(ds["teff"].values, np.float32)
    logg = np.asarray(ds["logg"].values, np.float32)
    out = np.full(ds.sizes["star"], np.nan)
    z = np.ascontiguousarray(z, dtype=np.float32)
    for start, stop, block in iter_star_chunks(ds, chunk):
        flux = block["flux"].astype(np.float32)
        good = np.isfinite(flux)
        if "mask" in block:
            good &= ~block["mask"].astype(bool)
        flux = np.where(good, flux, np.float32(1.0))
        squared_error_sums(model, z, flux, teff[start:stop], logg[start:stop], good,
                           np.full(ds.sizes["star"], -1), start=start, batch_size=batch_size,
                           star_mse=out[start:stop])
    return out


def add_ood(latents, model, ds, model_dir=None, *, batch_size: int = 1024, chunk: int = 8192, recon=None,
            criteria=None):
    """``latents`` with ``recon_mse``, ``ood_labels``, ``ood_recon``, ``ood`` per star and the
    criteria as ``ood_*`` attributes (see the module docstring). ``recon``: the stars'
    reconstruction MSE [N] when already computed (:mod:`twinviz.latents.distributed` does it in
    the encoding pass), else one streamed decoder pass computes it here. ``criteria``: the
    bundle's (:attr:`twinviz.bundle.ModelBundle.ood_criteria`), else read from ``model_dir``."""
    criteria = criteria if criteria is not None else criteria_for(model, model_dir)
    if recon is None:
        recon = star_recon_mse(model, ds, latents["z"].values, batch_size=batch_size, chunk=chunk)
    out = latents.copy()
    out["recon_mse"] = ("star", recon.astype(np.float32),
                        {"long_name": "reconstruction MSE over good pixels", "units": "flux units²"})
    for name, values in criteria.flags(ds["teff"].values, ds["logg"].values, recon).items():
        out[name] = ("star", values.astype(np.int8), {"long_name": f"out-of-distribution flag ({name})",
                                                      "flag_values": "0 in, 1 out"})
    out.attrs.update(criteria.to_attrs())
    return out


def ood_from_latents(latents) -> tuple[OODCriteria, np.ndarray] | None:
    """(criteria, recon_mse [N]) stored in a latent file by :func:`add_ood`, or None."""
    criteria = OODCriteria.from_attrs(latents.attrs)
    if criteria is None or "recon_mse" not in latents.variables:
        return None
    return criteria, np.asarray(latents["recon_mse"].values, dtype=np.float64)
