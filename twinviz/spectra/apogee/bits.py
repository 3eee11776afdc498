"""The APOGEE bitmasks twinviz reads, bit by bit, as the SDSS DR17 data model names them.

* ``APOGEE_PIXMASK`` (per pixel; apStar HDU 3 and apVisit HDU 3): bits 0–14 are the same in
  every release; DR17 adds FERRE_MASK (bit 16, set by ASPCAP) and stores the mask as int64 in
  apStar files (int16 in DR12–DR16 apStar files and in apVisit files).
* ``APOGEE_ASPCAPFLAG`` (per star; 64-bit in the DR17 allStar, 32-bit before): WARN bits 0–14,
  BAD bits 16–30, and the DR17 bits 31–41 (NO_ASPCAP_RESULT … MULTIPLE_SUSPECT).
* ``APOGEE_STARFLAG`` (per star, from the reduction: bad pixels, bright neighbours, RVs).
* ``APOGEE2_EXTRATARG`` (per allStar row: DUPLICATE marks the non-primary rows of a star
  observed in more than one field).
* ``APOGEE_PARAMFLAG`` / ``ELEMFLAG`` (per parameter or element: PARAMFLAG, X_FE_FLAG).

:func:`mask_value` turns a list of bit names into the integer to AND with, refusing unknown
names with the list of known ones.
"""
from __future__ import annotations

__all__ = ["ASPCAPFLAG", "DEFAULT_ASPCAPFLAG_BAD", "DEFAULT_PIXMASK_BITS", "DEFAULT_STARFLAG_BAD",
           "ELEMFLAG_BAD", "EXTRATARG", "PARAMFLAG", "PIXMASK", "STARFLAG", "bit_names", "mask_value"]

PIXMASK = {"BADPIX": 0, "CRPIX": 1, "SATPIX": 2, "UNFIXABLE": 3, "BADDARK": 4, "BADFLAT": 5, "BADERR": 6,
           "NOSKY": 7, "LITTROW_GHOST": 8, "PERSIST_HIGH": 9, "PERSIST_MED": 10, "PERSIST_LOW": 11,
           "SIG_SKYLINE": 12, "SIG_TELLURIC": 13, "NOT_ENOUGH_PSF": 14, "FERRE_MASK": 16}
DEFAULT_PIXMASK_BITS = ("BADPIX", "CRPIX", "SATPIX", "UNFIXABLE", "BADDARK", "BADFLAT", "BADERR", "NOSKY",
                        "PERSIST_HIGH", "SIG_SKYLINE")

_ASPCAP_PARAMS = ("TEFF", "LOGG", "VMICRO", "M_H", "ALPHA_M", "C_M", "N_M")
ASPCAPFLAG = {
    **{f"{p}_WARN": i for i, p in enumerate(_ASPCAP_PARAMS)},
    "STAR_WARN": 7, "CHI2_WARN": 8, "COLORTE_WARN": 9, "ROTATION_WARN": 10, "SN_WARN": 11,
    "SPEC_HOLE_WARN": 12, "ATMOS_HOLE_WARN": 13, "VSINI_WARN": 14,
    **{f"{p}_BAD": 16 + i for i, p in enumerate(_ASPCAP_PARAMS)},
    "STAR_BAD": 23, "CHI2_BAD": 24, "COLORTE_BAD": 25, "ROTATION_BAD": 26, "SN_BAD": 27,
    "SPEC_HOLE_BAD": 28, "ATMOS_HOLE_BAD": 29, "VSINI_BAD": 30, "NO_ASPCAP_RESULT": 31,
    "MISSING_APSTAR": 32, "NO_GRID": 33, "BAD_FRAC_LOWSNR": 34, "BAD_FRAC_BADPIX": 35, "FERRE_FAIL": 36,
    "PROBLEM_TARGET": 40, "MULTIPLE_SUSPECT": 41,
}
# a star is dropped when any of these is set (STAR_BAD alone was the DR12-era rule)
DEFAULT_ASPCAPFLAG_BAD = ("STAR_BAD", "TEFF_BAD", "LOGG_BAD", "NO_ASPCAP_RESULT", "FERRE_FAIL")

STARFLAG = {"BAD_PIXELS": 0, "COMMISSIONING": 1, "BRIGHT_NEIGHBOR": 2, "VERY_BRIGHT_NEIGHBOR": 3, "LOW_SNR": 4,
            "PERSIST_HIGH": 9, "PERSIST_MED": 10, "PERSIST_LOW": 11, "PERSIST_JUMP_POS": 12,
            "PERSIST_JUMP_NEG": 13, "SUSPECT_RV_COMBINATION": 16, "SUSPECT_BROAD_LINES": 17,
            "BAD_RV_COMBINATION": 18, "RV_REJECT": 19, "RV_SUSPECT": 20, "MULTIPLE_SUSPECT": 21, "RV_FAIL": 22,
            "SUSPECT_ROTATION": 23, "MTPFLUX_LT_75": 24, "MTPFLUX_LT_50": 25}
DEFAULT_STARFLAG_BAD = ("BAD_PIXELS", "VERY_BRIGHT_NEIGHBOR", "BAD_RV_COMBINATION", "RV_FAIL")

EXTRATARG = {"NOT_MAIN": 0, "COMMISSIONING": 1, "TELLURIC": 2, "APO1M": 3, "DUPLICATE": 4}

PARAMFLAG = {"GRIDEDGE_BAD": 0, "CALRANGE_BAD": 1, "OTHER_BAD": 2, "FERRE_FAIL": 3, "PARAM_MISMATCH_BAD": 4,
             "FERRE_ERR_USED": 5, "TEFF_CUT": 6, "GRIDEDGE_WARN": 8, "CALRANGE_WARN": 9, "OTHER_WARN": 10,
             "FERRE_WARN": 11, "PARAM_MISMATCH_WARN": 12, "OPTICAL_WARN": 13, "ERR_WARN": 14, "FAINT_WARN": 15,
             "PARAM_FIXED": 16, "RV_WARN": 17, "SPEC_RC": 24, "SPEC_RGB": 25, "LOGG_CAL_MS": 26,
             "LOGG_CAL_RGB_MS": 27}
# an abundance ([X/Fe], [Fe/H]) is set to NaN when its ELEMFLAG has one of these
ELEMFLAG_BAD = ("GRIDEDGE_BAD", "OTHER_BAD", "FERRE_FAIL", "TEFF_CUT")


def mask_value(names, table: dict, option: str) -> int:
    """The integer with the bits ``names`` set; unknown names raise a DatasetError naming
    ``option`` and listing the known names."""
    unknown = [n for n in names if n not in table]
    if unknown:
        from twinviz.spectra.dataset import DatasetError  # xarray: not needed by `twinviz --help`

        raise DatasetError(f"{option}: {','.join(unknown)}: unknown bit name. Fix: use names from: "
                           f"{', '.join(table)}")
    value = 0
    for name in names:
        value |= 1 << table[name]
    return value


def bit_names(value: int, table: dict, only: int = -1) -> list[str]:
    """Names of the bits of ``table`` set in ``value`` (restricted to those in ``only``)."""
    value = int(value) & only
    return [name for name, bit in table.items() if value >> bit & 1]
