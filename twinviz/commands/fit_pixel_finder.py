"""Fit the pixel twin finder: per-pixel polynomial residuals in (Teff, logg), their leading
principal components, and a twin metric learned from the training twins — the twin-supervised
pixel method that `twinviz evaluate --baseline-train` compares the fader network with, saved so
that `twinviz twins --pixel-finder DIR` can rank the stars of any dataset on the same grid.

The polynomial, the components and the metric are fitted on --data (its twins: the `group`
variable); the polynomial degree, the metric's Teff/logg interaction degree and its number of
axes are chosen on --val by rank 1. Never give the set you will evaluate on as --val.

Where training twins exist it is the strongest twin finder twinviz has measured on its
synthesizer (docs/evaluation.md); it has no decoder and does not separate chemistry from
Teff/logg in a latent space — that is what the fader network is for.

Example:
  twinviz fit-pixel-finder --data train.nc --val val.nc --out finders/pixel
  twinviz twins --pixel-finder finders/pixel --data test.nc --star 42 -k 10
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="FILE", help="training spectra with twins (`group`)")
    parser.add_argument("--val", required=True, metavar="FILE",
                        help="validation spectra with twins (choose degree and size); never the test set")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the finder to")
    parser.add_argument("--components", type=int, default=64, help="principal components of the residuals")


def main(args) -> int:
    import time
    from pathlib import Path

    from twinviz.spectra.dataset import DatasetError, load_spectra
    from twinviz.evaluation.pixel_finder import PixelFinderError, fit_pixel_finder

    if args.components < 2:
        print(f"twinviz fit-pixel-finder: error: --components {args.components}: needs at least 2. "
              "Fix: e.g. --components 64", file=sys.stderr)
        return 2
    if Path(args.data).resolve() == Path(args.val).resolve():
        raise DatasetError(f"--val {args.val}: is the training file; the choices would be made on the data they "
                           "were fitted on. Fix: give a separate validation file")
    t0 = time.perf_counter()
    try:
        finder = fit_pixel_finder(load_spectra(args.data), load_spectra(args.val), n_components=args.components,
                                  say=print)
        out = finder.save(args.out)
    except PixelFinderError as exc:
        print(f"twinviz fit-pixel-finder: error: {exc}", file=sys.stderr)
        return 2
    info = finder.info
    chosen = info["validation"][str(info["poly_degree"])]
    print(f"pixel finder: polynomial degree {info['poly_degree']}, {info['n_components']} components, twin metric "
          f"{info['metric']} axes; validation rank 1 {100 * chosen['rank1']:.1f} %, ≤ 1 % "
          f"{100 * chosen['within_1pct']:.1f} % ({time.perf_counter() - t0:.0f} s)")
    print(f"wrote {out}  (use: twinviz twins --pixel-finder {out} --data FILE --star ID)")
    return 0
