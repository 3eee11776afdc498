"""Which data is this? One fingerprint scheme for every record of provenance.

A model bundle's sidecars (twin metric, calibration, OOD statistics, the training record) and
a pixel finder each say which data they were fitted on and chosen on, so that ``twinviz
evaluate`` can refuse to score a method on its own fitting data (docs/evaluation.md,
"Provenance"). They say it with :func:`describe_data`:

* ``fingerprint`` — SHA-256 (first 16 hex digits) of the number of stars, the star ids in
  order, and the attributes that say how the data were made (:data:`GENERATOR_KEYS`: the
  generator, its version, seed, SNR, chemistry regime, population, nuisance preset, grid …).
  Two files written by the same ``twinviz simulate`` command share it; a copy under another name
  shares it; data re-simulated with another seed, or another survey import, do not. It reads
  no flux, so it costs milliseconds at any size.
* ``domain`` — the kind of data: ``twinviz.synth`` for the built-in synthesizer, ``APOGEE`` for
  survey imports, the first word of the ``generator`` attribute otherwise (``unknown`` without
  one). A twin metric learned on one domain is not applied to another by default.
* ``path`` and ``n_star`` — for messages.

Importing this module imports numpy only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

__all__ = ["GENERATOR_KEYS", "data_domain", "data_fingerprint", "describe_data", "same_data"]

#: The attributes that say how a dataset was made (written by `twinviz simulate` and the importer).
GENERATOR_KEYS = ("generator", "generator_version", "linelist_version", "seed", "snr", "chemistry", "population",
                  "nuisance_preset", "group_sizes", "field_fraction", "n_clusters", "grid_id", "label_source",
                  "source_files")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def data_fingerprint(ds) -> str:
    """16 hex digits naming a dataset by its star ids and generator attributes (module docstring)."""
    stars = np.asarray(ds["star"].values)
    ids = hashlib.sha256("\n".join(map(str, stars.tolist())).encode()).hexdigest()
    attrs = {k: _plain(ds.attrs[k]) for k in GENERATOR_KEYS if k in ds.attrs}
    doc = json.dumps({"n_star": int(stars.size), "ids": ids, "attrs": attrs}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def data_domain(attrs) -> str:
    """``twinviz.synth``, ``APOGEE``, … (module docstring)."""
    generator = str(dict(attrs).get("generator", "") or "").strip()
    return generator.split()[0] if generator else "unknown"


def describe_data(ds, path=None) -> dict:
    """{"path", "fingerprint", "domain", "n_star"}: what a sidecar records of its data."""
    path = path if path is not None else ds.encoding.get("source", "")
    return {"path": str(Path(path)) if path else "", "fingerprint": data_fingerprint(ds),
            "domain": data_domain(ds.attrs), "n_star": int(ds.sizes["star"])}


def same_data(a: dict | None, b: dict | None) -> bool:
    """Whether two :func:`describe_data` records name the same data (by fingerprint)."""
    return bool(a and b and a.get("fingerprint") and a.get("fingerprint") == b.get("fingerprint"))
