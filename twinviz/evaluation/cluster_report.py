"""``twinviz clusters`` as a library: cluster the fader latent and the baselines of one dataset
(:mod:`twinviz.evaluation.clusters`) and write the comparison (report.json, report.md,
labels.nc with every star's cluster per representation), each file atomically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from twinviz.atomic import write_dataset_atomic, write_json_atomic, write_text_atomic
from twinviz.evaluation.baselines import (has_true_abundances, polynomial_pca_residuals, polynomial_residuals,
                                         true_abundances)
from twinviz.evaluation.clusters import ClusterResult, score_representation

__all__ = ["BASELINES", "ClusterReport", "cluster_dataset", "cluster_markdown", "write_cluster_report"]

BASELINES = ("polynomial_pca", "polynomial", "oracle")
DEFAULT_POLY_PCA = {"degree": 2, "n_components": 20}  # when no validation set chooses them


@dataclass
class ClusterReport:
    n_stars: int
    n_groups: int  # true groups of ≥ 2 stars (0: no group scores)
    methods: list[ClusterResult]
    star_ids: np.ndarray = field(repr=False)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n_stars": self.n_stars, "n_groups": self.n_groups, "settings": self.settings,
                "methods": [m.to_dict() for m in self.methods]}


def cluster_dataset(ds: xr.Dataset, z=None, *, baselines=("polynomial_pca", "oracle"), poly_pca=None,
                    min_cluster_size: int = 5, min_samples: int | None = None, progress=None) -> ClusterReport:
    """Cluster latents ``z`` [N, d] (None: baselines only) and the ``baselines`` of ``ds``.

    poly_pca: {"degree", "n_components"} of the polynomial-PCA baseline, chosen on a validation set
    (:func:`~twinviz.evaluation.baselines.choose_polynomial_pca`); default :data:`DEFAULT_POLY_PCA`.
    The oracle is skipped on data without true abundances.
    """
    say = progress or (lambda message: None)
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"baselines: unknown {sorted(unknown)}. Fix: choose from {', '.join(BASELINES)}")
    groups = np.asarray(ds["group"].values, np.int64)
    known = groups[groups >= 0]
    n_groups = int(np.count_nonzero(np.unique(known, return_counts=True)[1] >= 2)) if known.size else 0
    truth = groups if n_groups else None
    kw = dict(min_cluster_size=min_cluster_size, min_samples=min_samples)
    poly_pca = dict(poly_pca or DEFAULT_POLY_PCA)
    methods = []
    if z is not None:
        say("clustering the fader latent")
        methods.append(score_representation("fader", z, truth, **kw))
    if "polynomial_pca" in baselines:
        degree, k = int(poly_pca["degree"]), int(poly_pca["n_components"])
        say(f"clustering polynomial residuals (degree {degree}) on {k} principal components")
        methods.append(score_representation("polynomial_pca", polynomial_pca_residuals(ds, degree, k), truth, **kw))
    if "polynomial" in baselines:
        say("clustering polynomial residuals (degree 2, every pixel)")
        methods.append(score_representation("polynomial", polynomial_residuals(ds, 2), truth, **kw))
    if "oracle" in baselines and has_true_abundances(ds):
        say("clustering the true abundances")
        methods.append(score_representation("oracle", true_abundances(ds), truth, **kw))
    settings = {"data": str(ds.encoding.get("source", "<in-memory dataset>")), "algorithm": "sklearn HDBSCAN, L1",
                "min_cluster_size": int(min_cluster_size), "min_samples": min_samples,
                "poly_pca": poly_pca if "polynomial_pca" in baselines else None}
    for key in ("group_sizes", "field_fraction", "n_clusters", "n_field", "chemistry", "population", "snr", "seed"):
        if key in ds.attrs:
            value = ds.attrs[key]
            settings[f"data_{key}"] = value.item() if hasattr(value, "item") else value
    return ClusterReport(n_stars=int(groups.size), n_groups=n_groups, methods=methods,
                         star_ids=np.asarray(ds["star"].values), settings=settings)


def _num(v) -> str:
    return "absent" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def cluster_markdown(report: ClusterReport) -> str:
    """The comparison as Markdown, with how to read it."""
    s = report.settings
    lines = ["# twinviz cluster recovery", "",
             f"{report.n_stars} stars, {report.n_groups} true groups of two or more (`{s.get('data')}`); "
             f"{s['algorithm']}, min_cluster_size {s['min_cluster_size']}, min_samples {s['min_samples']}.", ""]
    if not report.n_groups:
        lines += ["This dataset has no true groups of two or more stars, so the group scores are absent "
                  "(not zero): only the clusters found are reported.", ""]
    lines += ["| representation | dims | clusters found | noise | homogeneity | completeness | V-measure | "
              "groups recovered |", "|---|---|---|---|---|---|---|---|"]
    for m in report.methods:
        rec = _num(m.recovered_fraction) if m.recovered_fraction is None else (
            f"{100 * m.recovered_fraction:.1f} % of {m.n_groups_scored}")
        lines.append(f"| {m.label} | {m.dim} | {m.n_clusters} | {100 * m.noise_fraction:.1f} % | "
                     f"{_num(m.homogeneity)} | {_num(m.completeness)} | {_num(m.v_measure)} | {rec} |")
    fader = next((m for m in report.methods if m.key == "fader"), None)
    base = [m for m in report.methods if m.key.startswith("polynomial") and m.v_measure is not None]
    if fader is not None and fader.v_measure is not None and base:
        best = max(base, key=lambda m: m.v_measure)
        ratio = fader.v_measure / best.v_measure if best.v_measure > 0 else math.inf
        lines += ["", f"V-measure, fader latent / strongest baseline ({best.label}): **{ratio:.2f}×** "
                  f"(issue 13's target: ≥ 1.5×, {'met' if ratio >= 1.5 else 'not met'})."]
    lines += ["", "Noise stars count as clusters of one; field stars are groups of one; a group is recovered "
              "when one found cluster is more than half its stars and holds more than half of it "
              "(docs/clusters.md)."]
    return "\n".join(lines) + "\n"


def write_cluster_report(report: ClusterReport, out) -> dict:
    """report.json, report.md and labels.nc (cluster of every star per representation) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = xr.Dataset({f"cluster_{m.key}": ("star", m.labels) for m in report.methods},
                        coords={"star": report.star_ids},
                        attrs={"description": "HDBSCAN cluster per star and representation; -1 noise"})
    paths = {"json": write_json_atomic(out / "report.json", report.to_dict()),
             "md": write_text_atomic(out / "report.md", cluster_markdown(report)),
             "labels": write_dataset_atomic(labels, out / "labels.nc", "netcdf", star_chunk=65536)}
    return paths
