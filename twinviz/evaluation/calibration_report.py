"""The report of ``twinviz calibrate``: the reliability diagram (PNG, matplotlib Agg) and a Markdown
summary with the Brier score, written atomically (the fit itself: :mod:`twinviz.twins.confidence`)."""
from __future__ import annotations

from pathlib import Path

from twinviz.atomic import atomic_path, write_text_atomic
from twinviz.twins.confidence import TwinCalibration

__all__ = ["calibration_markdown", "plot_reliability", "write_calibration_report"]


def plot_reliability(cal: TwinCalibration, path) -> Path:
    """Predicted P(twin) against the observed fraction of twins per bin, on the held-out pairs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    rows = cal.reliability
    ax.plot([r["mean_p"] for r in rows], [r["fraction_twins"] for r in rows], "o-", color="#1f6f8b",
            label=f"{cal.method} (Brier {cal.brier:.3f})")
    for r in rows:
        ax.annotate(str(r["n"]), (r["mean_p"], r["fraction_twins"]), fontsize=6, xytext=(3, -8),
                    textcoords="offset points", color="0.35")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(twin)", ylabel="observed fraction of twins",
           title=f"reliability on {cal.n_pairs_scored} held-out pairs")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def calibration_markdown(cal: TwinCalibration, plot_name: str | None = "reliability.png") -> str:
    lines = ["# twinviz twin confidence", "",
             f"P(twin | {cal.metric} distance{', SNR' if cal.uses_snr else ''}) by {cal.method} regression on "
             f"the pairs (star, one of its {cal.k} nearest neighbours) of half the groups of `{cal.data}`; "
             f"scored on the other half.", "",
             "| pairs fitted | pairs scored | twins among scored pairs | Brier score | Brier of the base rate |",
             "|---|---|---|---|---|",
             f"| {cal.n_pairs_fit} | {cal.n_pairs_scored} | {100 * cal.base_rate:.1f} % | {cal.brier:.4f} | "
             f"{cal.base_rate * (1 - cal.base_rate):.4f} |", "",
             "| predicted P | pairs | mean predicted | observed twins |", "|---|---|---|---|"]
    lines += [f"| {r['lo']:.1f}–{r['hi']:.1f} | {r['n']} | {r['mean_p']:.3f} | {r['fraction_twins']:.3f} |"
              for r in cal.reliability]
    if plot_name:
        lines += ["", f"![reliability diagram]({plot_name})"]
    lines += ["", f"Applies to stars with Teff {cal.teff_range[0]:.0f}–{cal.teff_range[1]:.0f} K and logg "
              f"{cal.logg_range[0]:.2f}–{cal.logg_range[1]:.2f} (the calibration data's range), for weights "
              f"{cal.model_sha256[:12]}…."]
    return "\n".join(lines) + "\n"


def write_calibration_report(cal: TwinCalibration, out) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {"png": plot_reliability(cal, out / "reliability.png"),
            "md": write_text_atomic(out / "calibration.md", calibration_markdown(cal))}
