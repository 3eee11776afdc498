"""Where an import writes: a zarr store filled a chunk of stars at a time (resumable through a
journal), or a netCDF file written once at the end.

**Resumable zarr imports.** The stars go to ``<out>.partial`` (a zarr store) and, after every
chunk appended to it, one line is appended (and fsynced) to ``<out>.import.journal``: how many
input files are done, how many stars the store holds, and the report rows of that chunk. A
killed import leaves both behind; ``--resume`` replays the complete journal lines, cuts every
array of the store back to the star count of the last complete line (rows appended after it,
or half-appended when the process died, are dropped) and carries on with the next file. The
input files are listed in a fixed order and the journal's first line records a hash of that list
and of the options, so a resume with other inputs or options is refused. Nothing is duplicated
(rows beyond the journal are cut) and nothing is lost (every file after the last journalled one
is read again).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from twinviz.atomic import temporary_sibling
from twinviz.spectra.dataset import DatasetError, open_spectra, save_spectra

__all__ = ["Journal", "MemorySink", "ZarrSink", "partial_paths"]

JOURNAL_FORMAT = "twinviz-import-journal-1"


def partial_paths(out: Path) -> tuple[Path, Path]:
    """The partial store and the journal of an import into ``out``."""
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".import.journal")


def _fingerprint(files, options: dict) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f).encode() + b"\n")
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    return h.hexdigest()


class Journal:
    """The append-only record of a zarr import (one JSON line per chunk written)."""

    def __init__(self, path: Path):
        self.path = path

    def start(self, files, options: dict) -> None:
        head = {"format": JOURNAL_FORMAT, "files": len(files), "fingerprint": _fingerprint(files, options)}
        with open(self.path, "w") as fh:
            fh.write(json.dumps(head) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, entry: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def replay(self, files, options: dict, out: Path) -> list[dict]:
        """The complete chunk lines of a journal written for the same files and options."""
        lines = self.path.read_text().splitlines()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the line being written when the process died
        head = entries[0] if entries else {}
        if head.get("format") != JOURNAL_FORMAT:
            raise DatasetError(f"{self.path}: journal: is not a twinviz import journal. Fix: pass --overwrite "
                               f"to start the import into {out} again")
        if head.get("fingerprint") != _fingerprint(files, options):
            raise DatasetError(f"{self.path}: journal: was written for other input files or options "
                               f"({head.get('files')} files then, {len(files)} now). Fix: resume with the same "
                               "paths and options, or pass --overwrite to start again")
        return entries[1:]

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()


class ZarrSink:
    """Append chunks of stars to the partial zarr store; move it into place at the end."""

    def __init__(self, out: Path, chunk: int):
        self.out, self.chunk = out, chunk
        self.tmp = partial_paths(out)[0]
        self.n, self.attrs = 0, {}

    def truncate(self, n: int) -> None:
        """Cut every star-indexed array back to ``n`` stars (those the journal vouches for)."""
        import zarr

        if n == 0:
            self.abort()
            self.n = 0
            return
        if not self.tmp.exists():
            raise DatasetError(f"{self.out}: --resume: the journal lists {n} stored stars but {self.tmp} is "
                               "gone. Fix: pass --overwrite to start the import again")
        group = zarr.open_group(str(self.tmp), mode="r+", zarr_format=2)
        for name, arr in group.arrays():
            if (arr.attrs.get("_ARRAY_DIMENSIONS") or [None])[0] == "star" and arr.shape[0] != n:
                arr.resize((n,) + arr.shape[1:])
        self.attrs = {k: v for k, v in group.attrs.items()}
        self.n = n

    def write(self, ds):
        ds = ds.copy()
        if self.n == 0:
            self.attrs = dict(ds.attrs)  # twinviz_schema, grid_id: appends would overwrite them
            enc = {v: {"chunks": (self.chunk,) + ds[v].shape[1:]} for v in ds.data_vars}
            ds.to_zarr(self.tmp, mode="w", zarr_format=2, consolidated=False, encoding=enc)
        else:
            ds = ds.drop_vars([c for c in ("wavelength", "element") if c in ds.coords])
            ds.attrs = {}
            ds.to_zarr(self.tmp, append_dim="star", zarr_format=2, consolidated=False)
        self.n += ds.sizes["star"]

    def finish(self, attrs) -> Path:
        import zarr

        group = zarr.open_group(str(self.tmp), mode="r+", zarr_format=2)
        group.attrs.update({k: v for k, v in {**self.attrs, **attrs}.items() if v is not None})
        zarr.consolidate_metadata(str(self.tmp), zarr_format=2)
        open_spectra(self.tmp, chunks={"star": self.chunk})  # validate before it goes in place
        if self.out.exists():
            old = temporary_sibling(self.out, "old")
            os.replace(self.out, old)
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            os.replace(self.tmp, self.out)
        return self.out

    def abort(self):
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


class MemorySink:
    """Collect all chunks in memory, then write one netCDF file atomically."""

    def __init__(self, out: Path):
        self.out, self.parts, self.n = out, [], 0

    def write(self, ds):
        self.parts.append(ds)
        self.n += ds.sizes["star"]

    def finish(self, attrs) -> Path:
        import xarray as xr

        ds = self.parts[0] if len(self.parts) == 1 else xr.concat(self.parts, dim="star", data_vars="minimal",
                                                                   coords="minimal", compat="override")
        ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
        if self.out.exists() and self.out.is_dir():
            shutil.rmtree(self.out)
        return save_spectra(ds, self.out)

    def abort(self):
        self.parts = []
