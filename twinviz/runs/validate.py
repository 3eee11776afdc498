"""Checking a launch before anything is created: the config's values and the dataset paths.

Values are checked against the types, choices, bounds and launch limits declared on
TrainConfig's fields (:mod:`twinviz.options`), then by ``TrainConfig.validate()``.
:func:`validate_launch` lists every problem in one :class:`RunError`; dataset paths must
resolve inside the data directory (no ``..`` climbing out, no absolute paths or symlinks
elsewhere, no missing files).
"""
from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path

from twinviz.options import check_options, meta, options_of
from twinviz.runs.datasets import DatasetInfo, dataset_info
from twinviz.devices import DeviceError, resolve_devices
from twinviz.training.config import TrainConfig, TrainConfigError

__all__ = ["LIMITS", "RunError", "resolve_data_path", "validate_launch"]

# The launch limits declared on TrainConfig's fields (twinviz.options): beyond them a value is a
# typing mistake that would tie a GPU up for days or exhaust memory, not a real experiment.
LIMITS: dict[str, tuple[float, float]] = {f.name: meta(f, "limits") for f in options_of(TrainConfig)
                                          if meta(f, "limits") and not meta(f, "max_items")}


class RunError(ValueError):
    """A run that cannot be launched or managed; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


def resolve_data_path(data_dir, value, field: str = "data") -> Path:
    """``value`` (relative to ``data_dir``, or absolute inside it) as an absolute path; raises
    :class:`RunError` when it escapes the data directory (``..``, absolute paths elsewhere,
    symlinks pointing out) or does not exist."""
    data_dir = Path(data_dir)
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise RunError(f"{field}: no dataset given; choose a file in {data_dir}")
    path = Path(value)
    if not path.is_absolute():
        path = data_dir / path
    root = data_dir.resolve()
    real = path.resolve()  # follows symlinks, collapses ".."
    if not real.is_relative_to(root):
        raise RunError(f"{field}: {value!r} is outside the data directory {root}; "
                       f"choose a dataset inside it")
    if not real.exists():
        raise RunError(f"{field}: {value!r} does not exist in the data directory {root}")
    return real


def _check_types(values: dict, problems: list[str]) -> None:
    """Drop unknown fields and coerce/flag wrongly typed values (in place)."""
    defaults = TrainConfig()
    known = {f.name for f in fields(TrainConfig)}
    for name in sorted(set(values) - known):
        problems.append(f"{name}: not a training option")
        values.pop(name)
    for name, value in list(values.items()):
        expected = type(getattr(defaults, name))
        if name == "val":
            continue
        if expected is bool:
            if not isinstance(value, bool):
                problems.append(f"{name}={value!r} must be true or false")
        elif expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    values[name] = int(value)
                else:
                    problems.append(f"{name}={value!r} must be a whole number")
        elif expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{name}={value!r} must be a number")
            elif not math.isfinite(value):
                problems.append(f"{name}={value!r} must be finite")
            else:
                values[name] = float(value)
        elif expected is str and not isinstance(value, str):
            problems.append(f"{name}={value!r} must be text")


def validate_launch(config, data_dir, device_choice="auto", *, busy=()) -> tuple[TrainConfig, list[str]]:
    """Check a config (TrainConfig or dict) and a device choice before anything is created.

    Returns the config with dataset paths made absolute, the device set and the progress bar
    off, and the device ids (see :func:`twinviz.devices.resolve_devices`; ``busy``: the
    devices running runs hold, a list or a callable giving one); raises :class:`RunError`
    listing every problem found.
    """
    problems: list[str] = []
    if isinstance(config, TrainConfig):
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise RunError(f"config must be a TrainConfig or a dict, not {type(config).__name__}")
    _check_types(values, problems)
    problems += check_options(values, TrainConfig, limits=True)
    found: dict[str, DatasetInfo] = {}
    for field_name in ("data", "val"):
        value = values.get(field_name)
        if field_name == "val" and not value:
            values["val"] = None
            continue
        try:
            values[field_name] = str(resolve_data_path(data_dir, value, field_name))
        except RunError as exc:
            problems.append(str(exc))
            continue
        info = dataset_info(values[field_name])  # a latents cache or a report is refused here
        if isinstance(info, str):
            problems.append(f"{field_name}: {value!r} is not a spectra dataset: {info}")
        else:
            found[field_name] = info
    if len(found) == 2 and (found["val"].grid, found["val"].n_pixels) != (found["data"].grid, found["data"].n_pixels):
        problems.append(f"val: {values['val']} is on grid {found['val'].grid} ({found['val'].n_pixels} px) but "
                        f"the training data are on {found['data'].grid} ({found['data'].n_pixels} px). "
                        "Fix: choose validation spectra on the training data's grid, or none")
    try:
        device_ids = resolve_devices(device_choice, busy=busy() if callable(busy) else busy)
    except DeviceError as exc:
        problems.append(str(exc))
        device_ids = ["cpu"]
    values["device"] = "cpu" if device_ids == ["cpu"] else "cuda"
    values["progress"] = False  # a tqdm bar in a log file is noise
    if not problems:
        try:
            cfg = TrainConfig.from_dict(values).validate()
        except (TrainConfigError, TypeError) as exc:
            problems.append(str(exc))
    if problems:
        raise RunError("cannot launch the run: " + "; ".join(problems), problems)
    return cfg, device_ids
