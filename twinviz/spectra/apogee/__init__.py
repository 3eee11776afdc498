"""Import of real APOGEE survey files (aspcapStar, apStar) into the twinviz dataset format.

* :mod:`.fits` reads one FITS file into an :class:`~.fits.ApogeeSpectrum` (needs astropy,
  the optional extra ``twinviz[fits]``);
* :mod:`.continuum` pseudo-continuum-normalises apStar flux (ASPCAP files are normalised already);
* :mod:`.labels` reads label catalogues (allStar FITS or CSV) and group lists, and applies the
  labels policy;
* :mod:`.importer` streams many files into one ``.nc`` / ``.zarr`` dataset and writes the
  import report.

See ``docs/real-data.md``.
"""
from __future__ import annotations

__all__ = ["FITS_INSTALL_HINT", "ApogeeFileError"]

FITS_INSTALL_HINT = 'pip install "twinviz[fits]"'

from twinviz.spectra.dataset import DatasetError  # noqa: E402


class ApogeeFileError(DatasetError):
    """One input file (or catalogue) that cannot be imported. ``str(exc)`` is the one-line
    ``<file>: <field>: <problem>. Fix: <fix>`` message; the attributes keep the parts."""

    def __init__(self, path, field: str, problem: str, fix: str):
        self.path, self.field, self.problem, self.fix = str(path), field, problem, fix
        super().__init__(f"{path}: {field}: {problem}. Fix: {fix}")
