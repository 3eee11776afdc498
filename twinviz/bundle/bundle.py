"""ModelBundle: the one contract for a model directory.

A model directory (``runs/NAME/model``, ``data/demo/model``) is a *bundle*: the weights and
their config, plus sidecars that belong to exactly those weights (file names: twinviz.files):

==========================  ==========================================  =====================
file                        what                                        written by
==========================  ==========================================  =====================
config.json                 ModelConfig + ``weights_sha256``            FaderNetwork.save_pretrained
model.safetensors           the weights                                 FaderNetwork.save_pretrained
provenance.json             trained on / epoch chosen on / twin loss    the trainer
validation_stats.json       per-star validation recon MSE (OOD)         the trainer
twin_metric.(json|safet.)   the twin metric, fitted on / chosen on      the trainer, ``fit-metric``
calibration.json            P(twin | distance), which distance          ``twinviz calibrate``
==========================  ==========================================  =====================

Every sidecar records the SHA-256 of the weights it belongs to and the fingerprint of the data it
was fitted and chosen on (:mod:`twinviz.spectra.fingerprint`). :meth:`ModelBundle.open` checks
the weights against their recorded digest and every sidecar against the weights: a mismatch is a
:class:`BundleError` naming the file and the fix, never a silent fallback. ``FaderNetwork``
knows nothing of sidecars; everything that ranks twins asks the bundle: :meth:`embed` a
dataset, then :meth:`twin_query` / :meth:`query` (one :class:`twinviz.twins.query.TwinQuery`).

Which vectors twins are ranked on (``rank_by``): ``"metric"`` (z in the twin metric), ``"z"``
(raw z), or ``"auto"``: the metric when the bundle has one and the data come from the domain
its twins came from (the built-in synthesizer, say), else raw z — a metric learned on synthetic
twins is not applied to survey stars unless asked.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinviz import files
from twinviz.model import FaderNetwork, ModelError, file_sha256

__all__ = ["BundleError", "ModelBundle", "RANK_CHOICES", "resolve_model_dir"]

RANK_CHOICES = ("auto", "metric", "z")


class BundleError(ModelError):
    """A model directory whose parts do not belong together; the message names the file and the fix."""


def resolve_model_dir(path) -> Path:
    """A model directory from itself or a training run directory (``runs/NAME`` holds ``model/``)."""
    path = Path(path)
    needed = (files.MODEL_CONFIG, files.MODEL_WEIGHTS)
    for candidate in (path, path / files.MODEL_DIR):
        if all((candidate / name).is_file() for name in needed):
            return candidate
    raise BundleError(f"{path}: model: no {' + '.join(needed)} here or in {path / files.MODEL_DIR}. "
                      "Fix: pass a model directory written by save_pretrained or a run directory of "
                      "`twinviz train` (runs/NAME), once its training has saved a model")


def _stale(path: Path, recorded: str, actual: str) -> BundleError:
    return BundleError(f"{path}: weights_sha256: written for weights {recorded[:12]}…, but "
                       f"{files.MODEL_WEIGHTS} beside it is {actual[:12]}…: it belongs to other weights. Fix: "
                       "delete it, or refit it for these weights (`twinviz fit-metric`, `twinviz calibrate`, "
                       "or retrain)")


@dataclass
class ModelBundle:
    """A checked model directory (module docstring). Build it with :meth:`open`."""

    directory: Path
    model: FaderNetwork
    weights_sha256: str
    metric: object | None = None          # twinviz.twins.metric.TwinMetric
    calibration: object | None = None     # twinviz.twins.confidence.TwinCalibration
    calibration_note: str = ""            # why there is none, when one was refused
    stats: dict | None = None             # validation_stats.json
    stats_note: str = ""                  # why there are none
    provenance: dict | None = None        # provenance.json
    _fingerprint: str = field(default="", repr=False)
    _metric_digest: str | None = field(default=None, repr=False)

    # --- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path, device: str = "cpu", skip=()) -> "ModelBundle":
        """Open and check a model or run directory. Raises :class:`ModelError` (a
        :class:`BundleError` for parts that do not belong together). ``skip``: sidecar file names
        not to load (a command about to replace one, e.g. ``twinviz calibrate``)."""
        from twinviz.bundle.provenance import read_provenance
        from twinviz.latents.ood import read_validation_stats
        from twinviz.twins.confidence import CalibrationError, load_calibration
        from twinviz.twins.metric import TwinMetric, TwinMetricError

        directory = resolve_model_dir(path)
        model = FaderNetwork.from_pretrained(directory, device=device)
        digest = model.weights_sha256 or file_sha256(directory / files.MODEL_WEIGHTS)
        try:
            metric = TwinMetric.load(directory, model.config.latent_dim)
        except TwinMetricError as exc:
            raise BundleError(str(exc)) from None
        if metric is not None and metric.info.get("weights_sha256") not in (None, digest):
            raise _stale(directory / files.TWIN_METRIC_CONFIG, metric.info["weights_sha256"], digest)
        stats, why = read_validation_stats(directory)
        if stats is None and "other weights" in why:
            raise BundleError(f"{why}. Fix: delete it (OOD flags then use the label range only), or rerun "
                              "the validation (`twinviz calibrate --model DIR --data VAL.nc` writes it)")
        if stats is not None and stats.get("weights_sha256") not in (None, digest):
            raise _stale(directory / files.MODEL_VALIDATION_STATS, stats["weights_sha256"], digest)
        try:
            calibration, cal_note = (None if files.MODEL_CALIBRATION in skip else load_calibration(directory)), ""
        except CalibrationError as exc:
            raise BundleError(str(exc)) from None
        provenance = read_provenance(directory)
        if provenance is not None and provenance.get("weights_sha256") not in (None, digest):
            raise _stale(directory / files.MODEL_PROVENANCE, provenance["weights_sha256"], digest)
        return cls(directory, model, digest, metric, calibration, cal_note, stats, why, provenance)

    # --- identity --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """12 hex digits naming the weights and every sidecar's content: the key of anything derived
        from this bundle (cached latents, reports, permalinks)."""
        if not self._fingerprint:
            h = hashlib.sha256(self.weights_sha256.encode())
            for name in (files.MODEL_CONFIG, files.TWIN_METRIC_CONFIG, files.TWIN_METRIC_WEIGHTS,
                         files.MODEL_VALIDATION_STATS, files.MODEL_CALIBRATION):
                p = self.directory / name
                if p.is_file():
                    h.update(name.encode())
                    h.update(p.read_bytes())
            self._fingerprint = h.hexdigest()[:12]
        return self._fingerprint

    @property
    def metric_digest(self) -> str:
        """12 hex digits of the twin metric's weights file ("" without a metric), hashed once."""
        if self._metric_digest is None:
            path = self.directory / files.TWIN_METRIC_WEIGHTS
            self._metric_digest = file_sha256(path)[:12] if self.metric is not None and path.is_file() else ""
        return self._metric_digest

    def distance_name(self, ranked: str) -> str:
        """The name of the distance of ``ranked`` ("z" or "metric"), as a calibration records it."""
        return f"z in twin metric {self.metric_digest}" if ranked == "metric" else "z"

    # --- what twins are ranked on ----------------------------------------------------------------
    def metric_source(self) -> dict:
        """The data the twin metric was fitted on ({} when unknown or without a metric)."""
        if self.metric is None:
            return {}
        fitted = self.metric.info.get("fitted_on")
        return fitted if isinstance(fitted, dict) else {"path": str(fitted or "")}

    def ranking(self, data_attrs: dict | None = None, rank_by: str = "auto") -> tuple[str, str]:
        """("metric" or "z", a sentence saying what twins are ranked on and why) for data with
        these attributes. Raises ModelError for ``rank_by="metric"`` without a metric."""
        from twinviz.spectra.fingerprint import data_domain

        if rank_by not in RANK_CHOICES:
            raise ModelError(f"rank_by: {rank_by!r} is unknown. Fix: use one of {', '.join(RANK_CHOICES)}")
        if self.metric is None:
            if rank_by == "metric":
                raise ModelError(f"{self.directory}: --rank-by metric: this model has no twin metric. Fix: "
                                 "`twinviz fit-metric`, or rank on raw z")
            loss = self.twin_term_record()
            if loss:  # z itself saw twins: trained with the twin term
                return "z", (f"raw z (the model has no twin metric; z is twin-supervised: twin term in the loss, "
                             f"{loss.get('twins', '?')} from {loss.get('path', '?')})")
            return "z", "raw z (the model has no twin metric: no twin supervision)"
        source = self.metric_source()
        n = self.metric.info.get("within_samples", "?")
        where = source.get("path") or "unknown data"
        supervised = f"z in the twin metric (twin-supervised: {n} stars with known twins from {where})"
        if rank_by == "z":
            return "z", "raw z (asked for; the model's twin metric is not used)"
        if rank_by == "metric":
            return "metric", supervised
        theirs = source.get("domain")
        ours = data_domain(data_attrs or {})
        if theirs and ours != theirs:
            return "z", (f"raw z: the twin metric was learned on {theirs} twins and these stars are {ours}, "
                         "so it is not applied (use --rank-by metric to apply it anyway)")
        return "metric", supervised

    def domain_note(self, data_attrs: dict | None) -> str:
        """"" when the data come from the domain the model was trained on (or it is unknown); else a
        sentence saying so: a model trained on synthetic spectra applied to survey stars, say."""
        from twinviz.spectra.fingerprint import data_domain

        trained = ((self.provenance or {}).get("trained_on") or {}).get("domain")
        ours = data_domain(data_attrs or {})
        if not trained or trained == "unknown" or ours == trained:
            return ""
        return (f"domain: the model was trained on {trained} spectra and these stars are {ours}: its latent and "
                "twins are not to be trusted as is (the OOD flags give the numbers); train on these spectra "
                "(`twinviz train --data SURVEY.zarr`, no twins needed)")

    # --- the twin query --------------------------------------------------------------------------
    @property
    def ood_criteria(self):
        from twinviz.latents.ood import OODCriteria

        cfg = self.model.config
        p99 = float(self.stats["recon_mse"]["p99"]) if self.stats else None
        return OODCriteria(tuple(float(v) for v in cfg.teff_range), tuple(float(v) for v in cfg.logg_range),
                           p99, missing="" if self.stats else self.stats_note)

    def embed(self, ds, *, rank_by: str = "auto", ood: bool = True, batch_size: int = 1024, chunk: int = 8192,
              progress=None):
        """The latent dataset of ``ds``: z, ``z_twin`` when twins are ranked in the metric, the OOD
        flags (``ood``) and attributes saying what twins are ranked on and which bundle made it."""
        from twinviz.latents.encode import encode_dataset

        self.ranking(ds.attrs, rank_by)  # an impossible choice fails before the encoding
        lat = encode_dataset(self.model, ds, batch_size=batch_size, chunk=chunk, progress=progress)
        return self.with_latents(lat, ds, rank_by=rank_by, ood=ood, batch_size=batch_size, chunk=chunk)

    def with_latents(self, lat, ds, *, rank_by: str = "auto", ood: bool = True, recon=None, batch_size: int = 1024,
                     chunk: int = 8192):
        """:meth:`embed`'s additions to latents (z) encoded elsewhere (a dask cluster, a cache):
        ``z_twin``, the ranking's attributes and (``ood``) the OOD flags; ``recon``: the stars'
        reconstruction MSE when already computed."""
        from twinviz.latents.ood import add_ood

        ranked, why = self.ranking(ds.attrs, rank_by)
        if ranked == "metric":
            lat["z_twin"] = (("star", "twin_axis"),
                             self.metric.project(lat["z"].values, ds["teff"].values, ds["logg"].values),
                             {"long_name": "z in the twin metric: (features(z, teff, logg) - mean) @ projection"})
        elif "z_twin" in lat:
            lat = lat.drop_vars("z_twin")
        domain = self.domain_note(ds.attrs)
        lat.attrs.update(model=str(self.directory), model_fingerprint=self.fingerprint, ranked_on=why,
                         distance=self.distance_name(ranked), domain_note=domain)
        lat["ood_domain"] = ("star", np.full(ds.sizes["star"], 1 if domain else 0, dtype=np.int8),
                             {"long_name": "1: the star is of another domain than the model's training spectra"})
        if ood:
            lat = add_ood(lat, self.model, ds, criteria=self.ood_criteria, batch_size=batch_size, chunk=chunk,
                          recon=recon)
        return lat

    def twin_query(self, latents, *, metric: str = "l1", backend: str = "auto"):
        """The :class:`~twinviz.twins.query.TwinQuery` over latents from :meth:`embed` (or `twinviz embed`)."""
        from twinviz.latents.encode import twin_vectors
        from twinviz.latents.ood import ood_from_latents
        from twinviz.twins.query import TwinQuery

        found = ood_from_latents(latents)
        ranked = "metric" if "z_twin" in latents else "z"
        return TwinQuery(
            twin_vectors(latents), latents["star"].values, latents["teff"].values, latents["logg"].values,
            group=latents["group"].values if "group" in latents else None,
            snr=latents["snr"].values if "snr" in latents else None,
            ranked_on=str(latents.attrs.get("ranked_on") or self.distance_name(ranked)),
            distance=str(latents.attrs.get("distance") or self.distance_name(ranked)),
            ood=None if found is None else found[0], recon_mse=None if found is None else found[1],
            calibration=self.calibration, calibration_note=self.calibration_note, metric=metric, backend=backend,
            z=latents["z"].values, domain_note=str(latents.attrs.get("domain_note", "")))

    def query(self, latents, star, k: int = 10, **options):
        """:meth:`twin_query` then :meth:`TwinQuery.query` for one star."""
        return self.twin_query(latents, **options).query(star, k)

    # --- provenance ------------------------------------------------------------------------------
    def fitted_records(self) -> dict[str, dict | None]:
        """Role → data record of everything this bundle was fitted or chosen on (provenance.py)."""
        prov = self.provenance or {}
        records = {"training data": prov.get("trained_on"), "epoch choice": prov.get("epoch_chosen_on")}
        if self.metric is not None:
            records["twin metric fit"] = self.metric_source() or None
            chosen = self.metric.info.get("chosen_on")
            records["twin metric choice"] = chosen if isinstance(chosen, dict) else None
        if self.calibration is not None:
            records["calibration"] = self.calibration.fitted_on or None
        return records

    def twin_term_record(self) -> dict:
        """The provenance's record of the twin term in the training loss ({} when it had none)."""
        loss = (self.provenance or {}).get("twin_supervision") or {}
        return loss if loss.get("loss") not in (None, "none") else {}

    def supervision(self, ranked: str) -> str:
        """The row label of this model's ranking: how many twins it saw, from where."""
        loss = self.twin_term_record()
        parts = []
        if loss:
            parts.append(f"twin term in the loss: {loss.get('twins', '?')} from {loss.get('path', '?')}")
        if ranked == "metric" and self.metric is not None:
            src = self.metric_source()
            parts.append(f"twin metric: {self.metric.info.get('within_samples', '?')} stars with known twins from "
                         f"{src.get('path') or 'unknown data'}")
        return "twin-supervised (" + "; ".join(parts) + ")" if parts else "unsupervised (no twin seen)"
