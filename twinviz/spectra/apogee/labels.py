"""Labels for imported APOGEE stars from their own files: the labels policy (catalogues are in
:mod:`.catalogue`, cluster members in :mod:`.members`).

Policy (docs/real-data.md): Teff (K) and logg (dex) come from ``--catalogue`` when given, else
from the file's own ASPCAP table (PARAM, the calibrated values). A star is skipped, with its
reason in the import report, when a label is −9999, NaN or outside the dataset's physical range
(Teff 2000–60 000 K, logg −1…6 dex), when PARAMFLAG has a BAD bit on Teff or logg, or when
ASPCAPFLAG has STAR_BAD. ``labels="fparam"`` (explicit opt-in) uses the raw, uncalibrated FERRE
fit FPARAM instead and ignores the flags (values must still be finite and in range).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from twinviz.spectra.dataset import LOGG_RANGE_DEX, TEFF_RANGE_K
from twinviz.spectra.apogee.fits import ELEMENTS_26, FE_INDEX, MISSING, PARAM_INDEX, ApogeeSpectrum

__all__ = ["ASPCAP_STAR_BAD", "PARAMFLAG_BAD", "Labels", "file_elements", "labels_from_file", "missing",
           "range_problem"]

# APOGEE_PARAMFLAG bits 0-4: GRIDEDGE_BAD, CALRANGE_BAD, OTHER_BAD, FERRE_FAIL, PARAM_MISMATCH_BAD
PARAMFLAG_BAD = {"GRIDEDGE_BAD": 0, "CALRANGE_BAD": 1, "OTHER_BAD": 2, "FERRE_FAIL": 3, "PARAM_MISMATCH_BAD": 4}
ASPCAP_STAR_BAD = 23  # APOGEE_ASPCAPFLAG bit STAR_BAD (the same bit in every release)


@dataclass
class Labels:
    """Labels of one star: teff K, logg dex, fe_h dex (NaN if unknown), x_fe {element: dex},
    teff_err K and logg_err dex (1-σ, NaN if unknown)."""

    teff: float
    logg: float
    fe_h: float = float("nan")
    x_fe: dict = field(default_factory=dict)
    teff_err: float = float("nan")
    logg_err: float = float("nan")


def missing(v) -> bool:
    return v is None or not np.isfinite(v) or v <= MISSING + 1


def range_problem(teff: float, logg: float) -> str | None:
    if missing(teff) or missing(logg):
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
    fe_h = float(x_h[FE_INDEX]) if not missing(x_h[FE_INDEX]) else float("nan")
    x_fe = {}
    for i, name in enumerate(ELEMENTS_26):
        if name is None or name == "Fe":
            continue
        x_fe[name] = float(x_h[i] - fe_h) if not missing(x_h[i]) and np.isfinite(fe_h) else float("nan")
    return fe_h, x_fe


def labels_from_file(spec: ApogeeSpectrum, mode: str = "param") -> tuple[Labels | None, str | None]:
    """Labels from an aspcapStar table: ``(labels, None)`` or ``(None, reason)``.

    ``mode="param"``: calibrated PARAM, skipped on −9999/NaN/out-of-range values and BAD flags;
    ``mode="fparam"``: the raw FPARAM fit (uncalibrated), flags ignored.
    """
    values = spec.fparam if mode == "fparam" else spec.param
    if values is None:
        what = f"{spec.kind} files carry" if spec.kind != "aspcapStar" else "this aspcapStar table has"
        return None, (f"{what} no stellar labels ({'FPARAM' if mode == 'fparam' else 'PARAM'}). Fix: give "
                      "--catalogue allStar.fits or labels.csv with this APOGEE_ID")
    teff, logg = float(values[PARAM_INDEX["teff"]]), float(values[PARAM_INDEX["logg"]])
    problem = range_problem(teff, logg)
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
