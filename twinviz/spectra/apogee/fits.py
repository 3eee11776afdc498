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

DR17 (``aspcapStar-dr17-<ID>.fits``, ``apStar-dr17-<ID>.fits``, ``asStar-…`` for the southern
telescope): apStar has 11 HDUs — 1 flux, 2 error, 3 PIXMASK as **int64** (DR17 APOGEE_PIXMASK,
:mod:`.bits`), 4–5 sky, 6–7 telluric, 8 LSF (may be empty), 9–10 RV tables; the first row of
HDUs 1–3 is the combined spectrum. aspcapStar DR17 stores flux and error on the 7514 pixels of
the ``apogee-aspcap-dr17`` grid (NAXIS1 = 7514), which are placed back on the apStar grid here.
``apVisit`` files (one visit, observed frame) are read by :mod:`.visit`.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinviz.spectra.grid import APSTAR_NPIX, DLOG10_LAMBDA, LOG10_LAMBDA0, get_grid
from twinviz.spectra.apogee import FITS_INSTALL_HINT, ApogeeFileError

__all__ = ["ApogeeSpectrum", "ELEMENTS_26", "FE_INDEX", "KNOWN_PRODUCTS", "PARAM_INDEX", "read_apogee_file",
           "require_astropy"]

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
DR17_ASPCAP_NPIX = 7514
KNOWN_PRODUCTS = ("aspcapStar (DR12–DR16: 8575 px; DR17: 7514 px)", "apStar/asStar (DR12–DR16: int16 PIXMASK; "
                  "DR17: 11 HDUs, int64 PIXMASK)", "apVisit/asVisit (3 chips × 4096 px, wavelength per pixel)")
# reduction tokens in file names that name a release: drNN, or rNN (DR12–DR16 reductions)
_RELEASE_TOKEN = re.compile(r"^(dr\d+|r\d+)$", re.I)


