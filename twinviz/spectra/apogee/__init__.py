"""Import of real APOGEE survey files (aspcapStar, apStar, apVisit; DR12–DR16 and DR17) into the
twinviz dataset format.

* :mod:`.fits` reads one FITS file into an :class:`~.fits.ApogeeSpectrum` (needs astropy,
  the optional extra ``twinviz[fits]``); :mod:`.visit` moves an apVisit file to the rest frame
  and onto the apStar grid; :mod:`.bits` names the APOGEE bitmasks;
* :mod:`.continuum` pseudo-continuum-normalises apStar/apVisit flux (ASPCAP files are normalised);
* :mod:`.labels` applies the labels policy to a file's own table, :mod:`.catalogue` reads the
  DR17 allStar catalogue (FITS or CSV), :mod:`.members` cluster-membership tables;
* :mod:`.prepare` reads and normalises files (optionally in worker processes), :mod:`.store`
  writes the zarr store (resumable) or netCDF file, :mod:`.importer` streams many files into one
  ``.nc`` / ``.zarr`` dataset and writes the import report;
* :mod:`.standins` writes DR17-shaped synthetic stand-in files for tests and benchmarks.

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
