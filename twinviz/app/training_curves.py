"""The Training tab's pieces that hold no session state: the four linked loss-curve plots
(fed incrementally) and the formatting of the runs table's cells."""
from __future__ import annotations

import math

from bokeh.models import ColumnDataSource, Range1d, Span
from bokeh.plotting import figure

__all__ = ["EPOCH_COLUMNS", "LossCurves", "STEP_COLUMNS", "best_text", "duration_text"]

# Okabe–Ito colours (colour-blind safe): training curves blue, validation orange.
TRAIN_COLOUR = "#0072B2"
VAL_COLOUR = "#E69F00"
CHANCE_COLOUR = "#999999"
STEP_COLUMNS = ("step", "recon", "adv_loss", "adv_acc")
EPOCH_COLUMNS = ("step", "val_mse", "val_adv_acc", "val_swapped_mse", "val_rank1")


def duration_text(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def best_text(best: dict, twin_metric: dict | None = None) -> str:
    """The best epoch in two numbers; a finished run's rank 1 in its twin metric first when it has
    one (the per-epoch rank 1 is on raw z: the metric is fitted after the last epoch)."""
    shown = []
    if twin_metric:
        shown.append(f"rank-1 {twin_metric['rank1']:.1%} in twin metric (raw z {twin_metric['raw_rank1']:.1%})")
    for key, label, fmt in (("val_rank1", "rank-1", "{:.1%}"), ("val_swapped_mse", "swap MSE", "{:.2e}"),
                            ("val_mse", "MSE", "{:.2e}"), ("train_recon", "train", "{:.3g}")):
        value = best.get(key)
        if twin_metric and key == "val_rank1":
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            shown.append(f"{label} {fmt.format(value)}")
        if len(shown) == 2:
            break
    return ", ".join(shown)


def _log_positive(value):
    """NaN for values a log axis cannot show (missing, zero, negative)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else float("nan")


def _number(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")


class LossCurves:
    """Four small linked Bokeh plots fed incrementally (ColumnDataSource.stream)."""

    def __init__(self):
        # Named so that browser tests can find them in the page's Bokeh document.
        self.step = ColumnDataSource({c: [] for c in STEP_COLUMNS}, name="training-steps")
        self.epoch = ColumnDataSource({c: [] for c in EPOCH_COLUMNS}, name="validation-epochs")
        common = dict(height=210, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,hover",
                      toolbar_location="right", x_axis_label="step")
        # The log axes' y ranges are set here from the values (Range1d): Bokeh's automatic range
        # of one point on a log axis showed 1e-3 … 1e-2 for a loss of 0.82.
        self.recon = figure(title="Reconstruction loss", y_axis_type="log", y_range=Range1d(0.1, 1.0), **common)
        x_range = self.recon.x_range
        self.adversary = figure(title="Adversary accuracy (lower is better disentangled)",
                                x_range=x_range, y_range=Range1d(0, 1.02), **common)
        self.swapped = figure(title="Swapped reconstruction MSE (validation)", y_axis_type="log",
                              x_range=x_range, y_range=Range1d(0.1, 1.0), **common)
        self.rank1 = figure(title="Twin rank-1 fraction (validation)", x_range=x_range,
                            y_range=Range1d(0, 1.02), **common)
        kw = dict(line_width=2)
        self.recon.line("step", "recon", source=self.step, color=TRAIN_COLOUR, legend_label="training", **kw)
        # Markers on every series: a run of one epoch has one point per series, which a line
        # alone does not draw.
        self.recon.scatter("step", "recon", source=self.step, color=TRAIN_COLOUR, size=4, legend_label="training")
        self.recon.scatter("step", "val_mse", source=self.epoch, color=VAL_COLOUR, size=7,
                           legend_label="validation MSE")
        self.adversary.line("step", "adv_acc", source=self.step, color=TRAIN_COLOUR,
                            legend_label="training batches", **kw)
        self.adversary.scatter("step", "adv_acc", source=self.step, color=TRAIN_COLOUR, size=4,
                               legend_label="training batches")
        self.adversary.scatter("step", "val_adv_acc", source=self.epoch, color=VAL_COLOUR, size=7,
                               legend_label="validation")
        self.chance = Span(location=0, dimension="width", line_color=CHANCE_COLOUR, line_dash="dashed",
                           visible=False)
        self.adversary.add_layout(self.chance)
        self.swapped.line("step", "val_swapped_mse", source=self.epoch, color=VAL_COLOUR, **kw)
        self.swapped.scatter("step", "val_swapped_mse", source=self.epoch, color=VAL_COLOUR, size=7)
        self.rank1.line("step", "val_rank1", source=self.epoch, color=VAL_COLOUR, **kw)
        self.rank1.scatter("step", "val_rank1", source=self.epoch, color=VAL_COLOUR, size=7)
        for fig in self.figures:
            fig.toolbar.logo = None
            fig.title.text_font_style = "normal"
            fig.min_border_left = 55
            if fig.legend:
                fig.legend.location = "top_right"
                fig.legend.click_policy = "hide"
                fig.legend.label_text_font_size = "11px"
                fig.legend.background_fill_alpha = 0.6
        self.n_points = 0
        self._log_values = {"recon": [], "swapped": []}

    @property
    def figures(self):
        return (self.recon, self.adversary, self.swapped, self.rank1)

    def clear(self) -> None:
        self.step.data = {c: [] for c in STEP_COLUMNS}
        self.epoch.data = {c: [] for c in EPOCH_COLUMNS}
        self.chance.visible = False
        self.n_points = 0
        self._log_values = {"recon": [], "swapped": []}

    def add(self, records: list[dict]) -> None:
        """Stream new metrics records (only the rows; Bokeh sends a small patch)."""
        steps = [r for r in records if r.get("kind") == "step"]
        epochs = [r for r in records if r.get("kind") == "epoch"]
        if steps:
            self.step.stream({
                "step": [_number(r.get("step")) for r in steps],
                "recon": [_log_positive(r.get("mse_flux", r.get("recon"))) for r in steps],
                "adv_loss": [_number(r.get("adv_loss")) for r in steps],
                "adv_acc": [_number(r.get("adv_acc")) for r in steps]})
        if epochs:
            self.epoch.stream({
                "step": [_number(r.get("step")) for r in epochs],
                "val_mse": [_log_positive(r.get("val_mse")) for r in epochs],
                "val_adv_acc": [_number(r.get("val_adv_acc")) for r in epochs],
                "val_swapped_mse": [_log_positive(r.get("val_swapped_mse")) for r in epochs],
                "val_rank1": [_number(r.get("val_rank1")) for r in epochs]})
            chance = epochs[-1].get("val_adv_chance")
            if isinstance(chance, (int, float)) and math.isfinite(chance):
                self.chance.location, self.chance.visible = chance, True
        self.n_points += len(steps) + len(epochs)
        self._fit_log_ranges(steps, epochs)

    def _fit_log_ranges(self, steps: list[dict], epochs: list[dict]) -> None:
        """Keep each log axis spanning its values (×/÷ 1.5 around the smallest and largest)."""
        new = {"recon": [r.get("mse_flux", r.get("recon")) for r in steps] + [r.get("val_mse") for r in epochs],
               "swapped": [r.get("val_swapped_mse") for r in epochs]}
        for name, fig in (("recon", self.recon), ("swapped", self.swapped)):
            values = self._log_values[name]
            values.extend(v for v in map(_log_positive, new[name]) if math.isfinite(v))
            if values:
                lo, hi = min(values), max(values)
                self._log_values[name] = [lo, hi]  # only the extremes matter
                fig.y_range.update(start=lo / 1.5, end=hi * 1.5)