@dataclass
class ApogeeSpectrum:
    """One star read from one file; arrays cover the full apStar grid (8575 pixels).

    Attributes
    ----------
    path : the file read
    kind : ``"aspcapStar"``, ``"apStar"`` or ``"apVisit"``
    apogee_id : 2MASS-style id (``2M05392474+4038437``)
    release : reduction versions from the file name, e.g. ``r6/l30e.2``, ``dr17``
    source : machine-readable survey release, ``apogee-dr17`` or ``apogee-<reduction>`` (e.g.
        ``apogee-r6``); the dataset records it in its ``source`` attribute
    flux, flux_err : float32 (8575,). aspcapStar: continuum-normalised (dimensionless);
        apStar: 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹. Zero flux marks chip gaps and dropped pixels.
    pixmask : int64 (8575,) APOGEE_PIXMASK bits (apStar, apVisit), else None
    snr : signal-to-noise per pixel from the file (NaN when absent)
    param, fparam : (9,) float64 calibrated / raw ASPCAP parameters (aspcapStar), else None
    paramflag : (9,) int64 APOGEE_PARAMFLAG per parameter, else None
    aspcapflag : APOGEE_ASPCAPFLAG of the star, else None
    x_h : (26,) float64 [X/H] in dex, −9999 = missing (aspcapStar), else None
    note : how the spectrum was made, when not read as stored (apVisit: the rest-frame resampling)
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
    source: str = "apogee"
    note: str = ""


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


def release_source(path, kind: str, release: str, dr17_layout: bool) -> str:
    """The survey release of one file (``apogee-dr17``, ``apogee-r6`` …), from the reduction
    token of its name and its layout; refuses releases the importer does not know and files
    whose name and layout disagree."""
    token = release.split("/")[0].lower()
    if not _RELEASE_TOKEN.match(token):
        return "apogee-dr17" if dr17_layout else "apogee"
    layout = "the DR17 layout" if dr17_layout else "the DR12–DR16 layout"
    if token.startswith("dr") and token != "dr17":
        raise ApogeeFileError(path, "release", f"{token} ({kind}, {layout}) is not a release this importer knows",
                              "import DR17 files (dr17 in the name) or DR12–DR16 files (reduction r5–r12); "
                              "newer releases need an importer update")
    if token == "dr17" and not dr17_layout and kind == "apStar":
        raise ApogeeFileError(path, "release", f"the name says dr17 but the file has {layout} (an int16 "
                              "PIXMASK; DR17 apStar files have an int64 PIXMASK)",
                              "re-download the file from the DR17 archive, or rename it to its real release")
    return "apogee-dr17" if dr17_layout or token == "dr17" else f"apogee-{token}"


def _check_grid(path, header, hdu: int, primary=None) -> None:
    """Refuse spectra whose header does not describe the apStar grid. CRVAL1/CDELT1 missing from
    the HDU are taken from the primary header (DR17 apStar files state them in both); a file
    stating neither is judged on NAXIS1 alone."""
    got = {key: header.get(key) for key in ("CRVAL1", "CDELT1", "NAXIS1")}
    for key in ("CRVAL1", "CDELT1"):
        if got[key] is None and primary is not None:
            got[key] = primary.get(key)
    ok = (got["NAXIS1"] == APSTAR_NPIX
          and (got["CRVAL1"] is None or abs(float(got["CRVAL1"]) - LOG10_LAMBDA0) <= _GRID_TOL["CRVAL1"])
          and (got["CDELT1"] is None or abs(float(got["CDELT1"]) - DLOG10_LAMBDA) <= _GRID_TOL["CDELT1"]))
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
    prefix = name.split("-")[0]
    if "APOGEE_ID" in table_cols and ("PARAM" in table_cols or prefix == "aspcapStar") \
            and prefix not in ("apStar", "asStar"):
        return "aspcapStar"
    if prefix in ("apVisit", "asVisit") or (n > 4 and "WAVELENGTH" in str(hdul[4].header.get("BUNIT", "")).upper()):
        return "apVisit"
    mask_bitpix = hdul[3].header.get("BITPIX") if n > 3 else None
    if n > 3 and (prefix in ("apStar", "asStar") or "OBJID" in hdul[0].header) and mask_bitpix in (16, 64):
        return "apStar"
    found = f"{n} HDUs" + (f", HDU3 BITPIX {mask_bitpix}" if mask_bitpix is not None else "")
    found += f", HDU4 columns {', '.join(table_cols[:6])}…" if table_cols else ""
    raise ApogeeFileError(
        path, "file", f"is not an APOGEE product this importer knows (found {found}; name prefix "
        f"'{prefix}'; expected one of: {'; '.join(KNOWN_PRODUCTS)})",
        "pass aspcapStar-*.fits, apStar-*.fits (asStar-*) or apVisit-*.fits files from the SDSS archive, "
        "or remove this file")


def _image(path, hdul, hdu: int, name: str) -> np.ndarray:
    data = hdul[hdu].data
    if data is None:
        raise ApogeeFileError(path, f"HDU{hdu} ({name})", "has no data",
                              "re-download the file: it is damaged or not an APOGEE product")
    return np.asarray(data)


def _aspcap_pixels(path: Path, hdul) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flux and error of an aspcapStar file on the full apStar grid; True for the DR17 layout
    (7514 pixels of the apogee-aspcap-dr17 grid, zero elsewhere: masked as chip gaps)."""
    if all(hdul[h].header.get("NAXIS1") == DR17_ASPCAP_NPIX for h in (1, 2)):
        pix = get_grid("apogee-aspcap-dr17").pixels
        flux, err = np.zeros(APSTAR_NPIX, np.float32), np.zeros(APSTAR_NPIX, np.float32)
        for hdu, out, name in ((1, flux, "flux"), (2, err, "uncertainty")):
            data = np.asarray(_image(path, hdul, hdu, name), dtype=np.float32).ravel()
            if data.size != DR17_ASPCAP_NPIX:
                raise ApogeeFileError(path, f"HDU{hdu} ({name})", f"has {data.size} values, expected "
                                      f"{DR17_ASPCAP_NPIX}", "re-download the file; it is damaged")
            out[pix] = data
        return flux, err, True
    for hdu in (1, 2):
        _check_grid(path, hdul[hdu].header, hdu, hdul[0].header)
    flux = np.asarray(_image(path, hdul, 1, "flux"), dtype=np.float32).ravel()
    err = np.asarray(_image(path, hdul, 2, "uncertainty"), dtype=np.float32).ravel()
    return flux, err, False


def _read_aspcapstar(path: Path, hdul) -> ApogeeSpectrum:
    flux, err, dr17 = _aspcap_pixels(path, hdul)
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
    release = _release_from_name(path.name, "aspcapStar", apogee_id)
    param, fparam = col("PARAM", required=False), col("FPARAM", required=False)
    if release.split("/")[0].lower() == "dr17" or dr17:
        x_h = None  # DR17 lists its elements in another order: [X/Fe] come from --catalogue
    return ApogeeSpectrum(
        path=str(path), kind="aspcapStar", apogee_id=apogee_id, release=release,
        source=release_source(path, "aspcapStar", release, dr17), flux=flux, flux_err=err,
        snr=float(snr) if snr is not None else float("nan"),
        param=None if param is None else np.asarray(param, dtype=np.float64).ravel(),
        fparam=None if fparam is None else np.asarray(fparam, dtype=np.float64).ravel(),
        paramflag=None if paramflag is None else np.asarray(paramflag, dtype=np.int64).ravel(),
        aspcapflag=None if aspcapflag is None else int(aspcapflag),
        x_h=None if x_h is None else np.asarray(x_h, dtype=np.float64).ravel(),
    )


