"""The pixel twin finder: the twin-supervised pixel method as a saved, reusable twin finder.

Where training spectra with known twins exist, the strongest twin finder measured on twinviz's
synthesizer is not a network: per-pixel polynomial residuals in (Teff, logg), their leading
principal components, and a twin metric learned from the training twins
(`twinviz.evaluation.supervised_baseline`; docs/evaluation.md). ``twinviz evaluate`` fits it
as a comparison row; this module stores the fitted finder in a folder so that it can rank the
stars of any dataset on the same wavelength grid without refitting:

  pixel_finder.safetensors   label centre/scale, per-pixel polynomial coefficients, PCA mean
                             and components, the training stars' Teff/logg ranges
  pixel_finder.json          format, version, grid, sizes, how it was fitted and chosen
  twin_metric.safetensors/json   the twin metric on the components (twinviz.twins.metric)

Nothing is loaded with pickle; the folder is written beside its final name and moved into
place only once complete. Stars whose Teff/logg lie outside the training stars' ranges are
flagged: the polynomial is then extrapolated and their residuals are not to be trusted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["PixelFinderError", "PixelTwinFinder", "fit_pixel_finder", "load_pixel_finder", "FINDER_CONFIG"]

from twinviz.files import FINDER_CONFIG, FINDER_WEIGHTS as FINDER_FILE  # noqa: E402
FORMAT = "twinviz-pixel-finder"
VERSION = 1
CHUNK = 4096  # stars per step when ranking a dataset: bounded memory at any size


class PixelFinderError(ValueError):
    """A pixel finder folder that cannot be used (missing, unreadable, for another grid)."""


@dataclass
class PixelTwinFinder:
    fitted: object            # twinviz.evaluation.supervised_baseline.PolynomialPcaMetric
    grid_id: str
    n_pixels: int
    teff_range: tuple         # (min, max) of the training stars, K
    logg_range: tuple         # dex
    directory: Path | None = None

    @property
    def info(self) -> dict:
        return self.fitted.info

    def check(self, ds: xr.Dataset, source=None) -> None:
        """Refuse spectra on another wavelength grid than the training spectra's."""
        from twinviz.spectra.dataset import DatasetError

        source = source or ds.encoding.get("source", "<dataset>")
        grid = ds.attrs.get("grid_id")
        n = int(ds.sizes.get("wavelength", -1))
        if n != self.n_pixels or (grid and self.grid_id and grid != self.grid_id):
            raise DatasetError(f"{source}: wavelength: {n} pixels on grid '{grid}', but the pixel finder "
                               f"{self.directory or ''} was fitted on grid '{self.grid_id}' ({self.n_pixels} px). "
                               "Fix: resample the spectra onto that grid, or fit a finder on spectra of this grid "
                               "(twinviz fit-pixel-finder)")

    def vectors(self, ds: xr.Dataset, step: int = CHUNK) -> np.ndarray:
        """[N, dims] float32: every star of ``ds`` in the finder's twin metric, ``step`` stars at a
        time (a lazily opened file is read chunk by chunk). A masked or non-finite pixel counts as
        no residual, as in the fit."""
        self.check(ds)
        n = int(ds.sizes["star"])
        out = np.empty((n, self.fitted.metric.dims), dtype=np.float32)
        for a in range(0, n, step):
            part = ds.isel(star=slice(a, a + step))
            out[a:a + step] = self.fitted.vectors(part)
        return out

    def outside_training(self, teff, logg) -> np.ndarray:
        """[N] bool: Teff or logg outside the training stars' ranges (the polynomial extrapolates)."""
        teff, logg = np.asarray(teff, np.float64), np.asarray(logg, np.float64)
        return ((teff < self.teff_range[0]) | (teff > self.teff_range[1])
                | (logg < self.logg_range[0]) | (logg > self.logg_range[1]))

    def describe_range(self) -> str:
        return (f"Teff {self.teff_range[0]:.0f}–{self.teff_range[1]:.0f} K, logg {self.logg_range[0]:.2f}–"
                f"{self.logg_range[1]:.2f} dex (the finder's training stars)")

    def latents(self, ds: xr.Dataset) -> xr.Dataset:
        """A latent-file-like dataset (``z_twin`` and the per-star labels) for ranking twins."""
        data = {"z_twin": (("star", "twin_dim"), self.vectors(ds))}
        for name in ("teff", "logg", "group", "snr"):
            if name in ds.variables:
                data[name] = ("star", np.asarray(ds[name].values))
        out = xr.Dataset(data, coords={"star": ds["star"].values} if "star" in ds.coords else None)
        out.attrs.update(representation="pixel finder", pixel_finder=str(self.directory or ""))
        return out

    def twin_query(self, ds: xr.Dataset, *, metric: str = "l1", backend: str = "auto"):
        """The :class:`~twinviz.twins.query.TwinQuery` of ``ds``'s stars ranked by this finder (the
        same service a model bundle gives; no P(twin), OOD = outside the training stars' labels)."""
        lat = self.latents(ds)
        return self.query_over(lat["z_twin"].values, lat["star"].values, lat["teff"].values, lat["logg"].values,
                               group=lat["group"].values if "group" in lat else None,
                               snr=lat["snr"].values if "snr" in lat else None, metric=metric, backend=backend)

    def query_over(self, vectors, ids, teff, logg, **options):
        """The TwinQuery of stars already placed in this finder's metric (``vectors``, e.g. the
        app's cached ones); ``options``: group, snr, metric, backend, _index."""
        from twinviz.twins.query import TwinQuery

        return TwinQuery(vectors, ids, teff, logg, ranked_on=f"pixel finder {self.directory or ''}",
                         distance="pixel finder", ood=_TrainingRange(self),
                         calibration_note="P(twin): not available for the pixel finder (no calibration).",
                         **options)

    # --- files ---------------------------------------------------------------------------------
    def save(self, directory) -> Path:
        """Write the finder folder atomically (a non-finder folder is never replaced)."""
        from safetensors.numpy import save_file

        from twinviz.atomic import atomic_directory

        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or (any(directory.iterdir())
                                                              and not (directory / FINDER_CONFIG).is_file())):
            raise PixelFinderError(f"{directory}: exists and is not a pixel finder folder; it is left as it is. "
                                   "Fix: choose another --out")
        f = self.fitted
        with atomic_directory(directory) as tmp:
            tmp.mkdir()
            save_file({"center": np.asarray(f.center, np.float64), "scale": np.asarray(f.scale, np.float64),
                       "coef": np.ascontiguousarray(f.coef, np.float32),
                       "pca_mean": np.ascontiguousarray(f.pca_mean, np.float32),
                       "components": np.ascontiguousarray(f.components, np.float32),
                       "teff_range": np.asarray(self.teff_range, np.float64),
                       "logg_range": np.asarray(self.logg_range, np.float64)}, str(tmp / FINDER_FILE))
            f.metric.save(tmp)
            (tmp / FINDER_CONFIG).write_text(json.dumps(
                {"format": FORMAT, "version": VERSION, "grid_id": self.grid_id, "n_pixels": self.n_pixels,
                 "poly_degree": int(f.poly_degree), "n_components": int(f.components.shape[0]), **f.info},
                indent=2) + "\n")
        self.directory = directory
        return directory


