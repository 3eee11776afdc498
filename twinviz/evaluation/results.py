"""The results of an evaluation as plain data: published reference rows, one method's Table-1
numbers (:class:`MethodResult`) and the whole report (:class:`EvaluationReport`).

Computed by :mod:`twinviz.evaluation.compute`; written to files by :mod:`twinviz.evaluation.report`,
which imports this module (never the other way round).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from twinviz.twins.ranks import Doppelganger, RankFractions, cumulative_rank_curve

__all__ = ["METHOD_LABELS", "PAPER_REFERENCE", "EvaluationReport", "MethodResult", "ReferenceRow"]


@dataclass(frozen=True)
class ReferenceRow:
    """Published numbers (docs/science.md, Published numbers); fractions in [0, 1], None where not published."""

    label: str
    mse: float | None = None
    swapped_mse: float | None = None
    rank1: float | None = None
    within_0p1: float | None = None
    within_1: float | None = None
    note: str = ""


PAPER_REFERENCE: tuple[ReferenceRow, ...] = (
    ReferenceRow("paper, fader network", 2.2e-6, 3.7e-4, 0.607, 0.823, 0.937, "N = 25 000, noiseless"),
    ReferenceRow("paper, conditional AE (λ=0)", 4.1e-7, 9.7e-3, 0.081, 0.144, 0.248, "N = 25 000, noiseless"),
    ReferenceRow("authors' 2021 code, fader", None, None, 0.990, 0.998, 1.000, "50 000 stars, noiseless"),
    ReferenceRow("authors' 2021 code, fader, SNR 50", None, None, 0.644, 0.953, 0.995, ""),
    ReferenceRow("authors' 2021 code, fader, SNR 30", None, None, 0.193, 0.637, 0.888, ""),
    ReferenceRow("polynomial residuals (Price-Jones & Bovy 2019 style)", None, None, 0.521, 0.726, 0.837,
                 "noiseless"),
)

# The methods a report can hold, in display order: key → label.
METHOD_LABELS = {
    "fader": "fader network",
    "lambda0": "conditional AE (λ=0)",
    "fader_raw_z": "fader network, raw z (no twin metric)",
    "lambda0_raw_z": "conditional AE (λ=0), raw z (no twin metric)",
    "polynomial": "polynomial residuals",
    "polynomial_pca": "polynomial residuals on principal components",
    "polynomial_pca_metric": "polynomial-PCA residuals in a twin metric (trained on training twins)",
    "raw_flux": "raw flux L1",
    "oracle": "oracle (true abundances)",
}


@dataclass
class MethodResult:
    """Table-1 numbers of one method.

    ranks : twin rank per entry of ``queries`` (−1: no twin); queries : star positions ranked.
    mse, swapped_mse : flux units² (models only, else None); seconds : wall time spent.
    doppelganger : the doppelganger rate over all stars (None without twins; docs/evaluation.md).
    """

    key: str
    label: str
    ranks: np.ndarray
    queries: np.ndarray
    fractions: RankFractions
    mse: float | None = None
    swapped_mse: float | None = None
    sampled: bool = False
    seconds: float = 0.0
    supervision: str = ""         # "unsupervised (no twin seen)", "twin-supervised (…)", …
    in_sample: list = field(default_factory=list)  # roles in which the evaluated data served this method
    doppelganger: Doppelganger | None = None

    def stderr(self, fraction: float) -> float | None:
        """Binomial standard error of a fraction estimated from a sample of query stars."""
        n = self.fractions.n_ranked
        if not self.sampled or n == 0 or math.isnan(fraction):
            return None
        return math.sqrt(fraction * (1 - fraction) / n)

    def to_dict(self, curve_points: int = 200) -> dict:
        f = self.fractions
        if f.n_ranked:
            r, frac = cumulative_rank_curve(self.ranks, f.n_stars, n_points=curve_points)
        else:  # no twin ranks (data without groups): no curve, and the fractions below are null
            r, frac = np.empty(0, dtype=np.int64), []
        out = {
            "key": self.key, "label": self.label, "supervision": self.supervision, "in_sample": self.in_sample,
            "mse": self.mse, "swapped_mse": self.swapped_mse,
            "rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1,
            "n_ranked": f.n_ranked, "sampled": self.sampled,
            "doppelganger_rate": None if self.doppelganger is None else self.doppelganger.rate,
            "doppelganger": None if self.doppelganger is None else self.doppelganger.to_dict(),
            "median_rank": float(np.median(self.ranks[self.ranks >= 1])) if f.n_ranked else None,
            "seconds": round(self.seconds, 3),
            "cumulative_rank_curve": {"rank": r.tolist(), "fraction": [float(v) for v in frac]},
        }
        if self.sampled:
            out["stderr"] = {k: self.stderr(getattr(f, k)) for k in ("rank1", "within_0p1", "within_1")}
        return out


@dataclass
class EvaluationReport:
    """All methods' Table-1 numbers on one validation set (see module docstring)."""

    n_stars: int
    n_with_twin: int
    methods: list[MethodResult]
    star_ids: np.ndarray
    settings: dict = field(default_factory=dict)
    reference: tuple[ReferenceRow, ...] = PAPER_REFERENCE

    def __getitem__(self, key: str) -> MethodResult:
        for m in self.methods:
            if m.key == key:
                return m
        raise KeyError(f"no method {key!r} in this report; it has {[m.key for m in self.methods]}")

    @property
    def has_ranks(self) -> bool:
        """False for data without groups: MSEs only, the rank columns are absent (not zero)."""
        return self.n_with_twin > 0

    @property
    def thresholds(self) -> dict:
        return {"rank_0p1": self.n_stars // 1000, "rank_1": self.n_stars // 100}

    def to_dict(self) -> dict:
        from twinviz import __version__

        return {
            "twinviz_version": __version__,
            "n_stars": self.n_stars,
            "n_with_twin": self.n_with_twin,
            "ranks": "present" if self.has_ranks else self.settings.get("ranks", "absent"),
            "thresholds": self.thresholds,
            "settings": self.settings,
            "methods": [m.to_dict() for m in self.methods],
            "paper_reference": [vars(r) for r in self.reference],
        }

    def table(self) -> list[dict]:
        """Rows (ours, then the paper's) with label, mse, swapped_mse, rank1, within_0p1, within_1."""
        rows = [{"label": m.label, "mse": m.mse, "swapped_mse": m.swapped_mse, "rank1": m.fractions.rank1,
                 "within_0p1": m.fractions.within_0p1, "within_1": m.fractions.within_1, "ours": True,
                 "n_ranked": m.fractions.n_ranked, "sampled": m.sampled,
                 "doppelganger_rate": None if m.doppelganger is None else m.doppelganger.rate} for m in self.methods]
        rows += [{"label": r.label, "mse": r.mse, "swapped_mse": r.swapped_mse, "rank1": r.rank1,
                  "within_0p1": r.within_0p1, "within_1": r.within_1, "ours": False, "note": r.note}
                 for r in self.reference]
        return rows
