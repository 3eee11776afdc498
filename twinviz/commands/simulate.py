"""Synthesize twin spectra with the built-in synthesizer and save them as a dataset file.

Stars come in groups (pairs by default) that share every chemical label and differ in Teff and
logg. The paper's sizes: 25 000 training pairs (``--pairs 25000``, the default) and 12 500
validation pairs (``--pairs 12500 --seed 2``); use a different seed for each set. On two CPU
cores the synthesizer makes 1000-2000 spectra per second, so a full training set (50 000
spectra) takes under a minute, plus the time to write the file.

Regimes and nuisances (docs/synth.md, "Regimes and nuisances"): ``--population`` giants (default),
dwarfs or mixed; ``--chemistry`` independent (default), galactic or low-d; per-star nuisances
``--vmicro-scatter``, ``--vbroad``, ``--rv-scatter``, ``--continuum-error``, ``--masks``, all
off by default and all on with ``--preset realistic`` (an explicit option overrides the preset).

Open-cluster-like groups (docs/synth.md, "Clusters"): ``--group-sizes 5-50`` makes ``--pairs``
clusters of 5 to 50 members, ``--field-fraction 0.5`` adds as many field stars as members.

A ``.zarr`` output is written streamed, a block of stars at a time (bounded memory at any size:
10⁶ stars are ~29 GB of flux, docs/scale.md); masks (``--masks``) need the in-memory path (.nc).

Example:  twinviz simulate --pairs 25000 --seed 1 --snr 50 --out train.nc
          twinviz simulate --pairs 25000 --seed 1 --snr 50 --population mixed --preset realistic --out hard.nc
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--pairs", type=int, default=25_000, metavar="N",
                        help="number of chemistry groups (pairs when --group-size 2); the paper used "
                             "25 000 training and 12 500 validation pairs")
    parser.add_argument("--group-size", type=int, default=2,
                        help="stars per chemistry group (2 = twin pairs; larger = cluster-like)")
    parser.add_argument("--group-sizes", default=None, metavar="MIN-MAX",
                        help="open-cluster-like groups instead: --pairs clusters of sizes uniform in "
                             "MIN..MAX (e.g. 5-50), each on one isochrone-like (Teff, logg) track")
    parser.add_argument("--field-fraction", type=float, default=0.0, metavar="F",
                        help="with clusters: a fraction F (0 ≤ F < 1) of all stars are field stars, "
                             "each with its own chemistry and group id")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same dataset")
    parser.add_argument("--snr", type=float, default=None,
                        help="signal-to-noise per pixel: adds Gaussian noise σ = 1/SNR and stores flux_err; "
                             "None = noiseless")
    parser.add_argument("--chemistry", choices=("independent", "galactic", "low-d"), default="independent",
                        help="independent [X/Fe] per element, correlated low-dimensional 'galactic' chemistry, "
                             "or 'low-d': only [Fe/H] and one [α/Fe] vary")
    parser.add_argument("--population", choices=("giants", "dwarfs", "mixed"), default="giants",
                        help="red giants (default), FGK dwarfs (Teff 4400-6800 K, logg 4.0-5.0), or a 50/50 "
                             "mixture drawn per star")
    parser.add_argument("--preset", choices=("none", "realistic"), default="none",
                        help="nuisance preset: 'realistic' turns every nuisance below on at APOGEE-like "
                             "magnitudes; explicit options override it")
    parser.add_argument("--vmicro-scatter", type=float, default=None, metavar="KM_S",
                        help="σ of per-star microturbulence scatter about ξ(logg) (realistic: 0.25)")
    parser.add_argument("--vbroad", type=float, default=None, metavar="KM_S",
                        help="macroturbulence/rotation: per-star ζ ~ U(0, KM_S) of a Gaussian kernel (realistic: 8)")
    parser.add_argument("--rv-scatter", type=float, default=None, metavar="KM_S",
                        help="σ of per-star radial-velocity residuals (realistic: 0.3; one pixel is 4.14 km/s)")
    parser.add_argument("--continuum-error", type=float, default=None, metavar="FRAC",
                        help="RMS of a smooth multiplicative continuum error per chip and star (realistic: 0.0075)")
    parser.add_argument("--masks", action=argparse.BooleanOptionalAction, default=None,
                        help="APOGEE-like masks: chip edges, sky lines, persistence (on in --preset realistic)")
    parser.add_argument("--grid", default="apogee-aspcap-dr12",
                        help="wavelength grid: apogee-aspcap-dr12, apogee-aspcap-dr17 or apogee-apstar")
    parser.add_argument("--out", type=Path, required=True, help="output file, .nc (netCDF) or .zarr")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def main(args) -> int:
    import time

    from twinviz.spectra.dataset import DatasetError, file_format, open_spectra, save_spectra
    from twinviz.spectra.nuisances import PRESETS
    from twinviz.spectra.simulation import simulate, simulate_to_zarr

    from twinviz.spectra.clusters import parse_group_sizes

    if args.pairs < 1 or args.group_size < 1:
        raise SystemExit("twinviz simulate: error: --pairs and --group-size must be at least 1")
    if not 0.0 <= args.field_fraction < 1.0:
        raise SystemExit(f"twinviz simulate: error: --field-fraction: {args.field_fraction} is outside "
                         "[0, 1). Fix: e.g. --field-fraction 0.5 for as many field stars as cluster members")
    try:
        sizes = None if args.group_sizes is None else parse_group_sizes(args.group_sizes)
    except ValueError as exc:
        raise SystemExit(f"twinviz simulate: error: --group-sizes: {exc}") from None
    changes = {k: v for k, v in (("vmicro_scatter", args.vmicro_scatter), ("vbroad", args.vbroad),
                                 ("rv_scatter", args.rv_scatter), ("continuum_error", args.continuum_error),
                                 ("masks", args.masks)) if v is not None}
    try:  # a preset with overrides is recorded as preset "custom" plus every value
        nuisances = PRESETS[args.preset].replace(**changes) if changes else args.preset
        file_format(args.out)
    except (ValueError, DatasetError) as exc:
        raise SystemExit(f"twinviz simulate: error: {exc}") from None
    start = time.perf_counter()
    options = dict(group_size=args.group_size, seed=args.seed, snr=args.snr, chemistry=args.chemistry,
                   population=args.population, nuisances=nuisances, grid=args.grid,
                   progress=not args.no_progress, group_sizes=sizes, field_fraction=args.field_fraction)
    masks = PRESETS[args.preset].replace(**changes).masks
    if file_format(args.out) == "zarr" and not masks:
        # streamed: bounded memory at any size (docs/scale.md); the same values as in memory
        path = simulate_to_zarr(args.out, args.pairs, **options)
        ds = open_spectra(path, validate=False)
    else:
        ds = simulate(args.pairs, **options)
        path = save_spectra(ds, args.out)
    n_star, n_pix = ds["flux"].shape
    if "n_clusters" in ds.attrs:
        what = (f"{args.pairs} clusters of {ds.attrs['group_sizes']} stars + {ds.attrs['n_field']} field "
                "stars")
    else:
        what = f"{args.pairs} groups of {args.group_size}"
    print(f"wrote {n_star} spectra × {n_pix} pixels ({what}) to {path} in {time.perf_counter() - start:.1f} s")
    return 0
