"""Spectra: wavelength grids, the dataset format and the built-in synthesizer."""
from .dataset import SCHEMA_VERSION, DatasetError, make_spectra, open_spectra, save_spectra, validate
from .grid import DEFAULT_GRID, WavelengthGrid, apstar_wavelength, get_grid, grid_id, identify_grid
from .synth import ELEMENTS, Synthesizer, draw_labels, simulate

__all__ = [
    "DEFAULT_GRID", "ELEMENTS", "SCHEMA_VERSION", "DatasetError", "Synthesizer", "WavelengthGrid",
    "apstar_wavelength", "draw_labels", "get_grid", "grid_id", "identify_grid", "make_spectra",
    "open_spectra", "save_spectra", "simulate", "validate",
]