def load_pixel_finder(directory) -> PixelTwinFinder:
    """Open a folder written by :meth:`PixelTwinFinder.save` (``twinviz fit-pixel-finder``)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from twinviz.evaluation.supervised_baseline import PolynomialPcaMetric
    from twinviz.twins.metric import TwinMetric, TwinMetricError

    directory = Path(directory)
    cfg_path = directory / FINDER_CONFIG
    fix = "Fix: give the folder written by `twinviz fit-pixel-finder`, or fit it again"
    if not cfg_path.is_file():
        raise PixelFinderError(f"{directory}: no {FINDER_CONFIG} here: not a pixel finder folder. {fix}")
    try:
        cfg = json.loads(cfg_path.read_text())
        t = load_file(str(directory / FINDER_FILE))
        center, scale, coef, mean, components = (t[k] for k in ("center", "scale", "coef", "pca_mean", "components"))
        teff_range, logg_range = tuple(t["teff_range"].tolist()), tuple(t["logg_range"].tolist())
        degree, n_pixels = int(cfg["poly_degree"]), int(cfg["n_pixels"])
        metric = TwinMetric.load(directory, latent_dim=int(components.shape[0]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, TwinMetricError) as exc:
        raise PixelFinderError(f"{directory}: pixel finder: unreadable ({exc}). {fix}") from exc
    if cfg.get("format") != FORMAT or int(cfg.get("version", 0)) > VERSION:
        raise PixelFinderError(f"{cfg_path}: format: {cfg.get('format')!r} version {cfg.get('version')!r} is not a "
                               f"pixel finder this twinviz reads ({FORMAT} ≤ {VERSION}). {fix}")
    m = (degree + 1) * (degree + 2) // 2
    k = components.shape[0]
    if (metric is None or coef.shape != (m, n_pixels) or components.shape != (k, n_pixels)
            or mean.shape != (n_pixels,) or center.shape != (2,) or scale.shape != (2,)):
        raise PixelFinderError(f"{directory}: pixel finder: arrays do not fit each other (coef {coef.shape}, "
                               f"components {components.shape}, {n_pixels} px, degree {degree}). {fix}")
    info = {key: v for key, v in cfg.items() if key not in ("format", "version", "grid_id", "n_pixels")}
    fitted = PolynomialPcaMetric(degree, center, scale, coef, mean, components, metric, info)
    return PixelTwinFinder(fitted, str(cfg.get("grid_id") or ""), n_pixels, teff_range, logg_range, directory)


@dataclass
class _TrainingRange:
    """The finder's out-of-distribution check, in the shape TwinQuery reads: its training labels."""

    finder: PixelTwinFinder

    @property
    def basis(self) -> str:
        return "Teff/logg inside " + self.finder.describe_range() + "; no reconstruction check (no decoder)"

    def flags(self, teff, logg, recon_mse=None) -> dict:
        outside = self.finder.outside_training(teff, logg)
        return {"ood": outside, "ood_labels": outside, "ood_recon": np.zeros_like(outside)}

    def describe(self, teff: float, logg: float, recon_mse=None) -> str:
        return "Teff/logg outside " + self.finder.describe_range() if self.finder.outside_training(
            [teff], [logg])[0] else ""

    def short(self, teff: float, logg: float, recon_mse=None) -> str:
        return "outside the finder's Teff/logg" if self.describe(teff, logg) else ""


