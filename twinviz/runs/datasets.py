"""The spectra datasets a data folder offers for training: the one home of that listing.

A data folder usually holds more than training data: the app caches latents beside the
spectra (``*-latents.nc``), reports write ``ranks.nc``, people keep other netCDF files there.
:func:`spectra_datasets` walks the folder (3 levels, hidden entries skipped), opens every
``.nc``/``.h5``/``.zarr`` candidate *lazily* and keeps those whose structure is a spectra
dataset (``twinviz.spectra.dataset.validate`` without the pass over the flux values: only the
header, the coordinates and the per-star labels are read). Each verdict is cached by the
file's size and modification time, so listing a folder again costs a ``stat`` per file.

:func:`default_pair` chooses the form's defaults: the preferred file (the app passes the
dataset it explores — for the bundled demo, the demo's spectra), else a file named like
training data, else the first; validation is a *different* file named like validation data
on the same grid, or none.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATASET_SUFFIXES", "DatasetInfo", "candidate_paths", "dataset_info", "default_pair",
           "inspect_dataset", "spectra_datasets"]

log = logging.getLogger(__name__)

DATASET_SUFFIXES = (".nc", ".zarr", ".h5", ".hdf5")
MAX_DEPTH = 3
_TRAIN_NAME = re.compile(r"(^|[^a-z])train", re.IGNORECASE)
_VAL_NAME = re.compile(r"(^|[^a-z])(val|valid|validation)([^a-z]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class DatasetInfo:
    """One valid spectra dataset: ``path`` relative to the data folder, its size and grid."""

    path: str
    n_stars: int
    n_pixels: int
    grid: str
    has_groups: bool

    @property
    def label(self) -> str:
        """What a picker shows: the path and the number of stars."""
        return f"{self.path} ({self.n_stars:,} stars)"


def candidate_paths(data_dir) -> list[Path]:
    """Files/folders under ``data_dir`` with a dataset suffix (a ``.zarr`` folder is one
    entry), hidden ones skipped, at most :data:`MAX_DEPTH` folders deep; sorted."""
    root = Path(data_dir).resolve()
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        keep = []
        for d in dirnames:
            if d.startswith("."):
                continue
            if d.endswith(".zarr"):
                found.append(Path(dirpath) / d)
            elif depth < MAX_DEPTH:
                keep.append(d)
        dirnames[:] = keep
        found += [Path(dirpath) / f for f in filenames
                  if f.endswith(DATASET_SUFFIXES) and not f.startswith(".")]
    return sorted(found)


def _signature(path: Path) -> tuple | None:
    """What changes when a dataset is rewritten: size and mtime (of a zarr store's metadata)."""
    try:
        parts = [path]
        if path.is_dir():
            parts += [path / name for name in ("zarr.json", ".zmetadata", ".zattrs", ".zgroup")
                      if (path / name).exists()]
        return tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in parts)
    except OSError:
        return None


def inspect_dataset(path, data_dir=None) -> DatasetInfo | str:
    """A :class:`DatasetInfo` when ``path`` is a spectra dataset, else the reason it is not
    (a one-line "file: field: problem. Fix: …" message). Reads the header lazily."""
    import numpy as np

    from twinviz.spectra.dataset import DatasetError, open_spectra, validate
    from twinviz.spectra.grid import identify_grid

    path = Path(path)
    rel = str(path.relative_to(Path(data_dir).resolve())) if data_dir is not None else str(path)
    try:
        ds = open_spectra(path, validate=False)
    except DatasetError as exc:
        return str(exc)
    try:
        validate(ds, source=path, check_values=False)
        wave = np.asarray(ds["wavelength"].values, dtype=np.float64)
        grid = str(ds.attrs.get("grid_id") or identify_grid(wave).id)
        group = np.asarray(ds["group"].values)
        return DatasetInfo(path=rel, n_stars=int(ds.sizes["star"]), n_pixels=int(wave.size), grid=grid,
                           has_groups=bool((group >= 0).any()))
    except DatasetError as exc:
        return str(exc)
    finally:
        ds.close()


_CACHE: dict[tuple, tuple[tuple, DatasetInfo | str]] = {}
_CACHE_LOCK = threading.Lock()


def dataset_info(path, data_dir=None) -> DatasetInfo | str:
    """:func:`inspect_dataset`, cached by the file's size and modification time."""
    path = Path(path).absolute()
    signature = _signature(path)
    if signature is None:
        return f"{path}: file: cannot be read. Fix: check that it exists and is readable"
    key = (str(path), str(data_dir))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    verdict = inspect_dataset(path, data_dir)
    with _CACHE_LOCK:
        _CACHE[key] = (signature, verdict)
    if isinstance(verdict, str):
        log.debug("not a spectra dataset: %s", verdict)
    return verdict


def spectra_datasets(data_dir) -> list[DatasetInfo]:
    """The valid spectra datasets under ``data_dir`` (see the module docstring), sorted by path."""
    root = Path(data_dir).resolve()
    # a symlink leading out of the folder is not offered (a launch would refuse it)
    verdicts = (dataset_info(path, root) for path in candidate_paths(root) if path.resolve().is_relative_to(root))
    return [v for v in verdicts if isinstance(v, DatasetInfo)]


def default_pair(datasets: list[DatasetInfo], preferred: str | None = None) -> tuple[str | None, str | None]:
    """(training, validation) defaults among ``datasets``: see the module docstring."""
    by_path = {d.path: d for d in datasets}
    if not by_path:
        return None, None
    if preferred in by_path:
        data = by_path[preferred]
    else:
        named = [d for d in datasets if _TRAIN_NAME.search(Path(d.path).name)]
        data = (named or datasets)[0]
    partners = [d for d in datasets if d.path != data.path and d.grid == data.grid
                and d.n_pixels == data.n_pixels and _VAL_NAME.search(Path(d.path).name)]
    # Prefer the validation file beside the training file (train.nc → val.nc in one folder).
    partners.sort(key=lambda d: (Path(d.path).parent != Path(data.path).parent, d.path))
    return data.path, (partners[0].path if partners else None)
