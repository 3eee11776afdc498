"""Encoding on a dask cluster (``twinviz embed --scheduler distributed``): dask's distributed
scheduler runs the encoder over the spectra's chunks of stars, on as many worker processes or
machines as the cluster has — for datasets that outgrow one machine (10⁷ spectra and more).

The flux goes from the files (zarr, or netCDF on a shared filesystem) straight to the workers;
only the latents and each star's reconstruction error come back. The model travels as its
directory path: each worker reads the safetensors weights once and keeps them. One task encodes
one chunk of stars and, in the same pass over its flux, computes the stars' reconstruction MSE
that the out-of-distribution flags need (:func:`twinviz.latents.ood.add_ood` takes it as
``recon``), so the flux is read once. Chunks and batches match :func:`encode_dataset`'s, so the
latents equal a local encoding's up to the float rounding of the workers' thread counts.
"""
from __future__ import annotations

import contextlib

import numpy as np
import xarray as xr

from twinviz.latents.encode import latent_dataset

__all__ = ["cluster_client", "encode_on_cluster"]

_MODELS: dict = {}  # (model_dir, device) → FaderNetwork, one per worker process


def _worker_model(model_dir: str, device: str):
    key = (model_dir, device)
    if key not in _MODELS:
        from twinviz.model import FaderNetwork

        _MODELS[key] = FaderNetwork.from_pretrained(model_dir, device=device)
    return _MODELS[key]


def _encode_block(flux, teff, logg, positions, *mask, model_dir: str, device: str, batch_size: int, source: str):
    """One task: the block's latents and reconstruction MSE, as float64 [n, d + 1]."""
    from twinviz.latents.ood import star_recon_mse
    from twinviz.model import encode_arrays
    from twinviz.spectra.dataset import check_flux_block

    model = _worker_model(model_dir, device)
    mask = mask[0] if mask else None
    check_flux_block(flux, mask, source=source, start=int(positions[0]))
    z = encode_arrays(model, flux, teff, logg, batch_size=batch_size, mask=mask)
    block = {"flux": (("star", "wavelength"), flux), "teff": ("star", teff), "logg": ("star", logg)}
    if mask is not None:
        block["mask"] = (("star", "wavelength"), mask)
    recon = star_recon_mse(model, xr.Dataset(block), z, batch_size=batch_size, chunk=len(teff))
    return np.concatenate([z.astype(np.float64), recon[:, None]], axis=1)


@contextlib.contextmanager
def cluster_client(address: str | None = None, workers: int = 2, threads_per_worker: int = 1):
    """A ``distributed.Client``: connected to the scheduler at ``address``, or to a
    ``LocalCluster`` of ``workers`` processes started here (closed on exit)."""
    from distributed import Client, LocalCluster

    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def encode_on_cluster(model_dir, ds: xr.Dataset, client, *, batch_size: int = 1024, chunk: int = 8192,
                      device: str = "cpu", progress=None) -> tuple[xr.Dataset, np.ndarray]:
    """(latent dataset, reconstruction MSE [N]) of a lazily opened spectra dataset, computed on
    the cluster behind ``client``. ``progress``: optional callable(done, total) per finished chunk."""
    import dask.array as da
    from distributed import as_completed

    from twinviz.model import FaderNetwork

    model = FaderNetwork.from_pretrained(model_dir)  # here only for its config and the grid check
    model.check_grid(ds)
    lazy = ds.chunk({"star": int(chunk), "wavelength": -1})
    inputs = [lazy["flux"].data.astype(np.float32), "ik", lazy["teff"].data.astype(np.float32), "i",
              lazy["logg"].data.astype(np.float32), "i",
              da.arange(ds.sizes["star"], chunks=lazy["flux"].data.chunks[0]), "i"]
    if "mask" in lazy:
        inputs += [lazy["mask"].data.astype(bool), "ik"]
    width = int(model.config.latent_dim) + 1
    out = da.blockwise(_encode_block, "ij", *inputs, new_axes={"j": width}, concatenate=True,
                       dtype=np.float64, model_dir=str(model_dir), device=device, batch_size=int(batch_size),
                       source=str(ds.encoding.get("source", "")))
    blocks = out.to_delayed().ravel()
    futures = client.compute(list(blocks))
    order = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    n, done = ds.sizes["star"], 0
    for future in as_completed(futures):
        results[order[future.key]] = block = future.result()
        done += block.shape[0]
        if progress is not None:
            progress(done, n)
    values = np.concatenate(results, axis=0)
    return latent_dataset(model, ds, values[:, :-1]), values[:, -1]
