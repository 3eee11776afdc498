"""Known twins for ``--groups``: a membership table (e.g. open-cluster members) → group ids.

The table is a CSV (or FITS table, HDU 1) with one row per (star, group):

* the star: ``APOGEE_ID`` (or ``2MASS_ID``);
* its group: ``group`` (or ``CLUSTER``), any text, e.g. a cluster name;
* optionally its membership probability (0–1): the column named by ``column``, else the first of
  ``membership``, ``prob``, ``probability``, ``p_member`` (any case).

With ``min_membership`` P, only rows with probability ≥ P make a star a member; rows below it
(or without a probability) are counted, not used. A star that is a member of two groups is
refused. Group names are sorted and numbered 0, 1, 2 …; stars not members get −1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinviz.spectra.apogee import ApogeeFileError
from twinviz.spectra.apogee.catalogue import read_csv_records
from twinviz.spectra.apogee.fits import require_astropy

__all__ = ["Members", "read_members"]

_ID_COLUMNS = ("APOGEE_ID", "2MASS_ID")
_GROUP_COLUMNS = ("GROUP", "CLUSTER")
_PROB_COLUMNS = ("MEMBERSHIP", "PROB", "PROBABILITY", "P_MEMBER")
_FIX = "give a table with columns APOGEE_ID, group (or CLUSTER) and, for --min-membership, a membership probability"


@dataclass
class Members:
    """``ids``: APOGEE_ID → group int; ``names``: group name → int; ``listed``/``below``: rows
    per group name in the table / below ``min_membership``; ``column``: the probability column."""

    path: str
    ids: dict
    names: dict
    listed: dict = field(default_factory=dict)
    below: dict = field(default_factory=dict)
    column: str | None = None
    min_membership: float | None = None

    def summary(self, imported_ids) -> dict:
        """Members per group: listed in the table, below the threshold, imported."""
        counts = {name: 0 for name in self.names}
        by_id = {v: k for k, v in self.names.items()}
        for sid in imported_ids:
            g = self.ids.get(sid, -1)
            if g >= 0:
                counts[by_id[g]] += 1
        return {name: {"listed": self.listed.get(name, 0), "below_min_membership": self.below.get(name, 0),
                       "imported": counts[name]} for name in sorted(set(self.listed) | set(self.names))}


def _table(path: Path) -> dict:
    if path.suffix.lower() in (".fits", ".fit", ".fts"):
        fits = require_astropy()
        try:
            with fits.open(path, memmap=True) as hdul:
                data = hdul[1].data
                return {n.upper(): [str(v).strip() if isinstance(v, (str, bytes)) else v for v in data.field(n)]
                        for n in data.columns.names}
        except Exception as exc:
            raise ApogeeFileError(path, "groups", f"cannot be read as a FITS table ({type(exc).__name__}: {exc})",
                                  _FIX) from exc
    records = read_csv_records(path, "groups", _FIX)
    names = list(records[0].keys()) if records else []
    return {n.strip().upper(): [r[n].strip() if isinstance(r[n], str) else r[n] for r in records] for n in names}


def _pick(path, table, options, what, required=True):
    for name in options:
        if name in table:
            return name
    if required:
        raise ApogeeFileError(path, what, f"column is missing (looked for {', '.join(options)}; found "
                              f"{', '.join(list(table)[:10])})", _FIX)
    return None


def read_members(path, min_membership: float | None = None, column: str | None = None) -> Members:
    """Read a membership table; see the module docstring for the columns and rules."""
    path = Path(path)
    if not path.exists():
        raise ApogeeFileError(path, "groups", "does not exist", "check the --groups path")
    if min_membership is not None and not 0.0 <= min_membership <= 1.0:
        raise ApogeeFileError(path, "--min-membership", f"{min_membership} is not a probability",
                              "give a value between 0 and 1, e.g. 0.5")
    table = _table(path)
    id_col = _pick(path, table, _ID_COLUMNS, "APOGEE_ID")
    group_col = _pick(path, table, _GROUP_COLUMNS, "group")
    prob_col = (_pick(path, table, (column.upper(),), "membership column") if column
                else _pick(path, table, _PROB_COLUMNS, "membership", required=False))
    if min_membership is not None and prob_col is None:
        raise ApogeeFileError(path, "membership", f"--min-membership {min_membership} needs a probability "
                              f"column (looked for {', '.join(_PROB_COLUMNS)})",
                              "add one, name it with --membership-column, or drop --min-membership")
    probs = [float("nan")] * len(table[id_col])
    if prob_col:
        for i, v in enumerate(table[prob_col]):
            try:
                probs[i] = float(v) if str(v).strip() != "" else float("nan")
            except ValueError:
                raise ApogeeFileError(path, prob_col, f"row {i + 2}: {v!r} is not a number",
                                      "write probabilities between 0 and 1 (empty = unknown)") from None
            if np.isfinite(probs[i]) and not 0.0 <= probs[i] <= 1.0:
                raise ApogeeFileError(path, prob_col, f"row {i + 2}: {v!r} is not a probability between 0 and 1",
                                      "write probabilities between 0 and 1 (a percentage divided by 100)")
    listed, below, chosen = {}, {}, {}
    for sid, g, p in zip(table[id_col], table[group_col], probs):
        sid, g = str(sid).strip(), str(g).strip()
        if not sid or not g:
            continue
        listed[g] = listed.get(g, 0) + 1
        if min_membership is not None and not (p >= min_membership):
            below[g] = below.get(g, 0) + 1
            continue
        if sid in chosen and chosen[sid] != g:
            more = f" with membership ≥ {min_membership}" if min_membership is not None else ""
            raise ApogeeFileError(path, group_col, f"lists {sid} in two groups{more} ({chosen[sid]}, {g})",
                                  "give each star one group, or raise --min-membership")
        chosen[sid] = g
    names = {name: i for i, name in enumerate(sorted(set(chosen.values())))}
    return Members(str(path), {sid: names[g] for sid, g in chosen.items()}, names, listed, below, prob_col,
                   min_membership)
