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
from twinviz.spectra.apogee.fits import MISSING, require_astropy
from twinviz.spectra.apogee.labels import Labels, missing, range_problem

__all__ = ["Catalogue", "CatalogueRows", "read_catalogue", "read_csv_records"]

MISSING_CUT = MISSING + 1  # values at or below are "no value" (−9999)

_X_FE_COLUMN = re.compile(r"^([A-Z]+)_FE$")
_SPECIES = {"CI": "CI", "TIII": "TiII"}
_SCALARS = ("APOGEE_ID", "TEFF", "LOGG", "TEFF_ERR", "LOGG_ERR", "FE_H", "FE_H_FLAG", "ASPCAPFLAG", "STARFLAG",
            "EXTRATARG")
_INT_COLUMNS = ("FE_H_FLAG", "ASPCAPFLAG", "STARFLAG", "EXTRATARG")


@dataclass
class Catalogue:
    """Labels by APOGEE_ID from an allStar file or a CSV.

    ``rows`` (:class:`CatalogueRows`) maps APOGEE_ID → :class:`~.labels.Labels` or a skip reason
    (str), built when asked for; ``elements`` are
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
                cols = {c: np.array(table.field(upper[c])) for c in wanted}  # copies: the file closes
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


class CatalogueRows:
    """APOGEE_ID → :class:`~.labels.Labels` or the skip reason (str), built for one id when asked
    (an allStar file has ~730 000 rows; only the imported stars' rows become objects)."""

    def __init__(self, path: Path, cols: dict, x_cols: list, elements: tuple, index: dict, masks: dict):
        self.path, self.cols, self.x_cols, self.elements = path, cols, x_cols, elements
        self.index, self.masks = index, masks

    def __len__(self):
        return len(self.index)

    def __contains__(self, sid):
        return sid in self.index

    def get(self, sid, default=None):
        i = self.index.get(sid)
        return default if i is None else self._row(i)

    def _value(self, col, i):
        v = float(self.cols[col][i]) if col in self.cols else float("nan")
        return float("nan") if missing(v) else v

    def _flagged(self, col, i, mask, table):
        return bit_names(int(self.cols[col][i]), table, mask) if col in self.cols else []

    def _row(self, i):
        cols, m = self.cols, self.masks
        teff, logg = float(cols["TEFF"][i]), float(cols["LOGG"][i])
        problem = range_problem(teff, logg)
        bad = [f"ASPCAPFLAG:{b}" for b in self._flagged("ASPCAPFLAG", i, m["aspcap"], ASPCAPFLAG)]
        bad += [f"STARFLAG:{b}" for b in self._flagged("STARFLAG", i, m["star"], STARFLAG)]
        if problem is None and bad:
            problem = f"flagged labels ({', '.join(bad)})"
        if problem:
            return f"catalogue {self.path.name}: {problem}. Fix: drop the star or correct the catalogue"
        fe_h = float("nan") if self._flagged("FE_H_FLAG", i, m["elem"], PARAMFLAG) else self._value("FE_H", i)
        x_fe = {el: (float("nan") if self._flagged(f"{c}_FLAG", i, m["elem"], PARAMFLAG) else self._value(c, i))
                for el, c in zip(self.elements, self.x_cols)}
        return Labels(teff, logg, fe_h, x_fe, self._value("TEFF_ERR", i), self._value("LOGG_ERR", i))


def _bits_set(cols, name, mask):
    return (np.asarray(cols[name]).astype(np.int64) & mask) != 0 if name in cols else None


def read_catalogue(path, aspcapflag_bad=DEFAULT_ASPCAPFLAG_BAD, starflag_bad=DEFAULT_STARFLAG_BAD) -> Catalogue:
    """Read a label catalogue (DR17 allStar FITS or CSV) and apply its quality cuts."""
    path = Path(path)
    masks = {"aspcap": mask_value(aspcapflag_bad, ASPCAPFLAG, "--aspcapflag-bad"),
             "star": mask_value(starflag_bad, STARFLAG, "--starflag-bad"),
             "elem": mask_value(ELEMFLAG_BAD, PARAMFLAG, "ELEMFLAG")}
    if not path.exists():
        raise ApogeeFileError(path, "catalogue", "does not exist", "check the --catalogue path")
    cols, x_cols = _read_columns(path)
    ids = np.char.strip(np.asarray(cols["APOGEE_ID"]).astype(str))
    elements = tuple(_element_name(c[:-3]) for c in x_cols)
    keep = np.ones(ids.size, bool)
    stats = {"rows": int(ids.size), "extratarg_duplicate_rows": 0, "flagged": {}, "abundances_flagged": {}}
    if "EXTRATARG" in cols:
        dup_rows = (np.asarray(cols["EXTRATARG"]).astype(np.int64) >> EXTRATARG["DUPLICATE"] & 1) == 1
        keep &= ~dup_rows
        stats["extratarg_duplicate_rows"] = int(dup_rows.sum())
    rows_kept = np.flatnonzero(keep)
    uniq, first, counts = np.unique(ids[rows_kept], return_index=True, return_counts=True)
    chosen = rows_kept[first]  # the first kept row of every id
    index = dict(zip(uniq.tolist(), chosen.tolist()))
    # what the cuts do, counted over the rows used (vectorised; the reasons are built per star)
    teff = np.asarray(cols["TEFF"], np.float64)[chosen]
    logg = np.asarray(cols["LOGG"], np.float64)[chosen]
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(teff) & np.isfinite(logg) & (teff > MISSING_CUT) & (logg > MISSING_CUT)
    passed = usable.copy()
    for col, table, key in (("ASPCAPFLAG", ASPCAPFLAG, "aspcap"), ("STARFLAG", STARFLAG, "star")):
        hit = _bits_set(cols, col, masks[key])
        if hit is None:
            continue
        hit = hit[chosen]
        passed &= ~hit
        values = np.asarray(cols[col]).astype(np.int64)[chosen][usable & hit]
        for name in bit_names(masks[key], table):
            n = int(((values >> table[name]) & 1).sum())
            if n:
                stats["flagged"][f"{col}:{name}"] = n
    for el, col in [("Fe", "FE_H")] + list(zip(elements, x_cols)):
        hit = _bits_set(cols, f"{col}_FLAG", masks["elem"])
        if hit is not None and int((hit[chosen] & passed).sum()):
            stats["abundances_flagged"][el] = int((hit[chosen] & passed).sum())
    rows = CatalogueRows(path, cols, x_cols, elements, index, masks)
    return Catalogue(str(path), rows, elements, "FE_H" in cols, uniq[counts > 1].tolist(), stats)
