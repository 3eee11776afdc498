"""Where each element's strongest lines are, for the swap explorer's "jump to line" select.

Read from the synthesizer's line list (``twinviz.spectra.linelist``) when it is installed;
without it the select is hidden.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["element_lines"]


def element_lines(data, per_element: int = 5) -> dict[str, list[float]]:
    """{element: wavelengths (Å) of its ``per_element`` strongest lines on the data's grid}."""
    table = _line_table()
    if table is None:
        return {}
    species, wave, strength = table
    lo, hi = float(np.nanmin(data.wavelength)), float(np.nanmax(data.wavelength))
    inside = np.zeros(wave.size, dtype=bool)
    for a, b in data.segments:  # lines in chip gaps cannot be looked at
        inside |= (wave >= data.wavelength[a]) & (wave <= data.wavelength[b - 1])
    inside &= (wave >= lo) & (wave <= hi)
    out: dict[str, list[float]] = {}
    for sp in dict.fromkeys(species[inside]):
        sel = np.flatnonzero(inside & (species == sp))
        best = sel[np.argsort(-strength[sel])[:per_element]]
        out[str(sp)] = sorted(float(w) for w in wave[best])
    return out


def _line_table():
    """(species [n] str, wavelength [n] Å, strength [n]) of the line list, or None."""
    try:
        from twinviz.spectra import linelist
    except ImportError:
        return None
    try:
        loader = getattr(linelist, "load_linelist", None) or getattr(linelist, "load")
        lines = loader()
        cols = _columns(lines)
        species = np.asarray(cols.get("element", cols.get("species")), dtype=str)
        wave = np.asarray(cols["wavelength"], dtype=np.float64)
        if "strength" in cols:
            strength = np.asarray(cols["strength"], dtype=np.float64)
        else:  # log gf − θχ at 4500 K: how deep a line of given abundance gets
            strength = np.asarray(cols["loggf"], np.float64) - (5040.0 / 4500.0) * np.asarray(
                cols.get("chi", cols.get("excitation", 0.0)), np.float64)
        return species, wave, strength
    except Exception as exc:  # the app still works without line jumps
        log.warning("line list unreadable for the line-jump select: %s", exc)
        return None


def _columns(lines) -> dict:
    if isinstance(lines, dict):
        return lines
    if hasattr(lines, "to_dict") and hasattr(lines, "columns"):  # pandas
        return {c: lines[c].values for c in lines.columns}
    if hasattr(lines, "dtype") and lines.dtype.names:  # numpy structured array
        return {n: lines[n] for n in lines.dtype.names}
    if hasattr(lines, "data_vars"):  # xarray
        return {n: lines[n].values for n in lines.variables}
    raise TypeError(f"unsupported line-list type {type(lines).__name__}")
