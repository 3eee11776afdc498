"""Writing an :class:`twinviz.evaluation.results.EvaluationReport` to disk: Markdown with the paper's
numbers beside ours, the cumulative twin-rank plot (PNG, matplotlib Agg), per-star ranks
(netCDF) and JSON. Every file is written atomically (temporary name, then ``os.replace``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import xarray as xr

from twinviz.atomic import atomic_path, write_text_atomic
from twinviz.evaluation.results import EvaluationReport
from twinviz.twins.ranks import cumulative_rank_curve

__all__ = ["report_markdown", "plot_rank_curves", "ranks_dataset", "write_report"]


def report_markdown(report: EvaluationReport, plot_name: str | None = "rank_curve.png") -> str:
    """The report as Markdown: the Table-1 comparison, the plot, and how to read it."""
    def num(v):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"

    def pct(v, se=None):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{100 * v:.1f} %" + (f" ± {100 * se:.1f}" if se else "")

    if not report.has_ranks:
        return _mse_only_markdown(report, num)
    t = report.thresholds
    lines = [
        "# twinviz evaluation (Table 1)",
        "",
        f"Evaluated data: {report.n_stars} stars, {report.n_with_twin} with a twin"
        + (f" (`{report.settings.get('data')}`)" if report.settings.get("data") else "")
        + (f" — {report.settings['data_role']}" if report.settings.get("data_role") else "") + ".",
        f"Twin rank thresholds: rank 1; ≤ 0.1 %·N = rank ≤ {t['rank_0p1']}; ≤ 1 %·N = rank ≤ {t['rank_1']}.",
    ]
    if report.settings.get("domain"):
        lines.append(f"**WARNING — {report.settings['domain']}.**")
    if t["rank_0p1"] < 1 or t["rank_1"] < 1:
        lines.append("With fewer than 1 000 (100) stars the 0.1 % (1 %) threshold is below rank 1, so that "
                     "column is 0 by definition; use a larger validation set to compare with the paper.")
    lines += [
        "",
        "| method | supervision | MSE | swapped MSE | rank 1 | ≤ 0.1 % | ≤ 1 % | doppelganger rate | stars ranked |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in report.methods:
        f = m.fractions
        ranked = f"{f.n_ranked}" + (" (sample)" if m.sampled else "")
        d = m.doppelganger
        lines.append(f"| **{m.label}** (ours) | {m.supervision} | {num(m.mse)} | {num(m.swapped_mse)} | "
                     f"{pct(f.rank1, m.stderr(f.rank1))} | {pct(f.within_0p1, m.stderr(f.within_0p1))} | "
                     f"{pct(f.within_1, m.stderr(f.within_1))} | {_rate(d)} | {ranked} |")
    for r in report.reference:
        lines.append(f"| {r.label} (published{', ' + r.note if r.note else ''}) | | {num(r.mse)} | "
                     f"{num(r.swapped_mse)} | {pct(r.rank1)} | {pct(r.within_0p1)} | {pct(r.within_1)} | | |")
    lines.append("")
    if plot_name:
        lines += [f"![cumulative twin-rank curve]({plot_name})", ""]
    s = report.settings
    lines += [
        "How to read it: twin rank = 1 + the number of other stars (the twin excluded) at an L1 "
        "distance ≤ the twin's (the closest group-mate): ties count against the star. Doppelganger rate = the "
        "fraction of random non-twin pairs at a distance ≤ the median twin-pair distance (over all stars; lower "
        "is better; docs/evaluation.md). MSE in squared flux units over good pixels. Published rows "
        "are copied for comparison from de Mijolla, Ness & Viti (2019, Table 1), the authors' 2021 "
        "public code and a Price-Jones & Bovy (2019)-style polynomial-residual method (sources: "
        "docs/science.md, Published numbers); they come from Turbospectrum spectra, ours "
        "from the data named above, so compare trends, not digits.",
        "",
        f"Settings: metric {s.get('metric', 'l1')}, polynomial degree {s.get('poly_degree')}, "
        f"pixel-baseline queries {s.get('pixel_queries') or 'all'} (seed {s.get('seed')}), "
        f"backend {s.get('backend')}.",
    ]
    pca = s.get("poly_pca")
    if pca:
        lines.append(f"Polynomial residuals on principal components: degree {pca['degree']}, "
                     f"{pca['n_components']} components, chosen by rank 1 on "
                     f"`{pca.get('chosen_on', 'a validation set')}` (never on the evaluated data).")
    for key in ("model", "baseline_model"):
        if s.get(key):
            lines.append(f"{key.replace('_', ' ')}: `{s[key]}`")
    return "\n".join(lines) + "\n"


def _rate(d) -> str:
    """A doppelganger rate as "1.23 %" (± its standard error when sampled); empty when undefined."""
    if d is None or math.isnan(d.rate):
        return ""
    se = d.stderr
    return f"{100 * d.rate:.2f} %" + (f" ± {100 * se:.2f}" if se else "")


def _mse_only_markdown(report: EvaluationReport, num) -> str:
    s = report.settings
    lines = [
        "# twinviz evaluation (reconstruction only: no twin ranks)",
        "",
        f"Data: {report.n_stars} stars" + (f" (`{s.get('data')}`)" if s.get("data") else "") + ".",
        "",
        f"**Twin ranks (Table 1): {s.get('ranks', 'absent')}.**",
        "",
        *([f"**WARNING — {s['domain']}.**", ""] if s.get("domain") else []),
        "| method | reconstruction MSE | swapped MSE | rank 1 | ≤ 0.1 % | ≤ 1 % |",
        "|---|---|---|---|---|---|",
    ]
    for m in report.methods:
        lines.append(f"| **{m.label}** (ours) | {num(m.mse)} | absent | absent | absent | absent |")
    lines += [
        "",
        "MSE in squared flux units over good pixels (mask False, finite): mean of (D(E(x,u),u) − x)². "
        "The swapped MSE needs each star's twin, so it is absent too. Baselines: "
        f"{s.get('baselines', 'none')}. The published Table-1 rows are not shown: they are twin ranks and "
        "MSEs on noiseless synthetic spectra, not comparable with these data.",
    ]
    for key in ("model", "baseline_model"):
        if s.get(key):
            lines.append(f"{key.replace('_', ' ')}: `{s[key]}`")
    return "\n".join(lines) + "\n"


def plot_rank_curves(report: EvaluationReport, path) -> Path:
    """Save the cumulative twin-rank curves of all methods as a PNG (atomic write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for m in report.methods:
        r, frac = cumulative_rank_curve(m.ranks, report.n_stars, n_points=300)
        ax.step(r / report.n_stars, frac, where="post", label=m.label)
    left = 0.5 / report.n_stars  # so that rank 1 (x = 1/N) shows as a step, not the edge
    for x, name in ((0.001, "0.1 %"), (0.01, "1 %")):
        if x <= left:
            continue
        ax.axvline(x, color="0.6", lw=0.8, ls="--")
        ax.text(x, 0.02, f" {name}", color="0.4", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(left, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("twin rank / N")
    ax.set_ylabel("fraction of stars with rank ≤ x·N")
    ax.set_title(f"Cumulative twin-rank curve (N = {report.n_stars})")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def ranks_dataset(report: EvaluationReport) -> xr.Dataset:
    """Per-star twin ranks of every method: ``rank_<key>(star)``, −1 where not ranked."""
    data = {}
    for m in report.methods:
        full = np.full(report.n_stars, -1, dtype=np.int64)
        full[m.queries] = m.ranks
        data[f"rank_{m.key}"] = ("star", full, {"long_name": f"twin rank, {m.label}",
                                               "note": "-1: no twin or not in the query sample"})
    return xr.Dataset(data, coords={"star": report.star_ids}, attrs={"n_stars": report.n_stars})


def write_report(report: EvaluationReport, out_dir) -> dict[str, Path]:
    """Write report.json, report.md, rank_curve.png and ranks.nc into ``out_dir`` (atomically);
    without twin ranks (data without groups) only report.json and report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    if report.has_ranks:
        paths["png"] = plot_rank_curves(report, out_dir / "rank_curve.png")
    for name, text in (("report.json", json.dumps(_no_nan(report.to_dict()), indent=2, allow_nan=False,
                                                  default=_json_default) + "\n"),
                       ("report.md", report_markdown(report, "rank_curve.png"))):
        paths[name.split(".")[1]] = write_text_atomic(out_dir / name, text)
    if report.has_ranks:
        ranks_path = out_dir / "ranks.nc"
        with atomic_path(ranks_path) as tmp:
            ranks_dataset(report).to_netcdf(tmp, engine="h5netcdf")
        paths["ranks"] = ranks_path
    return paths


def _no_nan(obj):
    """JSON has no NaN: undefined numbers (e.g. a fraction over zero stars) become null."""
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
