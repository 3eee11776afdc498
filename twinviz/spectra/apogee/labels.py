"""Labels for imported APOGEE stars: the labels policy, catalogues (allStar FITS or CSV) and
group lists.

Policy (docs/real-data.md): Teff (K) and logg (dex) come from ``--catalogue`` when given, else
from the file's own ASPCAP table (PARAM, the calibrated values). A star is skipped, with its
reason in the import report, when a label is −9999, NaN or outside the dataset's physical range
(Teff 2000–60 000 K, logg −1…6 dex), when PARAMFLAG has a BAD bit on Teff or logg, or when
ASPCAPFLAG has STAR_BAD. ``labels="fparam"`` (explicit opt-in) uses the raw, uncalibrated FERRE
fit FPARAM instead and ignores the flags (values must still be finite and in range).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinviz.spectra.dataset import LOGG_RANGE_DEX, TEFF_RANGE_K
from twinviz.spectra.apogee import ApogeeFileError
from twinviz.spectra.apogee.fits import ELEMENTS_26, FE_INDEX, MISSING, PARAM_INDEX, ApogeeSpectrum, require_astropy

__all__ = ["ASPCAP_STAR_BAD", "PARAMFLAG_BAD", "Catalogue", "Labels", "file_elements", "labels_from_file",
           "read_catalogue", "read_groups"]

# APOGEE_PARAMFLAG bits 0-4: GRIDEDGE_BAD, CALRANGE_BAD, OTHER_BAD, FERRE_FAIL, PARAM_MISMATCH_BAD
PARAMFLAG_BAD = {"GRIDEDGE_BAD": 0, "CALRANGE_BAD": 1, "OTHER_BAD": 2, "FERRE_FAIL": 3, "PARAM_MISMATCH_BAD": 4}
ASPCAP_STAR_BAD = 23  # APOGEE_ASPCAPFLAG bit STAR_BAD
_X_FE_COLUMN = re.compile(r"^([A-Za-z]+)_FE$")
_SPECIES = {"CI": "CI", "TIII": "TiII"}


@dataclass
class Labels:
    """Labels of one star: teff K, logg dex, fe_h dex (NaN if unknown), x_fe {element: dex}."""

    teff: float
    logg: float
    fe_h: float = float("nan")
    x_fe: dict = field(default_factory=dict)


def _missing(v) -> bool:
    return v is None or not np.isfinite(v) or v <= MISSING + 1


def _range_problem(teff: float, logg: float) -> str | None:
    if _missing(teff) or _missing(logg):
        return f"Teff/logg missing (Teff={teff}, logg={logg}; −9999 or NaN)"
    if not TEFF_RANGE_K[0] <= teff <= TEFF_RANGE_K[1] or not LOGG_RANGE_DEX[0] <= logg <= LOGG_RANGE_DEX[1]:
        return f"Teff/logg outside the physical range (Teff={teff:g} K, logg={logg:g} dex)"
    return None


def _bits(value: int, names: dict) -> list[str]:
    return [name for name, bit in names.items() if int(value) >> bit & 1]


def file_elements() -> tuple[str, ...]:
    """The element names carried from an aspcapStar table (Fe itself is ``fe_h``)."""
    return tuple(e for e in ELEMENTS_26 if e is not None and e != "Fe")


def _file_abundances(spec: ApogeeSpectrum) -> tuple[float, dict]:
    x_h = spec.x_h
    if x_h is None or x_h.size != len(ELEMENTS_26):
        return float("nan"), {}
    fe_h = float(x_h[FE_INDEX]) if not _missing(x_h[FE_INDEX]) else float("nan")
    x_fe = {}
    for i, name in enumerate(ELEMENTS_26):
        if name is None or name == "Fe":
            continue
        x_fe[name] = float(x_h[i] - fe_h) if not _missing(x_h[i]) and np.isfinite(fe_h) else float("nan")
    return fe_h, x_fe


def labels_from_file(spec: ApogeeSpectrum, mode: str = "param") -> tuple[Labels | None, str | None]:
    """Labels from an aspcapStar table: ``(labels, None)`` or ``(None, reason)``.

    ``mode="param"``: calibrated PARAM, skipped on −9999/NaN/out-of-range values and BAD flags;
    ``mode="fparam"``: the raw FPARAM fit (uncalibrated), flags ignored.
    """
    if spec.param is None:
        return None, (f"{spec.kind} files carry no stellar labels. Fix: give --catalogue allStar.fits "
                      "or labels.csv with this APOGEE_ID")
    values = spec.fparam if mode == "fparam" else spec.param
    teff, logg = float(values[PARAM_INDEX["teff"]]), float(values[PARAM_INDEX["logg"]])
    problem = _range_problem(teff, logg)
    if problem:
        fix = ("if you accept ASPCAP's uncalibrated fit, pass --labels fparam, or give --catalogue"
               if mode == "param" else "give --catalogue with labels for this star")
        return None, f"{'FPARAM' if mode == 'fparam' else 'PARAM'}: {problem}. Fix: {fix}"
    if mode == "param":
        flags = []
        if spec.paramflag is not None:
            for key in ("teff", "logg"):
                bad = _bits(spec.paramflag[PARAM_INDEX[key]], PARAMFLAG_BAD)
                flags += [f"{key}:{b}" for b in bad]
        if spec.aspcapflag is not None and spec.aspcapflag >> ASPCAP_STAR_BAD & 1:
            flags.append("ASPCAPFLAG:STAR_BAD")
        if flags:
            return None, (f"flagged labels ({', '.join(flags)}). Fix: drop the star, or pass --labels fparam "
                          "to accept the raw fit, or give --catalogue")
    fe_h, x_fe = _file_abundances(spec)
    return Labels(teff, logg, fe_h, x_fe), None


@dataclass
class Catalogue:
    """Labels by APOGEE_ID from an allStar file or a CSV.

    ``rows`` maps APOGEE_ID → :class:`Labels` or a skip reason (str); ``elements`` are the
    [X/Fe] columns found; ``duplicates`` the ids listed more than once (the first row is used).
    """

    path: str
    rows: dict
    elements: tuple
    has_fe_h: bool
    duplicates: list


def _element_name(column: str) -> str:
    sym = column.upper()
    return _SPECIES.get(sym, sym[:1] + sym[1:].lower())


def _catalogue_columns(path, names) -> tuple[dict, list]:
    upper = {n.upper(): n for n in names}
    for need in ("APOGEE_ID", "TEFF", "LOGG"):
        if need not in upper:
            raise ApogeeFileError(path, need, f"column is missing (columns: {', '.join(list(names)[:12])}…)",
                                  "give a catalogue with APOGEE_ID, TEFF and LOGG columns (and optional "
                                  "FE_H and <X>_FE columns)")
    x_cols = [upper[u] for u in upper if _X_FE_COLUMN.match(u) and u != "FE_H"]
    return upper, x_cols


def read_catalogue(path) -> Catalogue:
    """Read a label catalogue: an allStar FITS file (HDU 1) or a CSV file with columns
    APOGEE_ID, TEFF (K), LOGG (dex), optional FE_H and ``<X>_FE`` (dex) and ASPCAPFLAG."""
    path = Path(path)
    if not path.exists():
        raise ApogeeFileError(path, "catalogue", "does not exist", "check the --catalogue path")
    if path.suffix.lower() in (".fits", ".fit", ".fts"):
        fits = require_astropy()
        try:
            with fits.open(path, memmap=True) as hdul:
                table = hdul[1].data
                upper, x_cols = _catalogue_columns(path, table.columns.names)
                wanted = [upper[c] for c in ("APOGEE_ID", "TEFF", "LOGG", "FE_H", "ASPCAPFLAG") if c in upper]
                cols = {c.upper(): np.asarray(table.field(c)) for c in wanted + x_cols}
        except ApogeeFileError:
            raise
        except Exception as exc:
            raise ApogeeFileError(path, "catalogue", f"cannot be read as a FITS table ({type(exc).__name__}: "
                                  f"{exc})", "give an allStar FITS file or a CSV") from exc
    else:
        records = _csv_records(path, "catalogue", "give a comma-separated file with a header row")
        names = list(records[0].keys()) if records else []
        upper, x_cols = _catalogue_columns(path, names)
        cols = {}
        for key in [k for k in ("APOGEE_ID", "TEFF", "LOGG", "FE_H", "ASPCAPFLAG") if k in upper] + [c.upper() for c in x_cols]:
            raw = [r[upper[key]] for r in records]
            if key == "APOGEE_ID":
                cols[key] = np.asarray([s.strip() for s in raw], dtype=str)
            else:
                cols[key] = np.asarray([_to_float(path, key, s) for s in raw], dtype=np.float64)
    return _build_catalogue(path, cols, [c.upper() for c in x_cols])


def _csv_records(path, what: str, fix: str) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ApogeeFileError(path, what, f"cannot be read as CSV ({exc})", fix) from exc


def _to_float(path, column, text) -> float:
    text = (text or "").strip()
    if text == "":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ApogeeFileError(path, column, f"has a non-numeric value {text!r}",
                              "write numbers (or leave the cell empty for 'unknown')") from None


def _build_catalogue(path, cols: dict, x_cols: list) -> Catalogue:
    ids = [str(s).strip() for s in cols["APOGEE_ID"]]
    elements = tuple(_element_name(c[:-3]) for c in x_cols)
    rows, dups = {}, []
    for i, sid in enumerate(ids):
        if sid in rows:
            dups.append(sid)
            continue
        teff, logg = float(cols["TEFF"][i]), float(cols["LOGG"][i])
        problem = _range_problem(teff, logg)
        if problem is None and "ASPCAPFLAG" in cols and int(cols["ASPCAPFLAG"][i]) >> ASPCAP_STAR_BAD & 1:
            problem = "flagged labels (ASPCAPFLAG:STAR_BAD)"
        if problem:
            rows[sid] = f"catalogue {Path(path).name}: {problem}. Fix: drop the star or correct the catalogue"
            continue
        fe_h = float(cols["FE_H"][i]) if "FE_H" in cols else float("nan")
        fe_h = float("nan") if _missing(fe_h) else fe_h
        x_fe = {el: (float("nan") if _missing(float(cols[c][i])) else float(cols[c][i]))
                for el, c in zip(elements, x_cols)}
        rows[sid] = Labels(teff, logg, fe_h, x_fe)
    return Catalogue(str(path), rows, elements, "FE_H" in cols, sorted(set(dups)))


def read_groups(path) -> tuple[dict, dict]:
    """Read a CSV with columns APOGEE_ID, group (any text or number).

    Returns ``(ids, names)``: APOGEE_ID → group int, and group name → int (sorted names get
    0, 1, 2 …). Stars not listed get group −1 in the dataset.
    """
    path = Path(path)
    records = _csv_records(path, "groups", "give a CSV with columns APOGEE_ID,group")
    header = {k.strip().upper(): k for k in (records[0].keys() if records else [])}
    if "APOGEE_ID" not in header or "GROUP" not in header:
        raise ApogeeFileError(path, "APOGEE_ID/group", "columns are missing",
                              "give a CSV with a header row 'APOGEE_ID,group'")
    pairs = [(r[header["APOGEE_ID"]].strip(), r[header["GROUP"]].strip()) for r in records]
    names = {name: i for i, name in enumerate(sorted({g for _, g in pairs if g}))}
    ids = {}
    for sid, g in pairs:
        if sid in ids and ids[sid] != names.get(g, -1):
            raise ApogeeFileError(path, "group", f"lists {sid} in two groups",
                                  "give each star one group")
        ids[sid] = names.get(g, -1)
    return ids, names
