"""Datasets from the built-in synthesizer: groups of stars that share a chemistry (twins),
with optional noise, populations, chemistry regimes and nuisances — ``twinviz simulate``.

The spectra themselves come from :class:`twinviz.spectra.synth.Synthesizer`; this module draws
the labels, runs the synthesizer in chunks, adds what a survey adds, and builds the dataset.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.grid import DEFAULT_GRID, WavelengthGrid
from twinviz.spectra.labels import draw_labels
from twinviz.spectra.nuisances import Nuisances
from twinviz.spectra.synth import ELEMENTS, GENERATOR, GENERATOR_VERSION, Synthesizer

__all__ = ["simulate"]


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
    from twinviz.spectra.nuisances import PRESETS, continuum_factor, draw_nuisances, mask_pixels

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
    synth = Synthesizer(grid)
    n = labels["teff"].size
    per_star = draw_nuisances(n, nuisances, seed, logg=labels["logg"])
    flux = np.empty((n, synth.grid.n_pixels), dtype=np.float32)
    report, close = _progress_reporter(progress, n)
    try:
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            extra = {k: None if per_star[k] is None else per_star[k][sl] for k in ("vmicro", "vbroad", "rv")}
            flux[sl] = synth.batch(labels["teff"][sl], labels["logg"][sl], labels["fe_h"][sl], labels["x_fe"][sl],
                                   **extra)
            if per_star["continuum"] is not None:
                flux[sl] *= continuum_factor(synth.wavelength, per_star["continuum"][sl])
            report(sl.stop)
    finally:
        close()
    flux_err = None
    if snr is not None:
        # A separate stream of the same seed: the noiseless labels and spectra do not depend on snr.
        noise_rng = np.random.default_rng([seed, 1])
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            flux[sl] += noise_rng.standard_normal(flux[sl].shape, dtype=np.float32) / np.float32(snr)
        flux_err = np.full(flux.shape, 1.0 / snr, dtype=np.float32)
    mask = None
    if nuisances.masks:
        # docs/dataset.md: masked pixels hold finite placeholders (flux 1, flux_err 1).
        mask = mask_pixels(synth.wavelength, n, seed)
        flux[mask] = 1.0
        if flux_err is not None:
            flux_err[mask] = 1.0
    attrs = {"generator": GENERATOR, "generator_version": GENERATOR_VERSION,
             "linelist_version": synth.linelist_version, "seed": int(seed), "chemistry": chemistry,
             "snr": "none" if snr is None else float(snr), **grouping,
             "population": population, "nuisance_preset": preset, **nuisances.attrs()}
    return make_spectra(flux, synth.wavelength, labels["teff"], labels["logg"], group=labels["group"],
                        flux_err=flux_err, mask=mask, fe_h=labels["fe_h"], x_fe=labels["x_fe"], elements=ELEMENTS,
                        snr=snr, attrs=attrs)


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
