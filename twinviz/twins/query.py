"""The twin query: one star's nearest twins, with everything a reader needs to trust them.

One service, used by ``twinviz twins`` (which prints it) and the app's twin table (which
tabulates it): a :class:`TwinQuery` holds the vectors one ranking works on (a fader model's z
or z in its twin metric — :meth:`twinviz.bundle.ModelBundle.twin_query` — or a pixel finder's
vectors — :meth:`twinviz.evaluation.pixel_finder.PixelTwinFinder.twin_query`), the stars'
labels, their out-of-distribution flags and the calibration of P(twin); :meth:`TwinQuery.query`
answers for one star with a :class:`TwinAnswer`: the neighbours (distance, labels, same group,
P(twin), OOD), the closest true twin and its rank, what was ranked on and why, and the notes.

The OOD object is duck-typed (``flags``, ``describe``, ``short``, ``basis``): a model's
:class:`twinviz.latents.ood.OODCriteria` or a pixel finder's label-range check.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TwinAnswer", "TwinQuery"]


@dataclass
class TwinAnswer:
    """What :meth:`TwinQuery.query` returns (:meth:`as_dict` is ``twinviz twins --json``)."""

    star: object
    position: int
    positions: np.ndarray      # [k] neighbours' positions, nearest first
    distances: np.ndarray      # [k]
    rows: list[dict]
    query_row: dict
    true_twin: dict | None
    ranked_on: str
    metric: str
    p_twin_note: str
    ood_criteria: str | None
    domain_note: str = ""

    def as_dict(self) -> dict:
        return {"query": self.query_row, "metric": self.metric, "ranked_on": self.ranked_on,
                "domain": self.domain_note or "the model's training domain", "twins": self.rows,
                "true_twin": self.true_twin, "p_twin_note": self.p_twin_note, "ood_criteria": self.ood_criteria}


@dataclass
class TwinQuery:
    """One ranking of one set of stars (module docstring)."""

    vectors: np.ndarray                 # [N, d] what is ranked on
    ids: np.ndarray                     # [N] star ids
    teff: np.ndarray
    logg: np.ndarray
    group: np.ndarray | None = None     # [N] chemistry groups (−1 unknown)
    snr: np.ndarray | None = None
    ranked_on: str = "z"                # e.g. "raw z (…)", "z in the twin metric (…)", "pixel finder DIR"
    distance: str = "z"                 # the distance's name a calibration must match (TwinCalibration.distance)
    ood: object | None = None           # OODCriteria-like, or None (no flags known)
    recon_mse: np.ndarray | None = None
    calibration: object | None = None   # TwinCalibration, or None
    calibration_note: str = ""          # why there is none (refused, not applicable, …)
    metric: str = "l1"
    backend: str = "auto"
    z: np.ndarray | None = None         # [N, latent] raw z, for decoding (--explain); None for a pixel finder
    domain_note: str = ""               # "" or why the model's training domain is not these stars' (bundle)
    _index: object = field(default=None, repr=False)
    _flags: dict | None = field(default=None, repr=False)

    def __post_init__(self):
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        self.teff = np.asarray(self.teff, dtype=np.float64)
        self.logg = np.asarray(self.logg, dtype=np.float64)
        if self.group is None:
            self.group = np.full(len(self.ids), -1, dtype=np.int64)
        self.group = np.asarray(self.group, dtype=np.int64)

    # --- the search ------------------------------------------------------------------------------
    @property
    def index(self):
        from twinviz.twins.index import TwinIndex

        if self._index is None:
            self._index = TwinIndex(self.vectors, metric=self.metric, backend=self.backend, ids=self.ids)
        return self._index

    def position_of(self, star) -> int:
        """Position of a star id (typed as on a command line: "42" finds the integer id 42)."""
        ids = np.asarray(self.ids)
        if np.issubdtype(ids.dtype, np.integer):
            try:
                star = int(star)
            except (TypeError, ValueError):
                pass
        else:
            star = str(star)
        return self.index.position_of(star)

    def neighbours(self, position: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions [k], distances [k]) of the k nearest other stars."""
        return self.index.search(int(position), int(k))

    def true_twin(self, position: int) -> dict | None:
        """{"position", "star", "distance", "twin_rank"} of the star's nearest group-mate, or None."""
        if self.group[position] < 0:
            return None
        best, distance = self.index.twin_of(self.group, position)
        if best < 0:  # no group-mate
            return None
        rank = int(self.index.twin_ranks(self.group, queries=[position])[0])
        return {"position": best, "star": np.asarray(self.ids)[best].item(), "distance": distance,
                "twin_rank": rank}

    # --- flags and probabilities -----------------------------------------------------------------
    def ood_flags(self) -> dict | None:
        """Per-star boolean arrays ``ood``, ``ood_labels``, ``ood_recon``, or None without flags."""
        if self.ood is None:
            return None
        if self._flags is None:
            self._flags = self.ood.flags(self.teff, self.logg, self.recon_mse)
        return self._flags

    def ood_row(self, position: int) -> dict | None:
        """{"flag", "labels", "recon", "recon_mse", "why", "short"} of one star, or None."""
        flags = self.ood_flags()
        if flags is None:
            return None
        recon = None if self.recon_mse is None else float(self.recon_mse[position])
        t, g = float(self.teff[position]), float(self.logg[position])
        return {"flag": bool(flags["ood"][position]), "labels": bool(flags["ood_labels"][position]),
                "recon": bool(flags["ood_recon"][position]), "recon_mse": recon,
                "why": self.ood.describe(t, g, recon), "short": self.ood.short(t, g, recon)}

    def _labels(self, p: int) -> dict:
        row = {"teff": float(self.teff[p]), "logg": float(self.logg[p])}
        if self.snr is not None:
            row["snr"] = float(self.snr[p])
        flags = self.ood_flags()
        row["ood"] = bool(flags is not None and flags["ood"][p])
        return row

    def p_twin(self, position: int, positions, distances) -> tuple[list, str]:
        """(P(twin) of each listed neighbour or None, a note on where P comes from or why not)."""
        from twinviz.twins.confidence import table_probabilities

        none = [None] * len(positions)
        cal = self.calibration
        if cal is None and self.calibration_note:
            return none, self.calibration_note
        if cal is not None:
            why = cal.refuses(self.distance, self.metric)
            if why:
                return none, f"P(twin): not applicable: {why}"
        return table_probabilities(cal, distances, self._labels(position), [self._labels(p) for p in positions])

    # --- the answer ------------------------------------------------------------------------------
    def query(self, star=None, k: int = 10, *, position: int | None = None) -> TwinAnswer:
        """The k nearest twins of ``star`` (an id) or of the star at ``position``."""
        pos = self.position_of(star) if position is None else int(position)
        positions, distances = self.neighbours(pos, k)
        p_twin, note = self.p_twin(pos, positions.tolist(), distances)
        ids = np.asarray(self.ids)
        rows = []
        for rank, (p, d) in enumerate(zip(positions.tolist(), np.asarray(distances).tolist()), start=1):
            rows.append({"rank": rank, "star": ids[p].item(), "distance": float(d), "teff": float(self.teff[p]),
                         "logg": float(self.logg[p]), "group": int(self.group[p]),
                         "same_group": bool(self.group[pos] >= 0 and self.group[p] == self.group[pos]),
                         "p_twin": p_twin[rank - 1], "ood": self.ood_row(p)})
        me = {"star": ids[pos].item(), "teff": float(self.teff[pos]), "logg": float(self.logg[pos]),
              "group": int(self.group[pos]), "ood": self.ood_row(pos)}
        twin = self.true_twin(pos)
        if twin is not None:
            twin = {k: v for k, v in twin.items() if k != "position"}
        return TwinAnswer(star=me["star"], position=pos, positions=positions, distances=np.asarray(distances),
                          rows=rows, query_row=me, true_twin=twin, ranked_on=self.ranked_on, metric=self.metric,
                          p_twin_note=note, ood_criteria=None if self.ood is None else self.ood.basis,
                          domain_note=self.domain_note)
