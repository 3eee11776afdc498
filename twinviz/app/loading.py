"""Build the shared :class:`~twinviz.app.state.AppData` from a model directory and a spectra
file — open, check, encode (or read cached latents), project — and keep one per paths for the
life of the process (:func:`load_app_data`). Every failure a user can cause
becomes an :class:`~twinviz.app.state.AppDataError` with a readable message.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from twinviz.app.session import keep_out_of_garbage_collection
from twinviz.app.state import AppData, AppDataError
from twinviz.latents.projection import add_projections, pca_projection
from twinviz import files as runfiles

log = logging.getLogger(__name__)

#: Flux above this many bytes stays in its file: the app reads one star's spectrum at a time
#: (twinviz.spectra.rows.StarRows) instead of loading the array (docs/scale.md).
LAZY_FLUX_BYTES = 2 * 2 ** 30

__all__ = ["LAZY_FLUX_BYTES", "build_app_data", "cached_latents_path", "cached_pixel_path", "clear_cache",
           "data_labels", "load_app_data", "resolve_paths"]


def build_app_data(model_dir: Path, data_path: Path, latents_path: Path | None = None,
                   report_path: Path | None = None, pixel_finder: Path | None = None) -> AppData:
    """Open and check everything the app shows; encode and project the latents when no latent
    file is given (cached beside the data, or in ``~/.cache/twinviz`` if that is read-only).
    With ``pixel_finder`` (a folder from ``twinviz fit-pixel-finder``) the stars are also placed
    in that finder's twin metric (cached likewise), so the twin table can rank by it."""
    from twinviz.bundle import BundleError, ModelBundle
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import DatasetError
    from twinviz.spectra.grid import identify_grid

    model_dir, data_path = Path(model_dir), Path(data_path)
    if not model_dir.is_dir():
        raise AppDataError(f"--model {model_dir}: no such directory. Fix: point --model at a model "
                           "directory (one holding config.json and model.safetensors)")
    calibration_error = ""
    try:
        try:
            bundle = ModelBundle.open(model_dir)
        except BundleError as exc:  # a calibration of other weights: the app opens, and says so loudly
            if runfiles.MODEL_CALIBRATION not in str(exc):
                raise
            bundle, calibration_error = ModelBundle.open(model_dir, skip=(runfiles.MODEL_CALIBRATION,)), str(exc)
    except ModelError as exc:
        raise AppDataError(f"--model: {exc}") from exc
    model = bundle.model
    try:
        ds, rows = _open_data(data_path)
    except DatasetError as exc:
        raise AppDataError(f"--data: {exc}") from exc
    try:
        model.check_grid(ds)
    except ModelError as exc:
        raise AppDataError(f"--model/--data: {exc}") from exc

    latents = _latents_for(bundle, ds, data_path, latents_path)
    n = ds.sizes["star"]
    grid = identify_grid(ds["wavelength"].values)
    fe_h = np.asarray(ds["fe_h"].values, dtype=np.float32) if "fe_h" in ds else None
    x_fe = np.asarray(ds["x_fe"].values, dtype=np.float32) if "x_fe" in ds else None
    elements = tuple(str(e) for e in ds["element"].values) if "element" in ds.coords else ()
    group = np.asarray(ds["group"].values, dtype=np.int64)
    projections = {name: np.asarray(latents[name].values, dtype=np.float32)
                   for name in ("umap", "pca") if name in latents.variables}
    z = np.ascontiguousarray(latents["z"].values, dtype=np.float32)
    if not projections:
        projections = {"pca": pca_projection(z)[0]}
    teff = np.asarray(ds["teff"].values, dtype=np.float32)
    logg = np.asarray(ds["logg"].values, dtype=np.float32)
    criteria, recon = _ood_of(latents, bundle, ds)
    ranked, ranked_on = bundle.ranking(ds.attrs)
    data = AppData(
        model=model, model_dir=model_dir, data_path=data_path, latents_path=latents_path,
        wavelength=np.asarray(ds["wavelength"].values, dtype=np.float64), segments=tuple(grid.segments),
        flux=rows("flux", np.float32), teff=teff, logg=logg, group=group,
        star_ids=np.asarray(ds["star"].values), z=z, projections=projections,
        labels=data_labels(teff, logg, group, fe_h, x_fe, elements), fe_h=fe_h, x_fe=x_fe,
        elements=elements, attrs=dict(ds.attrs), synthesizer=_synthesizer_for(ds, grid),
        mask=rows("mask", bool) if "mask" in ds else None,
        flux_err=rows("flux_err", np.float32) if "flux_err" in ds else None,
        recon_mse=recon, ood=criteria,
        z_twin=bundle.metric.project(z, teff, logg) if ranked == "metric" else None,
    )
    data.bundle, data.ranked_on, data.domain_note = bundle, ranked_on, bundle.domain_note(ds.attrs)
    # the report of THIS bundle on these data: a second model never shows the first one's numbers
    data.report_path = Path(report_path) if report_path else _report_beside(latents_path or data_path,
                                                                            bundle.fingerprint)
    data.calibration = bundle.calibration
    why = "" if data.calibration is None else data.calibration.refuses(bundle.distance_name(ranked), "l1")
    if why or calibration_error:  # a calibration of another distance or weights: no P(twin), and why
        data.calibration, data.calibration_note = None, f"P(twin): not shown: {why or calibration_error}"
    if z.shape[0] != n:
        raise AppDataError(f"--latents {latents_path}: has {z.shape[0]} stars but the data have {n}. "
                           "Fix: encode this dataset with this model (`twinviz embed`)")
    if pixel_finder is not None:
        data.pixel_finder, data.pixel_z = _pixel_twins_for(Path(pixel_finder), ds, data_path)
    return data


