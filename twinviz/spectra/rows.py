"""One star's spectrum at a time from a file: :class:`StarRows`, for datasets whose flux does not
fit in memory (a 10⁶-star survey is ~29 GB of float32 flux).

``StarRows(path, "flux")[i]`` reads star ``i``'s row of a (star, wavelength) variable: from zarr
it decompresses the one chunk that holds it (128 stars of 7 214 px for a streamed simulation:
a few ms), from netCDF it reads the row through HDF5. The last few rows read are kept, because a
view usually asks for the same star's flux, mask and bad pixels together. Thread-safe: the app's
sessions share one reader.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = ["StarRows"]


class StarRows:
    """Read-only row access ``rows[position] → numpy [P]`` to a (star, wavelength) variable of a
    dataset file, without loading the variable. ``shape``, ``dtype`` and ``len`` as an array's."""

    def __init__(self, path, variable: str, *, dtype=np.float32, keep: int = 32):
        import xarray as xr

        from twinviz.spectra.dataset import DatasetError, file_format

        self.path, self.variable = Path(path), variable
        fmt = file_format(self.path)
        # chunks=None: xarray's lazily indexed backend arrays (no dask): indexing one row reads
        # only the chunks that hold it
        ds = (xr.open_zarr(self.path, chunks=None) if fmt == "zarr"
              else xr.open_dataset(self.path, engine="h5netcdf", chunks=None))
        if variable not in ds.variables or ds[variable].dims != ("star", "wavelength"):
            ds.close()
            raise DatasetError(f"{self.path}: {variable}: no (star, wavelength) variable of that name. "
                               "Fix: open a spectra dataset (docs/dataset.md)")
        self._ds, self._array = ds, ds[variable].variable
        self.shape = tuple(int(n) for n in self._array.shape)
        self.dtype = np.dtype(dtype)
        self._keep = int(keep)
        self._rows: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, position) -> np.ndarray:
        if not isinstance(position, (int, np.integer)):
            raise TypeError(f"{self.path}: {self.variable}: StarRows reads one star at a time; got index "
                            f"{position!r}. Fix: index with one integer position")
        i = int(position)
        if i < 0:
            i += self.shape[0]
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"star position {position} outside 0..{self.shape[0] - 1}")
        with self._lock:
            row = self._rows.get(i)
            if row is not None:
                self._rows.move_to_end(i)
                return row
        row = np.asarray(self._array[i].values, dtype=self.dtype)
        row.setflags(write=False)
        with self._lock:
            self._rows[i] = row
            while len(self._rows) > self._keep:
                self._rows.popitem(last=False)
        return row

    def close(self) -> None:
        self._ds.close()
