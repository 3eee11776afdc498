"""The twinviz spectra dataset: a plain :class:`xarray.Dataset`, its files and its checks.

Schema (version :data:`SCHEMA_VERSION`), see ``docs/dataset.md``:

=============  ==========================  =========  ==========================================
variable       dims                        dtype      meaning
=============  ==========================  =========  ==========================================
flux           (star, wavelength)          float32    continuum-normalised flux
flux_err       (star, wavelength)          float32    1-σ uncertainty of ``flux`` (optional)
mask           (star, wavelength)          bool       True where a pixel is bad (optional)
teff           (star,)                     float32    effective temperature, K
logg           (star,)                     float32    surface gravity, log10(cm s⁻²) (dex)
group          (star,)                     int64      stars sharing a chemistry share an id; −1 unknown
fe_h           (star,)                     float32    [Fe/H], dex (optional)
x_fe           (star, element)             float32    [X/Fe] per element, dex (optional)
snr            (star,)                     float32    signal-to-noise per pixel (optional)
=============  ==========================  =========  ==========================================

Coordinates: ``star`` (unique ids), ``wavelength`` (vacuum Å, strictly increasing),
``element`` (element symbols, when ``x_fe`` is present). Global attributes hold the
schema version, the grid id and provenance (generator, version, seed, line-list version).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from twinviz.atomic import write_dataset_atomic
from twinviz.spectra.grid import WavelengthGrid, get_grid, identify_grid

__all__ = [
    "SCHEMA_VERSION",
    "DatasetError",
    "check_flux_block",
    "file_format",
    "load_spectra",
    "make_spectra",
    "open_spectra",
    "save_spectra",
    "validate",
]

SCHEMA_VERSION = "1"
TEFF_RANGE_K = (2000.0, 60000.0)
LOGG_RANGE_DEX = (-1.0, 6.0)

_STAR_VARS = {"teff": "K", "logg": "dex", "group": "", "fe_h": "dex", "snr": ""}
_PIXEL_VARS = ("flux", "flux_err", "mask")
_REQUIRED = ("flux", "teff", "logg")


class DatasetError(ValueError):
    """A spectra dataset (or file) that twinviz cannot use; the message names the file,
    the variable and how to fix it."""


def _where(source) -> str:
    return str(source) if source else "<in-memory dataset>"


def _fail(source, field: str, problem: str, fix: str):
    raise DatasetError(f"{_where(source)}: {field}: {problem}. Fix: {fix}")


def make_spectra(flux, wavelength, teff, logg, *, group=None, flux_err=None, mask=None,
                 fe_h=None, x_fe=None, elements=None, snr=None, star=None,
                 attrs: dict | None = None) -> xr.Dataset:
    """Build a validated spectra dataset from arrays.

    Parameters
    ----------
    flux : (n_star, n_pixel) continuum-normalised flux
    wavelength : (n_pixel,) vacuum wavelengths, Å
    teff : (n_star,) K;  logg : (n_star,) dex
    group : (n_star,) int chemistry-group ids (default −1, unknown)
    flux_err, mask : optional (n_star, n_pixel) uncertainty and bad-pixel mask (True = bad)
    fe_h : (n_star,) [Fe/H] dex;  x_fe : (n_star, n_element) [X/Fe] dex with ``elements`` names
    snr : (n_star,) signal-to-noise;  star : (n_star,) unique ids (default 0 … n_star−1)
    attrs : provenance attributes (generator, generator_version, seed, linelist_version …)

    ``flux`` and ``flux_err`` may be dask arrays: they stay lazy (a template for a streamed write,
    :func:`twinviz.spectra.simulation.simulate_to_zarr`) and their values are not checked.
    """
    lazy = _is_lazy(flux)
    flux = flux.astype(np.float32) if lazy else np.asarray(flux, dtype=np.float32)
    if flux.ndim != 2:
        _fail(None, "flux", f"has shape {flux.shape}, expected (star, wavelength)",
              "pass a 2-D array with one row per star")
    n_star = flux.shape[0]
    wavelength = np.asarray(wavelength, dtype=np.float64)
    star = np.arange(n_star, dtype=np.int64) if star is None else np.asarray(star)
    group = np.full(n_star, -1, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    data = {
        "flux": (("star", "wavelength"), flux),
        "teff": ("star", np.asarray(teff, dtype=np.float32)),
        "logg": ("star", np.asarray(logg, dtype=np.float32)),
        "group": ("star", group),
    }
    if flux_err is not None:
        data["flux_err"] = (("star", "wavelength"), flux_err.astype(np.float32) if _is_lazy(flux_err)
                            else np.asarray(flux_err, dtype=np.float32))
    if mask is not None:
        data["mask"] = (("star", "wavelength"), np.asarray(mask, dtype=bool))
    if fe_h is not None:
        data["fe_h"] = ("star", np.asarray(fe_h, dtype=np.float32))
    if snr is not None:
        data["snr"] = ("star", np.broadcast_to(np.asarray(snr, dtype=np.float32), (n_star,)).copy())
    coords = {"star": star, "wavelength": wavelength}
    if x_fe is not None:
        x_fe = np.asarray(x_fe, dtype=np.float32)
        if elements is None or len(elements) != x_fe.shape[-1]:
            _fail(None, "x_fe", "needs one element name per column",
                  "pass elements=[...] with the element symbols in column order")
        data["x_fe"] = (("star", "element"), x_fe)
        coords["element"] = np.asarray(list(elements), dtype=str)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
    ds.attrs["twinviz_schema"] = SCHEMA_VERSION
    ds.attrs["grid_id"] = identify_grid(wavelength).id
    _annotate(ds)
    return validate(ds, check_values=not lazy)


def _is_lazy(array) -> bool:
    """True for a dask array (its values are computed only when written or read)."""
    return type(array).__module__.split(".")[0] == "dask"


def _annotate(ds: xr.Dataset) -> None:
    """Attach units and short descriptions (kept by netCDF/zarr, read by any xarray user)."""
    meta = {
        "flux": ("1", "continuum-normalised flux"),
        "flux_err": ("1", "1-sigma uncertainty of flux"),
        "mask": ("", "True where the pixel is bad"),
        "teff": ("K", "effective temperature"),
        "logg": ("dex", "log10 surface gravity (cgs)"),
        "group": ("", "chemistry group id; stars with equal ids share a chemistry; -1 unknown"),
        "fe_h": ("dex", "[Fe/H]"),
        "x_fe": ("dex", "[X/Fe] per element"),
        "snr": ("", "signal-to-noise ratio per pixel"),
        "wavelength": ("Angstrom", "vacuum wavelength"),
    }
    for name, (units, desc) in meta.items():
        if name in ds.variables:
            if units:
                ds[name].attrs.setdefault("units", units)
            ds[name].attrs.setdefault("description", desc)


def validate(ds: xr.Dataset, source=None, *, grid: str | WavelengthGrid | None = None,
             check_values: bool = True) -> xr.Dataset:
    """Check a dataset against the schema; return it unchanged or raise :class:`DatasetError`.

    ``source`` (usually the file path) is named in every message. ``grid`` additionally
    requires the wavelengths to be that grid. ``check_values=False`` skips the pass over
    the flux values (NaN/inf), which reads the whole array for lazily opened files.
    """
    source = source or ds.encoding.get("source")
    if not isinstance(ds, xr.Dataset):
        _fail(source, "dataset", f"is a {type(ds).__name__}, not an xarray.Dataset",
              "open the file with twinviz.open_spectra or build it with twinviz.make_spectra")
    for name in _REQUIRED:
        if name not in ds.variables:
            _fail(source, name, "variable is missing",
                  f"add a '{name}' variable (see docs/dataset.md for the schema)")
    if ds["flux"].dims != ("star", "wavelength"):
        _fail(source, "flux", f"has dims {ds['flux'].dims}, expected ('star', 'wavelength')",
              "rename or transpose the dimensions, e.g. ds.transpose('star', 'wavelength')")
    n_star, n_pix = ds["flux"].shape
    if n_star == 0 or n_pix == 0:
        _fail(source, "flux", f"is empty ({n_star} stars × {n_pix} pixels)",
              "give at least one star and one wavelength pixel")
    for name in _PIXEL_VARS[1:]:
        if name in ds.variables and ds[name].dims != ("star", "wavelength"):
            _fail(source, name, f"has dims {ds[name].dims}, expected ('star', 'wavelength')",
                  "store it on the same (star, wavelength) grid as flux")
    for name in _STAR_VARS:
        if name in ds.variables and ds[name].dims != ("star",):
            _fail(source, name, f"has dims {ds[name].dims}, expected ('star',)",
                  "store one value per star")
    if "x_fe" in ds.variables and ds["x_fe"].dims != ("star", "element"):
        _fail(source, "x_fe", f"has dims {ds['x_fe'].dims}, expected ('star', 'element')",
              "store [X/Fe] as a (star, element) array with an 'element' coordinate")
    if "mask" in ds.variables and ds["mask"].dtype != bool:
        _fail(source, "mask", f"has dtype {ds['mask'].dtype}, expected bool",
              "store the bad-pixel mask as booleans (True = bad)")

    if "wavelength" not in ds.coords:
        _fail(source, "wavelength", "coordinate is missing",
              "add the vacuum wavelengths in Å as a 'wavelength' coordinate")
    wave = np.asarray(ds["wavelength"].values, dtype=np.float64)
    if not np.all(np.isfinite(wave)) or np.any(wave <= 0):
        _fail(source, "wavelength", "has non-finite or non-positive values",
              "store vacuum wavelengths in Å, all positive")
    if np.any(np.diff(wave) <= 0):
        bad = int(np.flatnonzero(np.diff(wave) <= 0)[0])
        _fail(source, "wavelength",
              f"is not strictly increasing (pixel {bad}: {wave[bad]:.3f} Å, pixel {bad + 1}: {wave[bad + 1]:.3f} Å)",
              "sort the pixels by wavelength (ds.sortby('wavelength')) and drop duplicates")
    found = identify_grid(wave)
    if grid is not None:
        want = get_grid(grid) if not isinstance(grid, WavelengthGrid) else grid
        if found.id != want.id:
            _fail(source, "wavelength", f"is grid '{found.id}' ({found.n_pixels} px), expected "
                  f"'{want.id}' ({want.n_pixels} px)",
                  "resample the spectra onto the expected grid or use a model trained on this grid")
    stored = ds.attrs.get("grid_id")
    if stored and stored != found.id and not str(stored).startswith("custom-"):
        _fail(source, "wavelength", f"does not match the file's grid_id attribute '{stored}' "
              f"(the wavelengths are grid '{found.id}')",
              "fix the wavelength coordinate or the grid_id attribute")

    if "star" in ds.coords:
        ids = ds["star"].values
        uniq, counts = np.unique(ids, return_counts=True)
        if uniq.size != ids.size:
            dup = uniq[counts > 1][:5].tolist()
            _fail(source, "star", f"has duplicated star ids {dup}",
                  "give every star a unique id (e.g. its APOGEE_ID or a running index)")

    for name, (lo, hi), unit, fix in (
            ("teff", TEFF_RANGE_K, "K", "store effective temperatures in kelvin and drop stars without one"),
            ("logg", LOGG_RANGE_DEX, "dex", "store log10 surface gravity in cgs (dex) and drop stars without one")):
        values = np.asarray(ds[name].values, dtype=np.float64)
        bad = ~np.isfinite(values) | (values < lo) | (values > hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(source, name, f"{int(bad.sum())} non-physical values (star index {i}: {values[i]} {unit}); "
                  f"expected {lo:g}–{hi:g} {unit}", fix)

    if check_values:
        flux = ds["flux"].data
        bad = ~np.isfinite(flux)
        if "mask" in ds.variables:
            bad = bad & ~ds["mask"].data
        n_bad = int(bad.sum())
        if n_bad:
            star_idx = int(np.flatnonzero(np.asarray(bad.any(axis=1)))[0])
            _fail(source, "flux", f"has {n_bad} NaN/inf values outside the mask (first in star index {star_idx})",
                  _NAN_FLUX_FIX)
        if "flux_err" in ds.variables:
            err = ds["flux_err"].data
            bad_err = ~(err >= 0)
            if "mask" in ds.variables:
                bad_err = bad_err & ~ds["mask"].data
            if int(bad_err.sum()):
                _fail(source, "flux_err", "has negative or NaN uncertainties outside the mask",
                      "store 1-sigma uncertainties ≥ 0, and mask pixels without one")
    return ds


_NAN_FLUX_FIX = "set mask=True on those pixels (and any finite flux there), or drop the stars"


def check_flux_block(flux, mask=None, *, source=None, start: int = 0) -> None:
    """:func:`validate`'s check of the flux values on one block of stars (rows ``start`` …) that
    a streamed pass has in memory anyway: raises :class:`DatasetError` for NaN/inf outside the
    mask. Encoding checks each block it reads, so a file larger than memory is not read once more
    just to check it (``validate(..., check_values=False)`` first)."""
    bad = ~np.isfinite(flux)
    if mask is not None:
        bad &= ~np.asarray(mask, dtype=bool)
    n_bad = int(bad.sum())
    if n_bad:
        star_idx = start + int(np.flatnonzero(bad.any(axis=1))[0])
        _fail(source, "flux", f"has {n_bad} NaN/inf values outside the mask in stars {start}–{start + len(flux) - 1} "
              f"(first in star index {star_idx})", _NAN_FLUX_FIX)


_validate = validate  # open_spectra's keyword argument `validate` shadows the function


def file_format(path: Path, what: str = "datasets") -> str:
    """"zarr" or "netcdf" for a dataset path, from its extension (or an existing zarr folder);
    raises :class:`DatasetError` naming ``what`` the file was meant to hold otherwise."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".zarr") or (path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists())):
        return "zarr"
    if name.endswith((".nc", ".nc4", ".h5", ".hdf5", ".netcdf")):
        return "netcdf"
    raise DatasetError(f"{path}: file: unknown format (extension '{path.suffix}'). "
                       f"Fix: use a '.nc' (netCDF) or '.zarr' path for {what}")


