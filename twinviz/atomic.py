"""Atomic writes of artefacts: write to a temporary name beside the target, then ``os.replace``.

A crash or a full disk mid-write therefore never leaves a half-written file under the final
name, and readers (another process following a run, the app) only ever see complete files.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import xarray as xr

__all__ = ["atomic_directory", "atomic_path", "temporary_sibling", "write_dataset_atomic", "write_json_atomic", "write_text_atomic"]


def temporary_sibling(path: Path, suffix: str = "tmp") -> Path:
    """A hidden, unique name in the same folder as ``path`` (same filesystem: rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{suffix}")


@contextmanager
def atomic_path(path):
    """Yield a temporary sibling of ``path`` to write a file to; on success it replaces ``path``
    in one rename, on any error it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_directory(path):
    """Yield a temporary sibling of ``path`` to build a folder (a zarr store) in; on success it
    takes the place of ``path`` (an existing folder is swapped out only once the new one is
    complete), on any error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if path.exists():
            old = temporary_sibling(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8), fsync, then move it into place."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def write_json_atomic(path, obj, default=None) -> Path:
    """Write ``obj`` as indented JSON, fsync, then move it into place."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=default) + "\n")


def write_dataset_atomic(ds: xr.Dataset, path, fmt: str, *, star_chunk: int, encoding: dict | None = None) -> Path:
    """Write an xarray dataset to netCDF (``fmt="netcdf"``, via h5netcdf) or zarr (``"zarr"``,
    v2 layout, consolidated) atomically. An existing zarr folder is swapped out only after the
    new one is complete. ``star_chunk`` sets the zarr chunking along ``star``; ``encoding`` is
    passed to ``to_netcdf``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if v is not None}
    for var in ds.variables.values():
        var.encoding = {}
    if fmt == "zarr":
        with atomic_directory(path) as tmp:
            # zarr v2 layout: readable by every zarr implementation (v3 has no stable string dtype yet)
            ds.chunk({"star": min(ds.sizes["star"], star_chunk)}).to_zarr(
                tmp, mode="w", zarr_format=2, consolidated=True)
        return path
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding or {})
    return path


def file_sha256(path) -> str:
    """SHA-256 of a file (hex): the weights' digest that config.json and every sidecar record."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
