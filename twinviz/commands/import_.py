"""Import real survey spectra into a twinviz dataset.

`twinviz import apogee PATHS... --out stars.nc` reads APOGEE aspcapStar files (ASPCAP,
continuum-normalised; labels from their own table or from --catalogue) and apStar files
(normalised here, per chip), masks bad pixels, keeps the pixels of --grid and writes one
dataset plus an import report (<out>.import.json / .md) that lists every skipped file and star
with its reason. Needs astropy: pip install "twinviz[fits]". See docs/real-data.md.

Example:  twinviz import apogee spectra/ --catalogue allStar.fits --out stars.zarr
"""
from __future__ import annotations

import sys
from pathlib import Path

SOURCES = ("apogee",)


def add_arguments(parser) -> None:
    from twinviz.spectra.grid import DEFAULT_GRID

    parser.add_argument("source", choices=SOURCES, help="survey whose files are read")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="aspcapStar/apStar FITS files and/or folders (searched recursively for *.fits)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset, .nc (netCDF) or .zarr")
    parser.add_argument("--grid", default=DEFAULT_GRID,
                        help="APOGEE grid: apogee-aspcap-dr12, apogee-aspcap-dr17 or apogee-apstar")
    parser.add_argument("--catalogue", "--catalog", dest="catalogue", default=None, metavar="FILE",
                        help="labels: allStar .fits or .csv with APOGEE_ID,TEFF,LOGG[,FE_H,<X>_FE]; "
                             "default: each aspcapStar file's own PARAM")
    parser.add_argument("--labels", choices=("param", "fparam"), default="param",
                        help="without --catalogue: calibrated PARAM, or (explicit opt-in) the raw uncalibrated "
                             "FPARAM fit for stars without calibrated labels, e.g. M dwarfs")
    parser.add_argument("--groups", default=None, metavar="CSV",
                        help="CSV with APOGEE_ID,group: stars sharing a group share a chemistry; others get -1")
    parser.add_argument("--max-err", type=float, default=0.1,
                        help="mask pixels whose normalised 1-sigma error exceeds this (0.1 = S/N below 10)")
    parser.add_argument("--pixmask-bits", default=None, metavar="NAMES",
                        help="comma-separated APOGEE_PIXMASK bit names that mask an apStar pixel "
                             "(default: BADPIX,CRPIX,SATPIX,UNFIXABLE,BADDARK,BADFLAT,BADERR,NOSKY,"
                             "PERSIST_HIGH,SIG_SKYLINE)")
    parser.add_argument("--chunk-stars", type=int, default=1024,
                        help="stars per zarr chunk (zarr output streams one chunk at a time)")
    parser.add_argument("--strict", action="store_true",
                        help="abort on the first bad file or star, writing nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def main(args) -> int:
    from twinviz.spectra.apogee.importer import DEFAULT_PIXMASK_BITS, ImportOptions, import_apogee

    bits = (tuple(b.strip().upper() for b in args.pixmask_bits.split(",") if b.strip())
            if args.pixmask_bits is not None else DEFAULT_PIXMASK_BITS)
    if args.chunk_stars < 1:
        raise SystemExit("twinviz import: error: --chunk-stars must be at least 1")
    opts = ImportOptions(grid=args.grid, max_err=args.max_err, pixmask_bits=bits, labels=args.labels,
                         catalogue=args.catalogue, groups=args.groups, chunk_stars=args.chunk_stars,
                         strict=args.strict, overwrite=args.overwrite, progress=not args.no_progress)
    report = import_apogee(args.paths, args.out, opts)
    for row in report["skipped_files"] + report["skipped_stars"]:
        print(f"skipped: {row['reason'] if row['reason'].startswith(row['file']) else row['file'] + ': ' + row['reason']}",
              file=sys.stderr)
    print(f"imported {report['imported']} stars from {report['files']} files into {report['output']}; "
          f"skipped {report['skipped']} (reasons in {report['output']}.import.json); "
          f"labels: {report['attrs']['label_source']}; {report['elapsed_s']:.1f} s")
    return 0
