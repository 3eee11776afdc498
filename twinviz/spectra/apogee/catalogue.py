"""Label catalogues for ``--catalogue``: the DR17 allStar file (FITS, HDU 1) or a CSV with the
same column names.

Columns read (DR17 allStar names; only APOGEE_ID, TEFF and LOGG are required):

* ``TEFF`` (K), ``LOGG`` (dex) and their 1-σ errors ``TEFF_ERR``, ``LOGG_ERR`` (carried into the
  dataset as ``teff_err``/``logg_err``);
* ``FE_H`` with ``FE_H_FLAG``, and every ``<X>_FE`` column (``MG_FE`` …) with its ``<X>_FE_FLAG``:
  a value whose ELEMFLAG has a bad bit (:data:`.bits.ELEMFLAG_BAD`) becomes NaN;
* quality cuts: a row is a skipped star when ``ASPCAPFLAG`` has a bit of ``aspcapflag_bad``
  (default :data:`.bits.DEFAULT_ASPCAPFLAG_BAD`) or ``STARFLAG`` one of ``starflag_bad``
  (default :data:`.bits.DEFAULT_STARFLAG_BAD`), with the bit names in its reason;
* duplicates: rows with the ``EXTRATARG`` bit DUPLICATE (a star observed in more than one field;
  the primary, highest-S/N row has it unset) are dropped; any id still repeated keeps its first
  row and is listed in the report.

−9999 and NaN mean "no value", as in the survey's files.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinviz.spectra.apogee import ApogeeFileError
from twinviz.spectra.apogee.bits import (ASPCAPFLAG, DEFAULT_ASPCAPFLAG_BAD, DEFAULT_STARFLAG_BAD, ELEMFLAG_BAD,
                                         EXTRATARG, PARAMFLAG, STARFLAG, bit_names, mask_value)
from twinviz.spectra.apogee.fits import require_astropy
from twinviz.spectra.apogee.labels import Labels, missing, range_problem

__all__ = ["Catalogue", "read_catalogue", "read_csv_records"]

_X_FE_COLUMN = re.compile(r"^([A-Z]+)_FE$")
_SPECIES = {"CI": "CI", "TIII": "TiII"}
_SCALARS = ("APOGEE_ID", "TEFF", "LOGG", "TEFF_ERR", "LOGG_ERR", "FE_H", "FE_H_FLAG", "ASPCAPFLAG", "STARFLAG",
            "EXTRATARG")
_INT_COLUMNS = ("FE_H_FLAG", "ASPCAPFLAG", "STARFLAG", "EXTRATARG")


@dataclass
class Catalogue:
    """Labels by APOGEE_ID from an allStar file or a CSV.

    ``rows`` maps APOGEE_ID → :class:`~.labels.Labels` or a skip reason (str); ``elements`` are
    the [X/Fe] columns found; ``duplicates`` the ids still listed more than once after the
    EXTRATARG cut (the first row is used); ``stats`` counts what the cuts did.
    """

    path: str
    rows: dict
    elements: tuple
    has_fe_h: bool
    duplicates: list
    stats: dict = field(default_factory=dict)


def _element_name(column: str) -> str:
    sym = column.upper()
    return _SPECIES.get(sym, sym[:1] + sym[1:].lower())


def _columns(path, names) -> tuple[dict, list]:
    upper = {n.upper(): n for n in names}
    for need in ("APOGEE_ID", "TEFF", "LOGG"):
        if need not in upper:
            raise ApogeeFileError(path, need, f"column is missing (columns: {', '.join(list(names)[:12])}…)",
                                  "give a catalogue with APOGEE_ID, TEFF and LOGG columns (and optional "
                                  "TEFF_ERR, LOGG_ERR, FE_H, <X>_FE, <X>_FE_FLAG, ASPCAPFLAG, STARFLAG, EXTRATARG)")
    x_cols = [u for u in upper if _X_FE_COLUMN.match(u) and u != "FE_H"]
    return upper, x_cols


def read_csv_records(path, what: str, fix: str) -> list[dict]:
    """The rows of a CSV file with a header row; a clear error when it cannot be read."""
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ApogeeFileError(path, what, f"cannot be read as CSV ({exc})", fix) from exc


def _to_number(path, column, text, integer: bool):
    text = (text or "").strip()
    if text == "":
        return 0 if integer else float("nan")
    try:
        return int(text) if integer else float(text)
    except ValueError:
        raise ApogeeFileError(path, column, f"has a non-numeric value {text!r}",
                              "write numbers (or leave the cell empty for 'unknown')") from None


def _read_columns(path: Path) -> tuple[dict, list]:
    if path.suffix.lower() in (".fits", ".fit", ".fts"):
        fits = require_astropy()
        try:
            with fits.open(path, memmap=True) as hdul:
                table = hdul[1].data
                upper, x_cols = _columns(path, table.columns.names)
                wanted = [c for c in _SCALARS if c in upper] + x_cols + [f"{c}_FLAG" for c in x_cols
                                                                          if f"{c}_FLAG" in upper]
                cols = {c: np.asarray(table.field(upper[c])) for c in wanted}
        except ApogeeFileError:
            raise
        except Exception as exc:
            raise ApogeeFileError(path, "catalogue", f"cannot be read as a FITS table ({type(exc).__name__}: "
                                  f"{exc})", "give an allStar FITS file or a CSV") from exc
        return cols, x_cols
    records = read_csv_records(path, "catalogue", "give a comma-separated file with a header row")
    upper, x_cols = _columns(path, list(records[0].keys()) if records else [])
    wanted = [c for c in _SCALARS if c in upper] + x_cols + [f"{c}_FLAG" for c in x_cols if f"{c}_FLAG" in upper]
    cols = {}
    for key in wanted:
        raw = [r[upper[key]] for r in records]
        if key == "APOGEE_ID":
            cols[key] = np.asarray([s.strip() for s in raw], dtype=str)
        else:
            integer = key in _INT_COLUMNS or key.endswith("_FLAG")
            cols[key] = np.asarray([_to_number(path, key, s, integer) for s in raw],
                                   dtype=np.int64 if integer else np.float64)
    return cols, x_cols


def read_catalogue(path, aspcapflag_bad=DEFAULT_ASPCAPFLAG_BAD, starflag_bad=DEFAULT_STARFLAG_BAD) -> Catalogue:
    """Read a label catalogue (DR17 allStar FITS or CSV) and apply its quality cuts."""
    path = Path(path)
    aspcap_mask = mask_value(aspcapflag_bad, ASPCAPFLAG, "--aspcapflag-bad")
    star_mask = mask_value(starflag_bad, STARFLAG, "--starflag-bad")
    if not path.exists():
        raise ApogeeFileError(path, "catalogue", "does not exist", "check the --catalogue path")
    cols, x_cols = _read_columns(path)
    elem_bad = mask_value(ELEMFLAG_BAD, PARAMFLAG, "ELEMFLAG")
    ids = [str(s).strip() for s in cols["APOGEE_ID"]]
    elements = tuple(_element_name(c[:-3]) for c in x_cols)
    stats = {"rows": len(ids), "extratarg_duplicate_rows": 0, "flagged": {}, "abundances_flagged": {}}
    keep = np.ones(len(ids), bool)
    if "EXTRATARG" in cols:
        dup_rows = (np.asarray(cols["EXTRATARG"]).astype(np.int64) >> EXTRATARG["DUPLICATE"] & 1) == 1
        keep &= ~dup_rows
        stats["extratarg_duplicate_rows"] = int(dup_rows.sum())
    rows, dups = {}, []

    def value(col, i):
        v = float(cols[col][i]) if col in cols else float("nan")
        return float("nan") if missing(v) else v

    def flagged(col, i, mask, table):
        return bit_names(int(cols[col][i]), table, mask) if col in cols else []

    for i in np.flatnonzero(keep):
        sid = ids[i]
        if sid in rows:
            dups.append(sid)
            continue
        teff, logg = float(cols["TEFF"][i]), float(cols["LOGG"][i])
        problem = range_problem(teff, logg)
        bad = [f"ASPCAPFLAG:{b}" for b in flagged("ASPCAPFLAG", i, aspcap_mask, ASPCAPFLAG)]
        bad += [f"STARFLAG:{b}" for b in flagged("STARFLAG", i, star_mask, STARFLAG)]
        if problem is None and bad:
            problem = f"flagged labels ({', '.join(bad)})"
            for b in bad:
                stats["flagged"][b] = stats["flagged"].get(b, 0) + 1
        if problem:
            rows[sid] = f"catalogue {path.name}: {problem}. Fix: drop the star or correct the catalogue"
            continue
        fe_h = value("FE_H", i)
        if flagged("FE_H_FLAG", i, elem_bad, PARAMFLAG):
            fe_h = float("nan")
            stats["abundances_flagged"]["Fe"] = stats["abundances_flagged"].get("Fe", 0) + 1
        x_fe = {}
        for el, c in zip(elements, x_cols):
            x_fe[el] = value(c, i)
            if flagged(f"{c}_FLAG", i, elem_bad, PARAMFLAG):
                x_fe[el] = float("nan")
                stats["abundances_flagged"][el] = stats["abundances_flagged"].get(el, 0) + 1
        rows[sid] = Labels(teff, logg, fe_h, x_fe, value("TEFF_ERR", i), value("LOGG_ERR", i))
    return Catalogue(str(path), rows, elements, "FE_H" in cols, sorted(set(dups)), stats)
