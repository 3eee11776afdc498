"""What a model bundle's parts were fitted and chosen on, and the guards that read it.

Every record is a :func:`twinviz.spectra.fingerprint.describe_data` dict. A bundle holds:

* ``provenance.json`` (written by the trainer with each kept model): ``trained_on`` (the training
  spectra), ``epoch_chosen_on`` (the validation spectra that chose the kept epoch), the epoch
  rule, and ``twin_supervision`` (how many known twins the training loss saw: the twin term);
* the twin metric's ``fitted_on`` / ``chosen_on`` (twin_metric.json);
* the calibration's ``fitted_on`` (calibration.json);
* the OOD statistics' ``data`` (validation_stats.json).

:mod:`twinviz.evaluation.registry` compares a dataset with them: ``twinviz evaluate`` refuses data
a row was fitted or chosen on unless told ``--allow-in-sample`` (then the rows say "in-sample"). :func:`same_inputs` is the
guard of ``train`` and ``fit-metric`` against ``--val`` equal to ``--data``.
"""
from __future__ import annotations

import json
from pathlib import Path

from twinviz import files
from twinviz.atomic import write_json_atomic
from twinviz.spectra.fingerprint import describe_data, same_data

__all__ = ["PROVENANCE_FORMAT", "describe_file", "read_provenance", "same_inputs",
           "write_provenance", "write_training_provenance"]

PROVENANCE_FORMAT = "twinviz-provenance"


def describe_file(path) -> dict | None:
    """:func:`describe_data` of a spectra file (opened lazily: no flux is read), or None when it
    cannot be opened."""
    if not path:
        return None
    from twinviz.spectra.dataset import DatasetError, open_spectra

    try:
        with open_spectra(path, validate=False) as ds:
            return describe_data(ds, path)
    except (DatasetError, OSError, ValueError, KeyError):
        return None


def write_provenance(model_dir, *, weights_sha256: str, trained_on: dict | None, epoch_chosen_on: dict | None,
                     epoch_rule: str = "", twin_supervision: dict | None = None) -> Path:
    """Write ``provenance.json`` into a model directory (atomically)."""
    doc = {"format": PROVENANCE_FORMAT, "weights_sha256": weights_sha256, "trained_on": trained_on,
           "epoch_chosen_on": epoch_chosen_on, "epoch_rule": epoch_rule,
           "twin_supervision": twin_supervision or {"loss": "none"}}
    return write_json_atomic(Path(model_dir) / files.MODEL_PROVENANCE, doc)


def write_training_provenance(model_dir, trained_on: dict | None, chosen_on: dict | None,
                              keep_latest: bool, twin_supervision: dict | None = None) -> Path:
    """The trainer's record beside each kept model: ``chosen_on`` the validation data (None
    without), ``keep_latest`` the trainer's latest-epoch rule,
    ``twin_supervision`` what the twin term saw as the trainer resolved it (None: no twin term)."""
    from twinviz.model import file_sha256

    epoch_rule = ("latest epoch (a twin metric is fitted after training)" if keep_latest
                  else "best validation score" if chosen_on is not None else "latest epoch (no validation data)")
    return write_provenance(model_dir, weights_sha256=file_sha256(Path(model_dir) / files.MODEL_WEIGHTS),
                            trained_on=trained_on, epoch_chosen_on=chosen_on, epoch_rule=epoch_rule,
                            twin_supervision=twin_supervision)


def read_provenance(model_dir) -> dict | None:
    """The provenance document, or None when the bundle has none (trained before it existed)."""
    path = Path(model_dir) / files.MODEL_PROVENANCE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        from twinviz.model import ModelError

        raise ModelError(f"{path}: unreadable ({exc}). Fix: delete it (the bundle then has no training "
                          "record) or retrain") from None
    return doc if isinstance(doc, dict) and doc.get("format") == PROVENANCE_FORMAT else None


def same_inputs(data_path, val_path) -> bool:
    """Whether --val names the same data as --data: the same file, or data with one fingerprint."""
    if not data_path or not val_path:
        return False
    a, b = Path(data_path), Path(val_path)
    try:
        if a.exists() and b.exists() and a.resolve() == b.resolve():
            return True
    except OSError:
        pass
    return same_data(describe_file(a), describe_file(b))
