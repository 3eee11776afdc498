"""The twinviz explorer app (Panel): swap explorer, latent map, twin table, metrics, training.

In a notebook::

    import twinviz.app
    twinviz.app.explore()                                  # the bundled demo
    twinviz.app.explore(model="runs/x/model", data="val.nc")

Served: ``panel serve app.py --address localhost [--args --model DIR --data FILE [--latents FILE]
[--pixel-finder DIR] [--runs DIR] [--data-dir DIR]]``.
Every component also works on its own, e.g. ``SwapExplorer(ExplorerState(load_app_data(...)))``.
"""
from __future__ import annotations

from twinviz.app.state import AppData, AppDataError, ExplorerState

from twinviz.app.loading import load_app_data

__all__ = ["AppData", "AppDataError", "ExplorerState", "explore", "load_app_data", "main_args", "split_args"]


def explore(model=None, data=None, latents=None, pixel_finder=None, **selection):
    """The whole explorer as one Panel Viewer (displays inline in Jupyter).

    model : model directory (``FaderNetwork.save_pretrained``); data : spectra file (.nc/.zarr);
    latents : optional latent file (``twinviz embed``); with neither model nor data, the bundled
    demo. pixel_finder : optional folder of ``twinviz fit-pixel-finder``: the Twins tab can then
    rank by it. ``selection`` sets the initial state, e.g. ``star=12, teff=4800``.
    """
    from twinviz.app.layout import Explorer

    app_data = load_app_data(model, data, latents, pixel_finder)
    return Explorer(app_data, ExplorerState(app_data, **selection))


def main_args(argv) -> dict:
    """Parse ``--model DIR --data FILE [--latents FILE] [--pixel-finder DIR]`` and the Training tab's
    folders (what ``panel serve app.py --args`` passes)."""
    import argparse

    parser = argparse.ArgumentParser(prog="panel serve app.py --args", add_help=False)
    parser.add_argument("--model", default=None, help="model directory")
    parser.add_argument("--data", default=None, help="spectra dataset (.nc or .zarr)")
    parser.add_argument("--latents", default=None, help="latents of the dataset (twinviz embed)")
    parser.add_argument("--pixel-finder", default=None,
                        help="pixel twin finder folder (twinviz fit-pixel-finder): a second ranking in the Twins tab")
    parser.add_argument("--runs", default=None, help="training runs folder of the Training tab (default: ./runs)")
    parser.add_argument("--data-dir", default=None,
                        help="folder whose datasets the Training tab may train on (default: the --data file's folder)")
    known, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise AppDataError(f"unknown app options {' '.join(unknown)}. Fix: use --model DIR --data FILE "
                           "[--latents FILE] [--pixel-finder DIR] [--runs DIR] [--data-dir DIR]")
    return vars(known)


def split_args(args: dict) -> tuple[dict, dict]:
    """Split :func:`main_args`' result into (load_app_data arguments, Training-tab folders)."""
    args = dict(args)
    training = {"runs": args.pop("runs", None), "data_dir": args.pop("data_dir", None)}
    return args, training
