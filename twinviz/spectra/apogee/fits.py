"""Read one APOGEE ``aspcapStar`` or ``apStar`` FITS file into an :class:`ApogeeSpectrum`.

Needs astropy (``pip install "twinviz[fits]"``). Both products store spectra on the
8575-pixel apStar grid, log10(λ/Å) = CRVAL1 + CDELT1·i with CRVAL1 = 4.179, CDELT1 = 6·10⁻⁶;
the reader checks those header keywords and refuses files on any other grid (twinviz never
interpolates spectra).

``aspcapStar-<apred>-<aspcap>-<APOGEE_ID>.fits`` (ASPCAP, pseudo-continuum normalised):
  HDU 1 flux (dimensionless), HDU 2 its 1-σ uncertainty, HDU 3 the ASPCAP best-fit model,
  HDU 4 a one-row table with APOGEE_ID, SNR, PARAM, FPARAM, PARAMFLAG, ASPCAPFLAG, X_H, X_M …
  PARAM/FPARAM hold 9 values: Teff (K), logg (dex), log10 vmicro, [M/H], [C/M], [N/M],
  [α/M], log10 vsini, [O/M]; −9999 marks "no value".
``apStar-<apred>-<APOGEE_ID>.fits`` (not normalised, 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹):
  HDU 1 flux, HDU 2 error, HDU 3 PIXMASK (int16 bitmask); with more than one visit the rows are
  two combined spectra then the visits, and the first row (pixel-weighted combination) is read.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinviz.spectra.grid import APSTAR_NPIX, DLOG10_LAMBDA, LOG10_LAMBDA0
from twinviz.spectra.apogee import FITS_INSTALL_HINT, ApogeeFileError

__all__ = ["ApogeeSpectrum", "ELEMENTS_26", "FE_INDEX", "PARAM_INDEX", "read_apogee_file", "require_astropy"]

# Order of PARAM / FPARAM entries in ASPCAP tables (DR12–DR14 layout, 9 entries).
PARAM_INDEX = {"teff": 0, "logg": 1, "log10_vmicro": 2, "m_h": 3, "c_m": 4, "n_m": 5,
               "alpha_m": 6, "log10_vsini": 7, "o_m": 8}
# The 26-entry X_H/X_M arrays of r6/l30e.2-era ASPCAP. The first 22 entries are named the same in
# every ASPCAP element list of that era; the last four (heavy elements: Ce/Rb/Y/Nd or Rb/Ce/Nd/Yb)
# changed order between ASPCAP versions, so twinviz does not carry them (None = skipped).
ELEMENTS_26 = ("C", "CI", "N", "O", "Na", "Mg", "Al", "Si", "P", "S", "K", "Ca", "Ti", "TiII", "V",
               "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Ge", None, None, None, None)
FE_INDEX = ELEMENTS_26.index("Fe")
MISSING = -9999.0  # ASPCAP's "no value"
_GRID_TOL = {"CRVAL1": 1e-9, "CDELT1": 1e-12}


@dataclass
class ApogeeSpectrum:
    """One star read from one file; arrays cover the full apStar grid (8575 pixels).

    Attributes
    ----------
    path : the file read
    kind : ``"aspcapStar"`` or ``"apStar"``
    apogee_id : 2MASS-style id (``2M05392474+4038437``)
    release : reduction versions from the file name, e.g. ``r6/l30e.2``
    flux, flux_err : float32 (8575,). aspcapStar: continuum-normalised (dimensionless);
        apStar: 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹. Zero flux marks chip gaps and dropped pixels.
    pixmask : int32 (8575,) APOGEE_PIXMASK bits (apStar), else None
    snr : signal-to-noise per pixel from the file (NaN when absent)
    param, fparam : (9,) float64 calibrated / raw ASPCAP parameters (aspcapStar), else None
    paramflag : (9,) int64 APOGEE_PARAMFLAG per parameter, else None
    aspcapflag : APOGEE_ASPCAPFLAG of the star, else None
    x_h : (26,) float64 [X/H] in dex, −9999 = missing (aspcapStar), else None
    """

    path: str
    kind: str
    apogee_id: str
    release: str
    flux: np.ndarray
    flux_err: np.ndarray
    pixmask: np.ndarray | None = None
    snr: float = float("nan")
    param: np.ndarray | None = None
    fparam: np.ndarray | None = None
    paramflag: np.ndarray | None = None
    aspcapflag: int | None = None
    x_h: np.ndarray | None = None


def require_astropy():
    """Import ``astropy.io.fits`` or raise an ImportError that says how to install it."""
    try:
        from astropy.io import fits
    except ImportError as exc:  # pragma: no cover - exercised through a subprocess test
        raise ImportError(f"reading APOGEE FITS files needs astropy: {FITS_INSTALL_HINT}") from exc
    return fits


def _release_from_name(name: str, prefix: str, apogee_id: str) -> str:
    """``aspcapStar-r6-l30e.2-2M…fits`` → ``r6/l30e.2``; ``apStar-dr17-2M…`` → ``dr17``."""
    stem = name[:-5] if name.lower().endswith(".fits") else name
    if stem.startswith(prefix + "-"):
        stem = stem[len(prefix) + 1:]
    if apogee_id and stem.endswith("-" + apogee_id):
        stem = stem[: -len(apogee_id) - 1]
    return stem.replace("-", "/") if stem and stem != apogee_id else "unknown"


def _check_grid(path, header, hdu: int) -> None:
    """Refuse spectra whose header does not describe the apStar grid."""
    got = {key: header.get(key) for key in ("CRVAL1", "CDELT1", "NAXIS1")}
    ok = (got["NAXIS1"] == APSTAR_NPIX and got["CRVAL1"] is not None and got["CDELT1"] is not None
          and abs(float(got["CRVAL1"]) - LOG10_LAMBDA0) <= _GRID_TOL["CRVAL1"]
          and abs(float(got["CDELT1"]) - DLOG10_LAMBDA) <= _GRID_TOL["CDELT1"])
    if not ok:
        raise ApogeeFileError(
            path, f"HDU{hdu} CRVAL1/CDELT1/NAXIS1",
            f"spectrum is on another wavelength grid (CRVAL1={got['CRVAL1']}, CDELT1={got['CDELT1']}, "
            f"NAXIS1={got['NAXIS1']}; the apStar grid is {LOG10_LAMBDA0}, {DLOG10_LAMBDA:g}, {APSTAR_NPIX})",
            "import aspcapStar/apStar files on the 8575-pixel apStar grid (twinviz does not interpolate); "
            "remove this file from the input")


def _kind_of(path: Path, hdul) -> str:
    name = path.name
    n = len(hdul)
    table_cols = ()
    if n > 4 and hdul[4].header.get("XTENSION", "").strip() == "BINTABLE":
        table_cols = tuple(c.upper() for c in hdul[4].columns.names)
    if "APOGEE_ID" in table_cols and "PARAM" in table_cols and not name.startswith("apStar"):
        return "aspcapStar"
    if n > 3 and (name.startswith("apStar") or "OBJID" in hdul[0].header) and hdul[3].header.get("BITPIX") == 16:
        return "apStar"
    raise ApogeeFileError(
        path, "file", f"is not an APOGEE aspcapStar or apStar product ({n} HDUs; expected flux, error and "
        "a per-star table with APOGEE_ID and PARAM, or flux, error and an int16 PIXMASK)",
        "pass aspcapStar-*.fits or apStar-*.fits files from the SDSS archive, or remove this file")


def _image(path, hdul, hdu: int, name: str) -> np.ndarray:
    data = hdul[hdu].data
    if data is None:
        raise ApogeeFileError(path, f"HDU{hdu} ({name})", "has no data",
                              "re-download the file: it is damaged or not an APOGEE product")
    return np.asarray(data)


def _read_aspcapstar(path: Path, hdul) -> ApogeeSpectrum:
    for hdu in (1, 2):
        _check_grid(path, hdul[hdu].header, hdu)
    flux = _image(path, hdul, 1, "flux")
    err = _image(path, hdul, 2, "uncertainty")
    table = hdul[4].data
    if table is None or len(table) < 1:
        raise ApogeeFileError(path, "HDU4 table", "has no rows", "re-download the file")
    cols = {c.upper(): c for c in table.columns.names}

    def col(name, required=True):
        if name not in cols:
            if required:
                raise ApogeeFileError(path, f"HDU4 {name}", "column is missing",
                                      "use an ASPCAP aspcapStar file with the standard per-star table")
            return None
        return table.field(cols[name])[0]

    apogee_id = str(col("APOGEE_ID")).strip()
    if not apogee_id:
        raise ApogeeFileError(path, "HDU4 APOGEE_ID", "is empty", "use an aspcapStar file with an APOGEE_ID")
    snr = col("SNR", required=False)
    aspcapflag = col("ASPCAPFLAG", required=False)
    x_h = col("X_H", required=False)
    paramflag = col("PARAMFLAG", required=False)
    return ApogeeSpectrum(
        path=str(path), kind="aspcapStar", apogee_id=apogee_id,
        release=_release_from_name(path.name, "aspcapStar", apogee_id),
        flux=np.asarray(flux, dtype=np.float32).ravel(), flux_err=np.asarray(err, dtype=np.float32).ravel(),
        snr=float(snr) if snr is not None else float("nan"),
        param=np.asarray(col("PARAM"), dtype=np.float64).ravel(),
        fparam=np.asarray(col("FPARAM"), dtype=np.float64).ravel(),
        paramflag=None if paramflag is None else np.asarray(paramflag, dtype=np.int64).ravel(),
        aspcapflag=None if aspcapflag is None else int(aspcapflag),
        x_h=None if x_h is None else np.asarray(x_h, dtype=np.float64).ravel(),
    )


def _first_row(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 1 else arr[0]


def _read_apstar(path: Path, hdul) -> ApogeeSpectrum:
    for hdu in (1, 2, 3):
        _check_grid(path, hdul[hdu].header, hdu)
    head = hdul[0].header
    apogee_id = str(head.get("OBJID", "")).strip()
    if not apogee_id:
        raise ApogeeFileError(path, "HDU0 OBJID", "header keyword is missing or empty",
                              "use an apStar file (its primary header names the star in OBJID)")
    snr = head.get("SNR")
    return ApogeeSpectrum(
        path=str(path), kind="apStar", apogee_id=apogee_id,
        release=_release_from_name(path.name, "apStar", apogee_id),
        flux=np.asarray(_first_row(_image(path, hdul, 1, "flux")), dtype=np.float32),
        flux_err=np.asarray(_first_row(_image(path, hdul, 2, "error")), dtype=np.float32),
        pixmask=np.asarray(_first_row(_image(path, hdul, 3, "PIXMASK")), dtype=np.int32),
        snr=float(snr) if isinstance(snr, (int, float)) else float("nan"),
    )


_TRUNCATED = re.compile(r"truncated|smaller than the expected size", re.I)


def read_apogee_file(path, *, engine: str = "auto") -> ApogeeSpectrum:
    """Read one aspcapStar or apStar file; raise :class:`ApogeeFileError` naming the file,
    the field and the fix for anything unusable (not FITS, truncated, another product, another
    grid, missing columns).

    ``engine="auto"`` reads the plain, uncompressed FITS layout of APOGEE files directly with
    numpy (:mod:`._rawfits`, about 10× faster than building astropy's table objects) and hands
    anything it does not handle to astropy; ``"astropy"`` always uses astropy.
    """
    fits = require_astropy()
    from astropy.utils.exceptions import AstropyUserWarning

    from twinviz.spectra.apogee._rawfits import RawFits, Unsupported

    path = Path(path)
    try:
        if engine == "auto":
            try:
                spec = _read(path, RawFits(path))
            except Unsupported:
                engine = "astropy"
        if engine == "astropy":
            with warnings.catch_warnings():
                # astropy warns (and pads with zeros) on a truncated file: treat that as an error
                warnings.simplefilter("error", AstropyUserWarning)
                with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                    spec = _read(path, hdul)
    except ApogeeFileError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, AstropyUserWarning) as exc:
        text = f"{type(exc).__name__}: {exc}"
        if _TRUNCATED.search(str(exc)):
            raise ApogeeFileError(path, "file", f"is truncated ({text})",
                                  "re-download the file; the copy on disk is incomplete") from exc
        raise ApogeeFileError(path, "file", f"cannot be read as FITS ({text})",
                              "pass APOGEE aspcapStar/apStar FITS files; re-download this one if it "
                              "should be one") from exc
    for name in ("flux", "flux_err") + (("pixmask",) if spec.pixmask is not None else ()):
        n = getattr(spec, name).size
        if n != APSTAR_NPIX:
            raise ApogeeFileError(path, name, f"has {n} pixels, expected {APSTAR_NPIX}",
                                  "use files on the 8575-pixel apStar grid")
    return spec


def _read(path: Path, hdul) -> ApogeeSpectrum:
    kind = _kind_of(path, hdul)
    return _read_aspcapstar(path, hdul) if kind == "aspcapStar" else _read_apstar(path, hdul)