def _open_data(data_path: Path):
    """(dataset, rows(name, dtype)) of the spectra file. Up to LAZY_FLUX_BYTES of flux the file is
    read into memory and checked in full, as always; above, it stays open lazily (its values are
    not scanned: that would read the whole file), and ``rows`` gives a per-star reader
    (:class:`~twinviz.spectra.rows.StarRows`) instead of an array."""
    from twinviz.spectra.dataset import load_spectra, open_spectra, validate
    from twinviz.spectra.rows import StarRows

    ds = open_spectra(data_path, validate=False)
    if ds["flux"].nbytes <= LAZY_FLUX_BYTES:
        ds.close()
        ds = load_spectra(data_path)
        return ds, lambda name, dtype: np.asarray(ds[name].values, dtype=dtype)
    validate(ds, source=data_path, check_values=False)
    log.info("%s: %.1f GB of flux stays on disk; spectra are read one star at a time",
             data_path, ds["flux"].nbytes / 1e9)
    return ds, lambda name, dtype: StarRows(data_path, name, dtype=dtype)


def _ood_of(latents, bundle, ds):
    """(criteria, recon MSE [N]) of the stars: as stored by `twinviz embed`, else computed now
    (one decoder pass over the stars)."""
    from twinviz.latents.ood import add_ood, ood_from_latents

    found = ood_from_latents(latents)
    if found is None or latents.sizes["star"] != ds.sizes["star"]:
        found = ood_from_latents(add_ood(latents, bundle.model, ds, criteria=bundle.ood_criteria))
    return found


def data_labels(teff, logg, group, fe_h=None, x_fe=None, elements=()) -> dict:
    """Colour-by choices of the latent map: name → float array [N] (NaN = unknown)."""
    labels = {"Teff": np.asarray(teff, np.float32), "logg": np.asarray(logg, np.float32)}
    if fe_h is not None:
        labels["[Fe/H]"] = np.asarray(fe_h, np.float32)
    if x_fe is not None:
        for j, el in enumerate(elements):
            labels[f"[{el}/Fe]"] = np.asarray(x_fe[:, j], np.float32)
    group = np.asarray(group)
    if np.any(group >= 0):
        _, inverse, counts = np.unique(group, return_inverse=True, return_counts=True)
        size = counts[inverse].astype(np.float32)
        labels["group size"] = np.where(group >= 0, size, np.nan).astype(np.float32)
    return labels


def cached_latents_path(data_path: Path, bundle) -> Path:
    """``<data stem>.latents-<bundle fingerprint>.nc`` beside the data when writable, else in the cache."""
    return _cache_path(data_path, f"latents-{bundle.fingerprint}")


def cached_pixel_path(data_path: Path, finder_dir: Path) -> Path:
    """``<data stem>.pixel-<finder hash>.nc`` (the stars in a pixel finder's twin metric), beside
    the data when writable, else in the cache."""
    return _cache_path(data_path, f"pixel-{_fingerprint(finder_dir, PIXEL_FINDER_FILES)}")


def _cache_path(data_path: Path, kind: str) -> Path:
    data_path = Path(data_path)
    stem = data_path.name.split(".")[0]
    name = f"{stem}.{kind}.nc"
    beside = data_path.parent / name
    try:
        probe = data_path.parent / f".{name}.probe"
        probe.touch()
        probe.unlink()
        return beside
    except OSError:
        return default_cache_dir() / name


def _latents_for(bundle, ds, data_path, latents_path):
    from twinviz.latents import load_latents, save_latents
    from twinviz.spectra.dataset import DatasetError

    if latents_path is not None:
        try:
            lat = load_latents(latents_path)
        except DatasetError as exc:
            raise AppDataError(f"--latents: {exc}") from exc
        if lat.sizes["star"] != ds.sizes["star"] or not np.array_equal(lat["star"].values, ds["star"].values):
            raise AppDataError(f"--latents {latents_path}: its stars are not the stars of {data_path}. "
                               "Fix: encode this dataset with this model (`twinviz embed`), or omit --latents")
        return lat
    path = cached_latents_path(data_path, bundle)
    if path.exists():
        try:
            lat = load_latents(path)
            if lat.sizes["star"] == ds.sizes["star"]:
                return lat
        except DatasetError:
            pass
    log.info("encoding %d stars of %s (first start; cached in %s)", ds.sizes["star"], data_path, path)
    lat = bundle.embed(ds)
    lat = add_projections(lat, ("pca", "umap") if ds.sizes["star"] <= 200_000 else ("pca",))
    try:
        save_latents(lat, path)
    except OSError as exc:  # a read-only place only costs the re-encoding next time
        log.warning("could not cache latents in %s: %s", path, exc)
    return lat


