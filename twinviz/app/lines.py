"""Where each element's strongest lines are, for the swap explorer's "jump to line" select.

Read from the synthesizer's line list (``twinviz.spectra.linelist``), which ships with the package.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.linelist import load_linelist

__all__ = ["element_lines"]


def element_lines(data, per_element: int = 5) -> dict[str, list[float]]:
    """{element: wavelengths (Å) of its ``per_element`` strongest lines on the data's grid}."""
    species, wave, strength = _line_table()
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
    """(species [n] str, wavelength [n] Å, strength [n]) of the synthesizer's line list; the
    strength is log gf − θχ at 4500 K, how deep a line of a given abundance gets."""
    lines = load_linelist()
    strength = np.asarray(lines["loggf"], np.float64) - (5040.0 / 4500.0) * np.asarray(lines["chi"], np.float64)
    return np.asarray(lines["species"], dtype=str), np.asarray(lines["wavelength"], np.float64), strength
