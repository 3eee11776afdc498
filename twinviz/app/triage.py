"""Triage on the latent map: colour and filter stars by how far the model can speak for them.

Colour-by choices beside the dataset's labels (``colour_choices``):

* **OOD** — 1 for a star out of distribution (twinviz.evaluation.ood: outside the model's
  Teff/logg range, or reconstructed far worse than its validation stars), 0 otherwise;
* **recon MSE** — the star's reconstruction MSE (log colour scale);
* **SNR** — the dataset's per-star ``snr`` (read once from the file), else the median of
  flux / flux_err over good pixels when the data carry ``flux_err``;
* **label source** — a per-star ``label_source`` code when the dataset has one.

Abundance colourings known for fewer than MIN_KNOWN_FRACTION of the stars are not offered (an
imported survey often has [X/Fe] for a handful of stars only: a map of blanks). ``SHOW`` filters
the map to the stars in or out of distribution. Values are computed once per data.
"""
from __future__ import annotations

import logging
import threading
import weakref

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["MIN_KNOWN_FRACTION", "SHOW", "colour_choices", "colour_values", "shown"]

MIN_KNOWN_FRACTION = 0.05
SHOW = {"all stars": "all", "in distribution": "in", "out of distribution": "ood"}
_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _snr(data) -> np.ndarray | None:
    if data.data_path is not None:
        try:
            import xarray as xr

            with xr.open_dataset(data.data_path) if data.data_path.suffix != ".zarr" else \
                    xr.open_zarr(data.data_path) as ds:
                if "snr" in ds and ds["snr"].sizes.get("star") == data.n_stars:
                    snr = np.asarray(ds["snr"].values, np.float32)
                    if np.isfinite(snr).any():
                        return snr
        except Exception as exc:  # noqa: BLE001 - an optional colouring; the map works without it
            log.info("no SNR colouring from %s: %s", data.data_path, exc)
    if isinstance(data.flux_err, np.ndarray) and isinstance(data.flux, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(data.flux_err > 0, data.flux / data.flux_err, np.nan)
        if data.mask is not None:
            ratio = np.where(data.mask, np.nan, ratio)
        return np.nanmedian(ratio, axis=1).astype(np.float32)
    return None


def _label_source(data) -> np.ndarray | None:
    if data.data_path is None:
        return None
    try:
        import xarray as xr

        with xr.open_dataset(data.data_path) if data.data_path.suffix != ".zarr" else \
                xr.open_zarr(data.data_path) as ds:
            if "label_source" in ds and ds["label_source"].sizes.get("star") == data.n_stars:
                _, codes = np.unique(np.asarray(ds["label_source"].values).astype(str), return_inverse=True)
                return codes.astype(np.float32)
    except Exception as exc:  # noqa: BLE001
        log.info("no label-source colouring from %s: %s", data.data_path, exc)
    return None


def triage_values(data) -> dict[str, np.ndarray]:
    """{name: [N] float} of the triage colourings the data allow (computed once per data)."""
    with _lock:
        if data in _cache:
            return _cache[data]
    values = {}
    if data.ood is not None:
        values["OOD"] = data.ood_flags().astype(np.float32)
    if data.recon_mse is not None:
        values["recon MSE"] = np.asarray(data.recon_mse, np.float32)
    snr = _snr(data)
    if snr is not None:
        values["SNR"] = snr
    source = _label_source(data)
    if source is not None:
        values["label source"] = source
    with _lock:
        _cache[data] = values
    return values


def _mostly_missing(values: np.ndarray) -> bool:
    return np.isfinite(values).mean() < MIN_KNOWN_FRACTION if values.size else True


def colour_choices(data) -> list[str]:
    """The map's colour-by choices: the data's (abundances known for too few stars left out),
    then the triage colourings."""
    names = [n for n in data.label_names()
             if not (n in data.labels and n.startswith("[") and _mostly_missing(data.labels[n]))]
    return names + [n for n in triage_values(data) if n not in names]


def colour_values(data, name: str) -> np.ndarray:
    """[N] values of a colour-by choice (NaN = unknown)."""
    triage = triage_values(data)
    return triage[name] if name in triage and name not in data.labels else data.label_values(name)


def shown(data, show: str) -> np.ndarray | None:
    """[N] bool of the stars the map shows for ``show`` (a SHOW value); None: all."""
    if show == "all" or data.ood is None:
        return None
    flags = data.ood_flags()
    return flags if show == "ood" else ~flags


def value_range(data, name: str) -> tuple[float, float] | None:
    """(min, max) of a colouring's known values (None when none is known)."""
    values = colour_values(data, name)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def kept(data, colour_by: str, show: str = "all", within=None) -> np.ndarray:
    """[N] bool: the stars the map shows — in/out of distribution (``show``) and, when ``within``
    = (lo, hi) narrows the colouring's range, only stars whose value lies in it (stars with an
    unknown value are then hidden too): the map filtered by OOD, recon MSE, SNR, label source or
    any label."""
    keep = np.ones(data.n_stars, dtype=bool)
    flags = shown(data, show)
    if flags is not None:
        keep &= flags
    full = value_range(data, colour_by) if within is not None else None
    if full is not None and (within[0] > full[0] or within[1] < full[1]):
        values = colour_values(data, colour_by)
        keep &= np.isfinite(values) & (values >= within[0]) & (values <= within[1])
    return keep
