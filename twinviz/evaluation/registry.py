"""The representations ``twinviz evaluate`` scores, as one registry, and the provenance guard.

Every row of a report is a :class:`Representation`: a key and label, the supervision it had
("unsupervised (no twin seen)", "twin-supervised (twin metric: 20000 stars with known twins from train.nc)", …),
the data it was fitted or chosen on (:func:`twinviz.spectra.fingerprint.describe_data` records,
or bare paths for older files), and a function that gives its per-star vectors. One function,
:func:`twinviz.evaluation.compute.evaluate_representation`, scores them all.

:func:`check_provenance` compares the evaluated data with every record: a row whose fitting or
choice data *is* the evaluated data would be scored in-sample. ``evaluate`` refuses that
(:class:`InSampleError`, naming the rows, the roles and the fix) unless ``allow_in_sample``, in
which case the rows say "in-sample: …" in their label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["InSampleError", "Representation", "check_provenance", "data_role", "model_representations"]


class InSampleError(ValueError):
    """The evaluated data are what a method was fitted or chosen on."""


@dataclass
class Representation:
    key: str
    label: str
    supervision: str
    vectors: Callable[[], object]         # () → [N, d] per-star vectors
    fitted_on: dict = field(default_factory=dict)  # role → describe_data record or {"path": …}
    sampled: bool = False                  # pixel-space: rank a sample of query stars
    model: object | None = None            # a FaderNetwork whose MSE and swapped MSE go in the row
    z: Callable[[], object] | None = None  # () → its raw z (for the errors)
    in_sample: list[str] = field(default_factory=list)


def _record(value) -> dict | None:
    if isinstance(value, dict):
        return value or None
    return {"path": str(value)} if value else None


def _same(record: dict | None, data: dict, data_path) -> bool:
    """Same data: by fingerprint when both have one, else by path (files of older records)."""
    from pathlib import Path

    from twinviz.spectra.fingerprint import same_data

    if not record:
        return False
    if record.get("fingerprint") and data.get("fingerprint"):
        return same_data(record, data)
    path = record.get("path")
    if not path or not data_path:
        return False
    try:
        return Path(path).resolve() == Path(data_path).resolve()
    except OSError:
        return False


def check_provenance(representations, data: dict, data_path, *, allow_in_sample: bool) -> None:
    """Mark (or refuse) every row whose fitting/choice data is the evaluated data."""
    found = []
    for rep in representations:
        rep.in_sample = [role for role, record in rep.fitted_on.items() if _same(_record(record), data, data_path)]
        if rep.in_sample:
            found.append(f"{rep.label}: {', '.join(rep.in_sample)}")
            rep.label = f"{rep.label} [in-sample: {', '.join(rep.in_sample)}]"
    if found and not allow_in_sample:
        raise InSampleError(f"{data_path}: these are the data some rows were fitted or chosen on, so their numbers "
                            f"would be in-sample ({'; '.join(found)}). Fix: evaluate on held-out data (e.g. a test "
                            "split simulated with another seed), or pass --allow-in-sample to report them marked "
                            "'in-sample'")


def data_role(representations, data: dict) -> str:
    """What the evaluated file is to these methods: "held-out data", or the roles it played."""
    roles = sorted({role for rep in representations for role in rep.in_sample})
    if not roles:
        return "held-out data (no row was fitted or chosen on it)"
    if roles == ["epoch choice"]:
        return "validation set (chose the kept epoch)"
    return "in-sample for some rows: " + ", ".join(roles)


def model_representations(key: str, label: str, bundle, ds, *, rank_by: str, batch_size: int, chunk: int) -> list:
    """The rows of one model bundle: ranked as the bundle ranks these data and, when that is the
    twin metric, raw z beside it (the metric's effect shows)."""
    from twinviz.latents.encode import encode_dataset

    cache = {}

    def latents():
        if "z" not in cache:
            cache["z"] = encode_dataset(bundle.model, ds, batch_size=batch_size, chunk=chunk)["z"].values
        return cache["z"]

    ranked, why = bundle.ranking(ds.attrs, rank_by)
    records = bundle.fitted_records()
    own = {role: records.get(role) for role in ("training data", "epoch choice")}
    rows = []
    if ranked == "metric":
        metric = bundle.metric
        rows.append(Representation(
            key, f"{label} in its twin metric", bundle.supervision("metric"),
            lambda: metric.project(latents(), ds["teff"].values, ds["logg"].values),
            fitted_on={**own, "twin metric fit": records.get("twin metric fit"),
                       "twin metric choice": records.get("twin metric choice")},
            model=bundle.model, z=latents))
        rows.append(Representation(f"{key}_raw_z", f"{label}, raw z (no twin metric)", bundle.supervision("z"),
                                   latents, fitted_on=own, model=bundle.model, z=latents))
    else:
        note = "" if bundle.metric is None else " (its twin metric not applied: " + why + ")"
        rows.append(Representation(key, f"{label}, raw z{note}", bundle.supervision("z"), latents, fitted_on=own,
                                   model=bundle.model, z=latents))
    return rows