def _pixel_twins_for(finder_dir: Path, ds, data_path: Path):
    """(finder, [N, k] float32 vectors of the stars in its twin metric): read from the cache when
    it holds these stars, else computed (the finder reads the flux in chunks) and cached."""
    import xarray as xr

    from twinviz.atomic import write_dataset_atomic
    from twinviz.spectra.dataset import DatasetError
    from twinviz.evaluation.pixel_finder import PixelFinderError, load_pixel_finder

    try:
        finder = load_pixel_finder(finder_dir)
        finder.check(ds, source=data_path)
    except (PixelFinderError, DatasetError) as exc:
        raise AppDataError(f"--pixel-finder: {exc}") from exc
    stars = ds["star"].values
    path = cached_pixel_path(data_path, finder_dir)
    if path.exists():
        try:
            with xr.open_dataset(path, engine="h5netcdf") as cached:
                if cached.sizes.get("star") == stars.size and np.array_equal(cached["star"].values, stars):
                    return finder, np.ascontiguousarray(cached["z_twin"].values, dtype=np.float32)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring the unreadable pixel-finder cache %s: %s", path, exc)
    log.info("placing %d stars of %s in the pixel finder's metric (first start; cached in %s)",
             stars.size, data_path, path)
    vectors = finder.vectors(ds)
    try:
        write_dataset_atomic(xr.Dataset({"z_twin": (("star", "twin_dim"), vectors)}, coords={"star": stars},
                                        attrs={"pixel_finder": str(finder_dir)}), path, "netcdf", star_chunk=65536)
    except OSError as exc:  # a read-only place only costs the computation next time
        log.warning("could not cache the pixel finder's vectors in %s: %s", path, exc)
    return finder, vectors


def _report_beside(path: Path, fingerprint: str) -> Path:
    """``<data stem>.report-<bundle fingerprint>.json``: one cached Table 1 per model bundle."""
    stem = Path(path).name.split(".")[0]
    return Path(path).with_name(f"{stem}.report-{fingerprint}.json")


def _synthesizer_for(ds, grid):
    """The built-in synthesizer on the data's grid, when the data came from it."""
    if ds.attrs.get("generator") != "twinviz.synth":
        return None
    try:
        from twinviz.spectra.synth import Synthesizer

        return Synthesizer(grid)
    except Exception as exc:  # an older/newer synthesizer: the app still works, without truth
        log.warning("dataset is synthetic but the synthesizer could not be built: %s", exc)
        return None


# --------------------------------------------------------------------------------------------
# loading (once per process)
# --------------------------------------------------------------------------------------------
_CACHE: dict[tuple, AppData] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every loaded AppData (tests; a server keeps them for its lifetime)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def resolve_paths(model=None, data=None, latents=None) -> tuple[Path, Path, Path | None, Path | None]:
    """(model, data, latents, report) paths: explicit ones as given; with neither model nor
    data, the bundled demo's (built on first use)."""
    report = None
    if model is None and data is None:
        from twinviz.demo import ensure_demo

        try:
            demo = ensure_demo()
        except (OSError, ValueError) as exc:
            raise AppDataError(f"the bundled demo could not be prepared: {exc}") from exc
        model, data, latents, report = demo.model, demo.data, demo.latents, demo.report
    if model is None or data is None:
        which = "--model DIR" if model is None else "--data FILE"
        raise AppDataError(f"{which} is missing: the app needs both a model directory and a spectra file. "
                           "Fix: pass both, or neither to open the bundled demo")
    return (Path(model), Path(data), Path(latents) if latents else None,
            Path(report) if report else None)


def load_app_data(model=None, data=None, latents=None, pixel_finder=None) -> AppData:
    """The shared :class:`AppData` for these paths (loaded on the first call, then cached).
    ``pixel_finder``: optional folder of ``twinviz fit-pixel-finder``, a second way to rank twins."""
    model, data, latents, report = resolve_paths(model, data, latents)
    pixel_finder = Path(pixel_finder) if pixel_finder else None
    key = (str(model.resolve()), str(data.resolve()), str(latents.resolve()) if latents else None,
           str(pixel_finder.resolve()) if pixel_finder else None)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build_app_data(model, data, latents, report, pixel_finder)
            keep_out_of_garbage_collection()  # the shared data live as long as the server
        return _CACHE[key]


#: The files of a pixel finder folder that name its cached vectors.
PIXEL_FINDER_FILES = (runfiles.FINDER_CONFIG, runfiles.FINDER_WEIGHTS, runfiles.TWIN_METRIC_CONFIG,
                      runfiles.TWIN_METRIC_WEIGHTS)


def _fingerprint(directory: Path, names) -> str:
    h = hashlib.sha1()
    for name in names:
        p = Path(directory) / name
        if p.is_file():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TWINVIZ_CACHE", Path.home() / ".cache" / "twinviz"))
