"""Synthesize twin spectra with the built-in synthesizer and save them as a dataset file.

Stars come in groups (pairs by default) that share every chemical label and differ in Teff and
logg. The paper's sizes: 25 000 training pairs (``--pairs 25000``, the default) and 12 500
validation pairs (``--pairs 12500 --seed 2``); use a different seed for each set. On two CPU
cores the synthesizer makes 1000-2000 spectra per second, so a full training set (50 000
spectra) takes under a minute, plus the time to write the file.

Example:  twinviz simulate --pairs 25000 --seed 1 --snr 50 --out train.nc
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--pairs", type=int, default=25_000, metavar="N",
                        help="number of chemistry groups (pairs when --group-size 2); the paper used "
                             "25 000 training and 12 500 validation pairs")
    parser.add_argument("--group-size", type=int, default=2,
                        help="stars per chemistry group (2 = twin pairs; larger = cluster-like)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same dataset")
    parser.add_argument("--snr", type=float, default=None,
                        help="signal-to-noise per pixel: adds Gaussian noise σ = 1/SNR and stores flux_err; "
                             "None = noiseless")
    parser.add_argument("--chemistry", choices=("independent", "galactic"), default="independent",
                        help="independent [X/Fe] per element, or correlated low-dimensional 'galactic' chemistry")
    parser.add_argument("--grid", default="apogee-aspcap-dr12",
                        help="wavelength grid: apogee-aspcap-dr12, apogee-aspcap-dr17 or apogee-apstar")
    parser.add_argument("--out", type=Path, required=True, help="output file, .nc (netCDF) or .zarr")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def main(args) -> int:
    import time

    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.synth import simulate

    if args.pairs < 1 or args.group_size < 1:
        raise SystemExit("twinviz simulate: error: --pairs and --group-size must be at least 1")
    start = time.perf_counter()
    ds = simulate(args.pairs, group_size=args.group_size, seed=args.seed, snr=args.snr,
                  chemistry=args.chemistry, grid=args.grid, progress=not args.no_progress)
    path = save_spectra(ds, args.out)
    n_star, n_pix = ds["flux"].shape
    print(f"wrote {n_star} spectra × {n_pix} pixels ({args.pairs} groups of {args.group_size}) "
          f"to {path} in {time.perf_counter() - start:.1f} s")
    return 0
