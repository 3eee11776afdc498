"""Latents of a spectra dataset: encode in streamed chunks (files: :mod:`twinviz.latents.store`).

A latent dataset is a plain :class:`xarray.Dataset`:

=========  ==================  =======  ===============================================
variable   dims                dtype    meaning
=========  ==================  =======  ===============================================
z          (star, latent)      float32  the fader network's latent E(x, u)
teff       (star,)             float32  K (copied from the spectra)
logg       (star,)             float32  dex
group      (star,)             int64    chemistry group, −1 unknown
fe_h       (star,)             float32  [Fe/H] dex (when the spectra have it)
x_fe       (star, element)     float32  [X/Fe] dex (when the spectra have it)
snr        (star,)             float32  (when the spectra have it)
pca        (star, axis)        float32  2-D PCA map of z (see ``twinviz.latents.projection``)
umap       (star, axis)        float32  2-D UMAP map of z (see ``twinviz.latents.projection``)
=========  ==================  =======  ===============================================

Coordinates ``star`` (the spectra's star ids), ``latent`` (0…d−1), ``axis`` (0, 1) and
``element``. Attributes record the model (grid id, latent size, directory) and the source file.
"""
from __future__ import annotations

import numpy as np
import xarray as xr


__all__ = ["LABEL_VARIABLES", "encode_dataset", "iter_star_chunks", "latent_dataset"]

LABEL_VARIABLES = ("teff", "logg", "group", "fe_h", "x_fe", "snr")


def iter_star_chunks(ds: xr.Dataset, chunk: int, variables=("flux", "mask")):
    """Yield (start, stop, {name: numpy array}) over consecutive blocks of ``chunk`` stars.

    Only one block of the named per-pixel variables is in memory at a time, so a dataset opened
    lazily (``open_spectra(path, chunks={"star": ...})``) larger than memory streams through.
    """
    n = ds.sizes["star"]
    chunk = max(1, int(chunk))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = ds.isel(star=slice(start, stop))
        yield start, stop, {v: np.asarray(block[v].values) for v in variables if v in ds.variables}


def encode_dataset(model, ds: xr.Dataset, *, batch_size: int = 1024, chunk: int = 8192,
                   progress=None, metric=None) -> xr.Dataset:
    """Encode every star of a spectra dataset into a latent dataset (see module docstring).

    model : a ``FaderNetwork`` (its grid must match the dataset's: checked first)
    ds : spectra dataset, in memory or lazily opened with dask
    batch_size : stars per forward pass on the model's device
    chunk : stars read from the dataset at a time (bounds memory: chunk × pixels × 4 bytes)
    progress : optional callable(done, total) called after each chunk
    metric : optional twin metric (twinviz.twins.metric.TwinMetric): adds ``z_twin``. Which
        metric applies to which data is the model bundle's call (twinviz.bundle.ModelBundle.embed)
    Each chunk's flux is checked as it is read (NaN/inf outside the mask raise DatasetError), so a
    lazily opened file need not be validated with ``check_values`` first.
    Returns z [star, latent] float32 plus the star labels; results do not depend on ``chunk``
    or ``batch_size`` beyond float rounding of the network's batched arithmetic.
    """
    from twinviz.model import encode_arrays
    from twinviz.spectra.dataset import check_flux_block

    model.check_grid(ds)
    source = ds.encoding.get("source")
    n = ds.sizes["star"]
    teff = np.asarray(ds["teff"].values, dtype=np.float32)
    logg = np.asarray(ds["logg"].values, dtype=np.float32)
    z = np.empty((n, model.config.latent_dim), dtype=np.float32)
    for start, stop, block in iter_star_chunks(ds, chunk):
        check_flux_block(block["flux"], block.get("mask"), source=source, start=start)
        z[start:stop] = encode_arrays(model, block["flux"], teff[start:stop], logg[start:stop],
                                      batch_size=batch_size, mask=block.get("mask"))
        if progress is not None:
            progress(stop, n)
    return latent_dataset(model, ds, z, metric=metric)


def latent_dataset(model, ds: xr.Dataset, z, metric=None) -> xr.Dataset:
    """The latent dataset (module docstring) of the stars of ``ds`` encoded as ``z`` [N, d]."""
    z = np.asarray(z, dtype=np.float32)
    out = xr.Dataset(
        {"z": (("star", "latent"), z)},
        coords={"star": ds["star"].values, "latent": np.arange(z.shape[1], dtype=np.int64)},
    )
    out["z"].attrs.update(long_name="fader-network latent E(x, u)", units="")
    if metric is not None:  # the vectors twins are ranked on (twinviz/twins/metric.py)
        out["z_twin"] = (("star", "twin_axis"), metric.project(z, ds["teff"].values, ds["logg"].values))
        out["z_twin"].attrs.update(long_name="z in the twin metric: (features(z, teff, logg) - mean) @ projection",
                                   units="")
    for name in LABEL_VARIABLES:
        if name in ds.variables:
            out[name] = (ds[name].dims, np.asarray(ds[name].values))
            out[name].attrs.update(ds[name].attrs)
    if "element" in out.dims:
        out = out.assign_coords(element=ds["element"].values)
    out.attrs.update(
        kind="twinviz-latents",
        grid_id=str(model.config.grid_id),
        latent_dim=int(model.config.latent_dim),
        source=str(ds.encoding.get("source", "")),
    )
    return out


def twin_vectors(latents: xr.Dataset) -> np.ndarray:
    """What twins are ranked on: ``z_twin`` when the model had a twin metric, else ``z``."""
    name = "z_twin" if "z_twin" in latents else "z"
    return np.asarray(latents[name].values, dtype=np.float32)
