"""Latent datasets on disk: where they are cached, and their atomic save and load.

The layout of a latent dataset is described in :mod:`twinviz.latents.encode`.
"""
from __future__ import annotations

from pathlib import Path

import xarray as xr

from twinviz.atomic import write_dataset_atomic
from twinviz.spectra.dataset import DatasetError, file_format

__all__ = ["default_latents_path", "load_latents", "save_latents"]


def default_latents_path(data_path) -> Path:
    """Where latents of ``data_path`` are cached by default: ``<stem>.latents.nc`` beside it."""
    data_path = Path(data_path)
    stem = data_path.name
    for suffix in (".nc", ".zarr", ".nc4", ".h5"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return data_path.with_name(f"{stem}.latents.nc")


def save_latents(latents: xr.Dataset, path) -> Path:
    """Write a latent dataset atomically (temporary name, then ``os.replace``) to netCDF or zarr."""
    path = Path(path)
    fmt = file_format(path, "latents")
    if "z" not in latents.variables:
        raise DatasetError(f"{path}: z: the dataset to save has no latents. Fix: build it with "
                           "twinviz.latents.encode.encode_dataset")
    return write_dataset_atomic(latents, path, fmt, star_chunk=65536)


def load_latents(path) -> xr.Dataset:
    """Read a latent dataset written by :func:`save_latents` into memory (and close the file)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file: does not exist. Fix: make it with "
                           f"`twinviz embed --model DIR --data FILE --out {path}`")
    fmt = file_format(path, "latents")
    try:
        ds = xr.open_zarr(path) if fmt == "zarr" else xr.open_dataset(path, engine="h5netcdf")
        ds = ds.load()
        ds.close()
    except Exception as exc:
        raise DatasetError(f"{path}: file: cannot be read as {fmt} ({type(exc).__name__}: {exc}). "
                           "Fix: re-create it with `twinviz embed`") from exc
    if "z" not in ds.variables or ds["z"].dims != ("star", "latent"):
        raise DatasetError(f"{path}: z: no latent variable z(star, latent). Fix: this is not a latent "
                           "file; make one with `twinviz embed`")
    ds.encoding["source"] = str(path)
    return ds
