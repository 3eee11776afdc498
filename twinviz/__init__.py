"""twinviz: find chemically identical stars ("twins") from their spectra alone.

An implementation of the adversarial-disentanglement method of de Mijolla, Ness & Viti
(2019), with a built-in spectral synthesizer, training on CPU/GPU, exact L1 twin search,
Table-1 evaluation and an interactive Panel app.
"""
from twinviz.spectra import (
    DatasetError,
    get_grid,
    load_spectra,
    make_spectra,
    open_spectra,
    save_spectra,
    validate,
)

__version__ = "0.1.0"

__all__ = ["DatasetError", "__version__", "get_grid", "load_spectra", "make_spectra", "open_spectra", "save_spectra",
           "validate"]
