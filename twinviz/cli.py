"""The `twinviz` command line: ``twinviz <command> [options]``.

Each subcommand lives in ``twinviz.commands.<module>`` and provides ``add_arguments(parser)``
and ``main(args) -> int``. Command modules import heavy libraries (torch, panel) inside
``main`` so that ``twinviz --help`` and ``twinviz simulate`` stay quick.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "synthesize twin spectra on the APOGEE grid into a dataset file"),
    "train": ("train", "train a fader network (or the λ=0 baseline) on a spectra dataset"),
    "evaluate": ("evaluate", "Table-1 metrics of a model with baselines; writes report.json/.md"),
    "embed": ("embed", "encode a dataset into latents with 2-D projections (UMAP, PCA)"),
    "encode": ("embed", "alias of `embed`"),
    "twins": ("twins", "list the nearest L1 twins of one star"),
    "calibrate": ("calibrate", "fit P(twin | latent distance) on validation data; stored beside the model"),
    "fit-metric": ("fit_metric", "fit the twin metric of a trained model (what training does after its last epoch)"),
    "fit-pixel-finder": ("fit_pixel_finder", "fit the pixel twin finder (polynomial residuals in a twin metric) on training twins"),
    "clusters": ("clusters", "recover chemistry groups by HDBSCAN on the latent, beside baselines"),
    "demo": ("demo", "build (or rebuild) the bundled demo: data, model, latents"),
    "import": ("import_", "import real survey files (APOGEE aspcapStar/apStar) into a dataset"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(f"twinviz.commands.{module}") is not None:
            found[name] = (module, help_)
    return found


def build_parser() -> argparse.ArgumentParser:
    from twinviz import __version__

    parser = argparse.ArgumentParser(
        prog="twinviz", description="Find chemically identical stars from their spectra (fader networks).")
    parser.add_argument("--version", action="version", version=f"twinviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        mod = importlib.import_module(f"twinviz.commands.{module}")
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `twinviz` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from twinviz.spectra.dataset import DatasetError

    try:
        return int(args._module.main(args) or 0)
    except DatasetError as exc:  # user errors: a readable message, no traceback
        print(f"twinviz {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
