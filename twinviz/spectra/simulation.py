"""Datasets from the built-in synthesizer: groups of stars that share a chemistry (twins),
with optional noise, populations, chemistry regimes and nuisances — ``twinviz simulate``.

The spectra themselves come from :class:`twinviz.spectra.synth.Synthesizer`; this module draws
the labels, runs the synthesizer in chunks, adds what a survey adds, and builds the dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from twinviz.spectra.grid import DEFAULT_GRID, WavelengthGrid
from twinviz.spectra.labels import draw_labels
from twinviz.spectra.nuisances import Nuisances
from twinviz.spectra.synth import ELEMENTS, GENERATOR, GENERATOR_VERSION, Synthesizer

__all__ = ["simulate", "simulate_to_zarr"]

#: stars per zarr chunk of a streamed simulation: one star is read by decompressing 128 × 7 214 px
#: (3.7 MB, a few ms), and a million stars make ~7 800 chunk files per variable.
STREAM_STAR_CHUNK = 128


def simulate(n_groups: int, *, group_size: int = 2, seed: int = 0, snr: float | None = None,
             chemistry: str = "independent", population: str = "giants", nuisances=None,
             grid: str | WavelengthGrid = DEFAULT_GRID, progress=False, chunk: int = 1000,
             group_sizes: tuple[int, int] | None = None, field_fraction: float = 0.0, **label_options):
    """Synthesize a dataset of ``n_groups`` chemistry groups of ``group_size`` stars.

    Members of a group share [Fe/H] and every [X/Fe] and differ in Teff (K) and logg (dex); see
    :func:`draw_labels` (``chemistry``: independent | galactic | low-d; ``population``: giants |
    dwarfs | mixed; extra keyword arguments such as ``teff_range`` go to it). ``snr``: add
    Gaussian noise of σ = 1/snr per pixel and store ``flux_err`` = 1/snr (None: noiseless, flux in
    (0, 1]). ``nuisances``: None (none, the default), a preset name (``"realistic"``) or a
    :class:`~twinviz.spectra.nuisances.Nuisances`; drawn per star from their own random streams.
    The attrs record ``population``, ``chemistry``, ``nuisance_preset`` (a preset's name, or
    ``custom``) and every nuisance value.
    ``progress``: False, True (a tqdm bar) or a callable ``progress(done, total)``.
    ``group_sizes`` (MIN, MAX) and/or ``field_fraction`` F > 0 switch to open-cluster-like
    groups (:func:`twinviz.spectra.clusters.draw_cluster_labels`): ``n_groups`` clusters of
    sizes uniform in [MIN, MAX] (``(group_size, group_size)`` when only F is given), each on one
    isochrone-like track in (Teff, logg), plus a fraction F of field stars with a chemistry and a
    group id of their own; the attrs then record ``group_sizes``, ``field_fraction``,
    ``n_clusters`` and ``n_field`` instead of ``group_size``.
    The same arguments always give the same dataset; with the defaults it is the same, bit for
    bit, as before regimes and nuisances existed. Returns an ``xarray.Dataset`` in the format
    of :mod:`twinviz.spectra.dataset`.
    """
    from twinviz.spectra.dataset import make_spectra  # xarray only when a dataset is built
    from twinviz.spectra.nuisances import mask_pixels

    plan = _Plan(n_groups, group_size=group_size, seed=seed, snr=snr, chemistry=chemistry,
                 population=population, nuisances=nuisances, grid=grid, group_sizes=group_sizes,
                 field_fraction=field_fraction, **label_options)
    n = plan.n
    flux = np.empty((n, plan.synth.grid.n_pixels), dtype=np.float32)
    report, close = _progress_reporter(progress, n)
    try:
        for sl, block in plan.blocks(chunk):
            flux[sl] = block
            report(sl.stop)
    finally:
        close()
    flux_err = None if snr is None else np.full(flux.shape, 1.0 / snr, dtype=np.float32)
    mask = None
    if plan.nuisances.masks:
        # docs/dataset.md: masked pixels hold finite placeholders (flux 1, flux_err 1).
        mask = mask_pixels(plan.synth.wavelength, n, seed)
        flux[mask] = 1.0
        if flux_err is not None:
            flux_err[mask] = 1.0
    return make_spectra(flux, flux_err=flux_err, mask=mask, **plan.dataset_arguments())


def simulate_to_zarr(path, n_groups: int, *, group_size: int = 2, seed: int = 0, snr: float | None = None,
                     chemistry: str = "independent", population: str = "giants", nuisances=None,
                     grid: str | WavelengthGrid = DEFAULT_GRID, progress=False, chunk: int = 4096,
                     group_sizes: tuple[int, int] | None = None, field_fraction: float = 0.0,
                     star_chunk: int = STREAM_STAR_CHUNK, **label_options):
    """Synthesize the dataset of :func:`simulate` (same arguments, the same values bit for bit)
    straight into a zarr store at ``path``, ``chunk`` stars at a time, so memory stays bounded
    (two blocks of ``chunk`` × pixels float32 plus the labels) whatever the number of stars.

    The store is built under a temporary name beside ``path`` and moved into place when complete
    (:func:`twinviz.atomic.atomic_directory`); the labels and metadata go first, then each block
    of flux is written into its region while the next one is synthesized. ``star_chunk`` sets the
    zarr chunking along ``star`` (``chunk`` is rounded up to a multiple of it). Per-pixel masks
    (``nuisances`` with ``masks``) are not streamed: use :func:`simulate` for those. Returns the path.
    """
    from concurrent.futures import ThreadPoolExecutor

    import dask.array as da
    import xarray as xr

    from twinviz.atomic import atomic_directory
    from twinviz.spectra.dataset import make_spectra

    plan = _Plan(n_groups, group_size=group_size, seed=seed, snr=snr, chemistry=chemistry,
                 population=population, nuisances=nuisances, grid=grid, group_sizes=group_sizes,
                 field_fraction=field_fraction, **label_options)
    if plan.nuisances.masks:
        raise ValueError(f"{path}: mask: per-pixel masks are not streamed to zarr. Fix: simulate "
                         "without masks, or write a .nc file (simulate() builds it in memory)")
    star_chunk = max(1, min(int(star_chunk), plan.n))
    chunk = -(-max(int(chunk), 1) // star_chunk) * star_chunk
    shape, chunks = (plan.n, plan.synth.grid.n_pixels), (star_chunk, plan.synth.grid.n_pixels)
    flux_err = None if snr is None else da.full(shape, 1.0 / snr, chunks=chunks, dtype=np.float32)
    template = make_spectra(da.zeros(shape, chunks=chunks, dtype=np.float32), flux_err=flux_err,
                            **plan.dataset_arguments())
    report, close = _progress_reporter(progress, plan.n)
    with atomic_directory(path) as tmp, ThreadPoolExecutor(max_workers=1) as writer:
        # metadata, coordinates and labels now; the per-pixel variables region by region below
        template.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True, compute=False)

        def write(sl, block):
            region = {"flux": (("star", "wavelength"), block)}
            if snr is not None:
                region["flux_err"] = (("star", "wavelength"), np.full(block.shape, 1.0 / snr, np.float32))
            xr.Dataset(region).to_zarr(tmp, region={"star": sl}, zarr_format=2)
            return sl.stop

        pending = None
        try:
            for sl, block in plan.blocks(chunk):
                if pending is not None:
                    report(pending.result())
                pending = writer.submit(write, sl, block)
            if pending is not None:
                report(pending.result())
        finally:
            close()
    return Path(path)


class _Plan:
    """Everything of a simulated dataset but its flux: the labels, the per-star nuisances, the
    synthesizer and the attrs; :meth:`blocks` makes the flux block by block, in star order
    (the noise stream runs through the blocks in order, so any block size gives the same flux)."""

    def __init__(self, n_groups, *, group_size, seed, snr, chemistry, population, nuisances, grid,
                 group_sizes, field_fraction, **label_options):
        from twinviz.spectra.nuisances import PRESETS, draw_nuisances

        if snr is not None and not snr > 0:
            raise ValueError(f"snr must be positive or None, got {snr!r}")
        preset = "none"
        if nuisances is None:
            nuisances = Nuisances()
        elif isinstance(nuisances, str):
            if nuisances not in PRESETS:
                raise ValueError(f"unknown nuisance preset {nuisances!r}; known: {', '.join(PRESETS)}")
            preset, nuisances = nuisances, PRESETS[nuisances]
        elif isinstance(nuisances, Nuisances):
            preset = next((name for name, value in PRESETS.items() if value == nuisances), "custom")
        else:
            raise TypeError(f"nuisances must be None, a preset name or a Nuisances, got {type(nuisances).__name__}")
        if group_sizes is None and not field_fraction:
            labels = draw_labels(n_groups, group_size=group_size, chemistry=chemistry, seed=seed,
                                 population=population, **label_options)
            grouping = {"group_size": int(group_size)}
        else:
            from twinviz.spectra.clusters import draw_cluster_labels

            sizes = tuple(group_sizes) if group_sizes is not None else (group_size, group_size)
            labels = draw_cluster_labels(n_groups, sizes, field_fraction, chemistry=chemistry, seed=seed,
                                         population=population, **label_options)
            grouping = {"group_sizes": f"{sizes[0]}-{sizes[1]}", "field_fraction": float(field_fraction),
                        "n_clusters": int(n_groups), "n_field": int(labels["field"].sum())}
        self.labels, self.nuisances, self.snr, self.seed = labels, nuisances, snr, seed
        self.synth = Synthesizer(grid)
        self.n = labels["teff"].size
        self.per_star = draw_nuisances(self.n, nuisances, seed, logg=labels["logg"])
        self.attrs = {"generator": GENERATOR, "generator_version": GENERATOR_VERSION,
                      "linelist_version": self.synth.linelist_version, "seed": int(seed), "chemistry": chemistry,
                      "snr": "none" if snr is None else float(snr), **grouping,
                      "population": population, "nuisance_preset": preset, **nuisances.attrs()}

    def blocks(self, chunk: int):
        """Yield (slice, flux block [stars, pixels] float32) over consecutive blocks of stars."""
        from twinviz.spectra.nuisances import continuum_factor

        labels, per_star = self.labels, self.per_star
        # A separate stream of the same seed: the noiseless labels and spectra do not depend on snr.
        noise_rng = None if self.snr is None else np.random.default_rng([self.seed, 1])
        for start in range(0, self.n, max(1, int(chunk))):
            sl = slice(start, min(start + chunk, self.n))
            extra = {k: None if per_star[k] is None else per_star[k][sl] for k in ("vmicro", "vbroad", "rv")}
            block = np.asarray(self.synth.batch(labels["teff"][sl], labels["logg"][sl], labels["fe_h"][sl],
                                                labels["x_fe"][sl], **extra), dtype=np.float32)
            if per_star["continuum"] is not None:
                block *= continuum_factor(self.synth.wavelength, per_star["continuum"][sl])
            if noise_rng is not None:
                block += noise_rng.standard_normal(block.shape, dtype=np.float32) / np.float32(self.snr)
            yield sl, block

    def dataset_arguments(self) -> dict:
        """make_spectra's arguments other than flux, flux_err and mask."""
        labels = self.labels
        return dict(wavelength=self.synth.wavelength, teff=labels["teff"], logg=labels["logg"],
                    group=labels["group"], fe_h=labels["fe_h"], x_fe=labels["x_fe"], elements=ELEMENTS,
                    snr=self.snr, attrs=self.attrs)


def _progress_reporter(progress, total):
    """(report(done), close()) for progress = False | True (tqdm) | callable(done, total)."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="spectra", desc="synthesizing")

        def report(done):
            bar.update(done - bar.n)
        return report, bar.close
    return (lambda done: None), (lambda: None)
