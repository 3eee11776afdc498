"""Spectra: wavelength grids, the dataset format and the built-in synthesizer."""
from twinviz.spectra.dataset import SCHEMA_VERSION, DatasetError, load_spectra, make_spectra, open_spectra, save_spectra, validate
from twinviz.spectra.grid import DEFAULT_GRID, WavelengthGrid, apstar_wavelength, get_grid, grid_id, identify_grid
from twinviz.spectra.synth import ELEMENTS, Synthesizer, draw_labels
from twinviz.spectra.simulation import simulate

__all__ = [
    "DEFAULT_GRID", "ELEMENTS", "SCHEMA_VERSION", "DatasetError", "Synthesizer", "WavelengthGrid",
    "apstar_wavelength", "draw_labels", "get_grid", "grid_id", "identify_grid", "load_spectra", "make_spectra",
    "open_spectra", "save_spectra", "simulate", "validate",
]
