"""Import real survey spectra into a twinviz dataset.

`twinviz import apogee PATHS... --out stars.nc` reads APOGEE aspcapStar files (ASPCAP,
continuum-normalised; labels from their own table or from --catalogue), apStar files
(normalised here, per chip) and apVisit files (one visit: moved to the rest frame and resampled
onto the apStar grid first), DR12–DR16 and DR17, masks bad pixels, keeps the pixels of --grid and
writes one dataset plus an import report (<out>.import.json / .md) that lists every skipped file
and star with its reason and the members per cluster. A killed .zarr import continues with
--resume. Needs astropy: pip install "twinviz[fits]". See docs/real-data.md.

Example:  twinviz import apogee spectra/ --catalogue allStar-dr17-synspec_rev1.fits --out stars.zarr
"""
from __future__ import annotations

import sys
from pathlib import Path

SOURCES = ("apogee",)


def add_arguments(parser) -> None:
    from twinviz.spectra.apogee.bits import DEFAULT_ASPCAPFLAG_BAD, DEFAULT_PIXMASK_BITS, DEFAULT_STARFLAG_BAD
    from twinviz.spectra.grid import DEFAULT_GRID

    parser.add_argument("source", choices=SOURCES, help="survey whose files are read")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="aspcapStar/apStar/apVisit FITS files and/or folders (searched recursively for *.fits)")
    parser.add_argument("--out", type=Path, required=True, help="output dataset, .nc (netCDF) or .zarr")
    parser.add_argument("--grid", default=DEFAULT_GRID,
                        help="APOGEE grid: apogee-aspcap-dr12, apogee-aspcap-dr17 or apogee-apstar")
    parser.add_argument("--catalogue", "--catalog", dest="catalogue", default=None, metavar="FILE",
                        help="labels: DR17 allStar .fits or a .csv with APOGEE_ID,TEFF,LOGG[,TEFF_ERR,LOGG_ERR,FE_H,"
                             "<X>_FE,<X>_FE_FLAG,ASPCAPFLAG,STARFLAG,EXTRATARG]; default: each aspcapStar file's PARAM")
    parser.add_argument("--labels", choices=("param", "fparam"), default="param",
                        help="without --catalogue: calibrated PARAM, or (explicit opt-in) the raw uncalibrated "
                             "FPARAM fit for stars without calibrated labels, e.g. M dwarfs")
    parser.add_argument("--groups", default=None, metavar="TABLE",
                        help="membership table (.csv or .fits) with APOGEE_ID, group (or CLUSTER) and optionally a "
                             "membership probability: members of a group share a chemistry; others get -1")
    parser.add_argument("--min-membership", type=float, default=None, metavar="P",
                        help="with --groups: only rows with membership probability >= P (0-1) make members")
    parser.add_argument("--membership-column", default=None, metavar="NAME",
                        help="with --groups: the probability column (None: the first of membership, prob, "
                             "probability, p_member)")
    parser.add_argument("--aspcapflag-bad", default=",".join(DEFAULT_ASPCAPFLAG_BAD), metavar="NAMES",
                        help="comma-separated catalogue ASPCAPFLAG bit names that drop a star")
    parser.add_argument("--starflag-bad", default=",".join(DEFAULT_STARFLAG_BAD), metavar="NAMES",
                        help="comma-separated catalogue STARFLAG bit names that drop a star")
    parser.add_argument("--max-err", type=float, default=0.1,
                        help="mask pixels whose normalised 1-sigma error exceeds this (0.1 = S/N below 10)")
    parser.add_argument("--pixmask-bits", default=",".join(DEFAULT_PIXMASK_BITS), metavar="NAMES",
                        help="comma-separated APOGEE_PIXMASK bit names that mask an apStar/apVisit pixel")
    parser.add_argument("--chunk-stars", type=int, default=1024,
                        help="stars per zarr chunk (zarr output streams one chunk at a time)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that read and normalise files (results kept in file order)")
    parser.add_argument("--strict", action="store_true",
                        help="abort on the first bad file or star, writing nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted .zarr import of the same paths and options where it stopped")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _names(text):
    return tuple(b.strip().upper() for b in text.split(",") if b.strip())


def main(args) -> int:
    from twinviz.spectra.apogee.importer import ImportOptions, import_apogee

    if args.chunk_stars < 1:
        raise SystemExit("twinviz import: error: --chunk-stars must be at least 1")
    opts = ImportOptions(grid=args.grid, max_err=args.max_err, pixmask_bits=_names(args.pixmask_bits),
                         labels=args.labels, catalogue=args.catalogue, groups=args.groups,
                         min_membership=args.min_membership, membership_column=args.membership_column,
                         aspcapflag_bad=_names(args.aspcapflag_bad), starflag_bad=_names(args.starflag_bad),
                         chunk_stars=args.chunk_stars,
                         workers=args.workers,
                         strict=args.strict, overwrite=args.overwrite, resume=args.resume,
                         progress=not args.no_progress)
    report = import_apogee(args.paths, args.out, opts)
    for row in report["skipped_files"] + report["skipped_stars"]:
        print(f"skipped: {row['reason'] if row['reason'].startswith(row['file']) else row['file'] + ': ' + row['reason']}",
              file=sys.stderr)
    print(f"imported {report['imported']} stars from {report['files']} files into {report['output']}; "
          f"skipped {report['skipped']} (reasons in {report['output']}.import.json); "
          f"labels: {report['attrs']['label_source']}; "
          f"source: {', '.join(f'{k} {v} stars' for k, v in report['sources'].items())}; "
          f"{report['elapsed_s']:.1f} s{' (resumed)' if report.get('resumed') else ''}")
    if len(report["sources"]) > 1:
        print("note: these stars come from more than one source (above): a model trained on one of them and "
              "applied to another is outside its domain; the dataset's `source` attribute and the report's "
              "per-star `source` say which is which", file=sys.stderr)
    if report.get("members"):
        cut = report["options"].get("min_membership")
        print("members per cluster" + (f" (membership >= {cut})" if cut is not None else "") + ": " + "; ".join(
            f"{name} {c['imported']} imported of {c['listed']} listed"
            + (f", {c['below_min_membership']} below the cut" if c["below_min_membership"] else "")
            for name, c in report["members"].items()))
    return 0
