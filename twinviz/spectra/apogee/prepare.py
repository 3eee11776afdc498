"""Reading and normalising files — the part of an import that can run in worker processes.

:func:`prepared_files` yields, in file order, each file's spectrum on the output grid (or the
reason it cannot be read). With ``workers`` > 1 the files are read by a pool of processes, a
block of files at a time (so at most one block of results is in memory); the main process
keeps the order, the labels, the report and the writing, so the output is identical to a
one-process import.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from twinviz.spectra.grid import get_grid
from twinviz.spectra.apogee import ApogeeFileError
from twinviz.spectra.apogee.bits import PIXMASK, mask_value
from twinviz.spectra.apogee.continuum import normalise
from twinviz.spectra.apogee.fits import read_apogee_file

__all__ = ["MASKED_FLUX_ERR", "prepare_file", "prepared_files", "spectrum_on_grid"]

MASKED_FLUX_ERR = 100.0  # flux_err placeholder of masked pixels (their flux is set to 1)


def spectrum_on_grid(spec, grid, opts):
    """Normalise (apStar), mask and select the grid's pixels of one spectrum.

    Returns float32 flux, float32 flux_err and bool mask on ``grid`` (masked pixels carry flux 1
    and flux_err :data:`MASKED_FLUX_ERR`).
    """
    flux, err = spec.flux, spec.flux_err
    bad = ~np.isfinite(flux) | (flux <= 0) | ~np.isfinite(err) | (err <= 0)
    if spec.kind in ("apStar", "apVisit"):
        bits = mask_value(opts.pixmask_bits, PIXMASK, "--pixmask-bits")
        bad |= (spec.pixmask & bits) != 0
        flux, err, no_cont = normalise(flux, err, bad)
        bad |= no_cont
    pix = grid.pixels
    f, e, m = flux[pix].astype(np.float32), err[pix].astype(np.float32), bad[pix]
    with np.errstate(invalid="ignore"):
        m = m | ~np.isfinite(f) | ~(e <= opts.max_err)
    f[m], e[m] = 1.0, MASKED_FLUX_ERR
    return f, e, m


def prepare_file(path, opts):
    """``(spectrum without its full arrays, flux, flux_err, mask)`` on ``opts.grid``, or the
    reason (str) the file cannot be read."""
    try:
        spec = read_apogee_file(path)
        f, e, m = spectrum_on_grid(spec, get_grid(opts.grid), opts)
    except ApogeeFileError as exc:
        return str(exc)
    except Exception as exc:  # a file unlike any the reader was built on: its reason, not a traceback
        return str(ApogeeFileError(path, "file", f"could not be imported ({type(exc).__name__}: {exc})",
                                   "check that it is an unmodified APOGEE file; remove it to import the rest"))
    empty = np.empty(0, np.float32)
    return replace(spec, flux=empty, flux_err=empty, pixmask=None), f, e, m


def _prepare_many(paths, opts):
    return [prepare_file(p, opts) for p in paths]


def prepared_files(todo, opts, block: int = 1024):
    """Yield ``(k, path, prepare_file(path))`` for ``todo`` = [(k, path)…], in order."""
    if opts.workers <= 1:
        for k, path in todo:
            yield k, path, prepare_file(path, opts)
        return
    step = max(1, block // (4 * opts.workers))  # a few tasks per worker and block
    with ProcessPoolExecutor(max_workers=opts.workers) as pool:
        for start in range(0, len(todo), block):
            part = todo[start:start + block]
            tasks = [pool.submit(_prepare_many, [p for _, p in part[i:i + step]], opts)
                     for i in range(0, len(part), step)]
            results = [r for t in tasks for r in t.result()]
            for (k, path), result in zip(part, results):
                yield k, path, result