def fit_pixel_finder(train: xr.Dataset, val: xr.Dataset, *, n_components: int | None = None,
                     say=None) -> PixelTwinFinder:
    """Fit on ``train``'s twins, choose degree and size on ``val``'s (never the evaluated set)."""
    from twinviz.evaluation.supervised_baseline import N_COMPONENTS, fit_polynomial_pca_metric
    from twinviz.spectra.dataset import DatasetError

    for ds, role in ((train, "training"), (val, "validation")):
        source = ds.encoding.get("source", f"<{role} data>")
        groups = np.asarray(ds["group"].values) if "group" in ds.variables else np.full(ds.sizes["star"], -1)
        _, counts = np.unique(groups[groups >= 0], return_counts=True)
        if not np.any(counts >= 2):
            raise DatasetError(f"{source}: group: no twins (no group holds two stars); the pixel finder learns from "
                               f"the {role} twins. Fix: give spectra with twin pairs, e.g. `twinviz simulate`")
    if int(train.sizes["wavelength"]) != int(val.sizes["wavelength"]) or (
            train.attrs.get("grid_id") != val.attrs.get("grid_id")):
        raise DatasetError(f"{val.encoding.get('source', '<validation data>')}: wavelength: grid "
                           f"'{val.attrs.get('grid_id')}' differs from the training spectra's "
                           f"'{train.attrs.get('grid_id')}'. Fix: put both on the same grid")
    fitted = fit_polynomial_pca_metric(train, val, n_components=n_components or N_COMPONENTS, say=say)
    teff, logg = np.asarray(train["teff"].values, np.float64), np.asarray(train["logg"].values, np.float64)
    return PixelTwinFinder(fitted, str(train.attrs.get("grid_id") or ""), int(train.sizes["wavelength"]),
                           (float(teff.min()), float(teff.max())), (float(logg.min()), float(logg.max())))