def _first_row(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 1 else arr[0]


def _read_apstar(path: Path, hdul) -> ApogeeSpectrum:
    for hdu in (1, 2, 3):
        _check_grid(path, hdul[hdu].header, hdu, hdul[0].header)
    head = hdul[0].header
    apogee_id = str(head.get("OBJID", "")).strip()
    if not apogee_id:
        raise ApogeeFileError(path, "HDU0 OBJID", "header keyword is missing or empty",
                              "use an apStar file (its primary header names the star in OBJID)")
    snr = head.get("SNR")
    prefix = path.name.split("-")[0]
    release = _release_from_name(path.name, prefix if prefix in ("apStar", "asStar") else "apStar", apogee_id)
    dr17 = hdul[3].header.get("BITPIX") == 64
    return ApogeeSpectrum(
        path=str(path), kind="apStar", apogee_id=apogee_id, release=release,
        source=release_source(path, "apStar", release, dr17),
        flux=np.asarray(_first_row(_image(path, hdul, 1, "flux")), dtype=np.float32),
        flux_err=np.asarray(_first_row(_image(path, hdul, 2, "error")), dtype=np.float32),
        pixmask=np.asarray(_first_row(_image(path, hdul, 3, "PIXMASK")), dtype=np.int64),
        snr=float(snr) if isinstance(snr, (int, float)) else float("nan"),
    )


def _read_apvisit(path: Path, hdul) -> ApogeeSpectrum:
    """One apVisit file moved to the rest frame and onto the apStar grid (:mod:`.visit`); not
    normalised (the importer fits the continuum as for apStar)."""
    from twinviz.spectra.apogee.visit import resample_visit, visit_vrel

    if len(hdul) < 12:
        raise ApogeeFileError(path, "file", f"has {len(hdul)} HDUs; an apVisit file has 12 (flux, error, mask, "
                              "wavelength, sky, telluric, coefficients and the visit table in HDU 11)",
                              "re-download the file, or import the star's apStar file instead")
    flux, err, mask, wave = (np.atleast_2d(_image(path, hdul, h, name)) for h, name in
                             ((1, "flux"), (2, "error"), (3, "mask"), (4, "wavelength")))
    if len({flux.shape, err.shape, mask.shape, wave.shape}) != 1:
        raise ApogeeFileError(path, "HDU1–4", "have different shapes; expected one (3, 4096) shape for flux, "
                              "error, mask and wavelength", "re-download the file; it is damaged")
    step = np.diff(wave, axis=1)
    if not (np.all(np.isfinite(wave)) and np.all(wave > 0) and np.all((step > 0).all(1) | (step < 0).all(1))):
        raise ApogeeFileError(path, "HDU4 (wavelength)", "has non-finite, non-positive or non-monotonic "
                              "wavelengths along a chip", "re-download the file; it is damaged")
    if hdul[11].header.get("XTENSION", "").strip() != "BINTABLE":
        raise ApogeeFileError(path, "HDU11", "is not the visit table (a binary table with APOGEE_ID and VREL)",
                              "re-download the file, or import the star's apStar file instead")
    table, head = hdul[11].data, hdul[0].header
    cols = {c.upper(): c for c in table.columns.names} if table is not None else {}
    sid = str(table.field(cols["APOGEE_ID"])[0]).strip() if "APOGEE_ID" in cols else str(head.get("OBJID", "")).strip()
    if not sid:
        raise ApogeeFileError(path, "HDU11 APOGEE_ID", "is missing or empty",
                              "use an apVisit file whose table (or OBJID header keyword) names the star")
    vrel = visit_vrel(path, table, head)
    f, e, m = resample_visit(wave, flux, err, mask, vrel)
    snr = table.field(cols["SNR"])[0] if "SNR" in cols else head.get("SNR", float("nan"))
    prefix = path.name.split("-")[0]
    release = _release_from_name(path.name, prefix if prefix in ("apVisit", "asVisit") else "apVisit", "")
    release = release.split("/")[0] if release != "unknown" else release
    return ApogeeSpectrum(
        path=str(path), kind="apVisit", apogee_id=sid, release=release,
        source=release_source(path, "apVisit", release, False),
        flux=f.astype(np.float32), flux_err=e.astype(np.float32), pixmask=m, snr=float(snr),
        note=f"apVisit: rest frame with VREL={vrel:.3f} km/s, overlap-rebinned onto the apStar grid")


_TRUNCATED = re.compile(r"truncated|smaller than the expected size", re.I)


def read_apogee_file(path, *, engine: str = "auto") -> ApogeeSpectrum:
    """Read one aspcapStar, apStar or apVisit file; raise :class:`ApogeeFileError` naming the file,
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
    if kind == "apVisit":
        spec = _read_apvisit(path, hdul)
    else:
        spec = _read_aspcapstar(path, hdul) if kind == "aspcapStar" else _read_apstar(path, hdul)
    if hdul[0].header.get("TWINVIZ"):  # a file twinviz wrote (.standins): say so in its source
        spec.source = f"synthetic-standin:{spec.source}"
    return spec