def open_spectra(path, *, chunks=None, validate: bool = True) -> xr.Dataset:
    """Open a spectra dataset from netCDF (``.nc``) or zarr (``.zarr``) lazily, with dask.

    Nothing but the labels and coordinates is read until used, so files larger than memory
    stream through training and encoding. ``chunks`` (default: the file's own chunks; e.g.
    ``{"star": 4096}``) sets the dask chunking. The file stays open while the dataset is used.
    See :func:`load_spectra` to read everything into memory.
    """
    return _read_spectra(path, chunks={} if chunks is None else chunks, validate=validate)


def load_spectra(path, *, validate: bool = True) -> xr.Dataset:
    """Read a spectra dataset from netCDF (``.nc``) or zarr (``.zarr``) into memory and close
    the file (xarray's ``load_*`` convention; :func:`open_spectra` opens lazily)."""
    return _read_spectra(path, chunks=None, validate=validate)


def _read_spectra(path, *, chunks, validate: bool) -> xr.Dataset:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file: does not exist. Fix: check the path "
                           "(make one with `twinviz simulate --out FILE`)")
    fmt = file_format(path)
    try:
        if fmt == "zarr":
            ds = xr.open_zarr(path, chunks=chunks)
        else:
            ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
        if chunks is None:
            ds = ds.load()
            ds.close()
    except DatasetError:
        raise
    except Exception as exc:  # corrupt, truncated or foreign files
        raise DatasetError(f"{path}: file: cannot be read as {fmt} ({type(exc).__name__}: {exc}). "
                           "Fix: re-create or re-download the file; twinviz reads netCDF4/HDF5 "
                           "and zarr") from exc
    ds.encoding["source"] = str(path)
    if "mask" in ds.variables and ds["mask"].dtype != bool:
        ds["mask"] = ds["mask"].astype(bool)
    if "group" not in ds.variables and "flux" in ds.variables and "star" in ds["flux"].dims:
        ds["group"] = ("star", np.full(ds.sizes["star"], -1, dtype=np.int64))
    if validate:
        _validate(ds, source=path)
    return ds


def save_spectra(ds: xr.Dataset, path, *, validate_first: bool = True) -> Path:
    """Write a dataset atomically to netCDF (``.nc``, via h5netcdf) or zarr (``.zarr``).

    The data go to a temporary name in the same folder and are moved into place only once
    complete, so a crash never leaves a half-written file under ``path``.
    """
    path = Path(path)
    fmt = file_format(path)
    if validate_first:
        validate(ds, source=path)
    ds = ds.copy()
    ds.attrs.setdefault("twinviz_schema", SCHEMA_VERSION)
    enc = {name: {"chunksizes": (min(ds.sizes["star"], 512), ds.sizes["wavelength"])}
           for name in _PIXEL_VARS if name in ds.variables}
    # uncertainties and masks are often constant or sparse: cheap gzip shrinks them
    # many-fold (a constant 1/SNR flux_err otherwise doubles the file)
    for name in ("flux_err", "mask"):
        if name in enc:
            enc[name].update(zlib=True, complevel=1)
    return write_dataset_atomic(ds, path, fmt, star_chunk=1024, encoding=enc)
