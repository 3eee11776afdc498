"""The training tab: launch, follow, cancel and open training runs from the app.

Public API (for ``layout.py``)::

    tab = TrainingTab(runs_dir="runs", data_dir="data", on_open=callback)
    tab.servable()   # or add it to the layout's tabs: pn.Tabs(("Training", tab), ...)

``on_open(run, model_dir)`` is called when the user presses "Open in explorer": ``run`` is a
:class:`twinviz.runs.Run` (its dataset: ``run.config["val"] or run.config["data"]``),
``model_dir`` a directory ``FaderNetwork.from_pretrained`` (and ``load_app_data(model=...)``)
can open — the best model of a finished run, or the latest checkpoint of a running one. The
same event also sets the ``opened`` parameter (``{"run", "model", "data"}``) for code that
prefers ``tab.param.watch``. ``selected`` is the name of the run this session looks at.

Sharing: the :class:`~twinviz.runs.RunManager` (one per runs/data folder per process) and
its single background polling thread are shared by every session, so runs are global and go
on when browsers close. Each session has one periodic callback (``poll_period`` ms) that only
reads files and pushes what changed to its own widgets; it is stopped when the session ends.
"""
from __future__ import annotations

import dataclasses
import html
import math
import time

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, Span
from bokeh.plotting import figure

from twinviz.app.session import in_session
from twinviz.runs import Run, RunError, RunManager, devices
from twinviz.options import meta, options_of
from twinviz.training.config import TrainConfig

__all__ = ["TrainingTab", "field_choices", "field_help"]

# Okabe–Ito colours (colour-blind safe): training curves blue, validation orange.
TRAIN_COLOUR = "#0072B2"
VAL_COLOUR = "#E69F00"
CHANCE_COLOUR = "#999999"

# Which fields the form shows, their help and their choices come from TrainConfig's field
# declarations (twinviz.options): "main" ones up front, "more" ones in a collapsed "More
# settings" card; data/val/out/device/progress (form=None) are set by the dataset pickers, the
# device choice and the run manager.
MAIN_FIELDS = tuple(f.name for f in options_of(TrainConfig) if meta(f, "form") == "main")
FORM_FIELDS = tuple(f.name for f in options_of(TrainConfig) if meta(f, "form"))
STEP_COLUMNS = ("step", "recon", "adv_loss", "adv_acc")
EPOCH_COLUMNS = ("step", "val_mse", "val_adv_acc", "val_swapped_mse", "val_rank1")


def field_help() -> dict[str, str]:
    """One line of help per TrainConfig field: the same declaration ``twinviz train --help``
    prints, so the form and the command line never disagree."""
    return {f.name: meta(f, "help") for f in options_of(TrainConfig)}


def field_choices() -> dict[str, tuple]:
    """The allowed values of every TrainConfig field that has a fixed set of them."""
    return {f.name: meta(f, "choices") for f in options_of(TrainConfig) if meta(f, "choices")}


def _duration(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _best_text(best: dict) -> str:
    shown = []
    for key, label, fmt in (("val_rank1", "rank-1", "{:.1%}"), ("val_swapped_mse", "swap MSE", "{:.2e}"),
                            ("val_mse", "MSE", "{:.2e}"), ("train_recon", "train", "{:.3g}")):
        value = best.get(key)
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
        self.recon = figure(title="Reconstruction loss", y_axis_type="log", **common)
        x_range = self.recon.x_range
        self.adversary = figure(title="Adversary accuracy (lower is better disentangled)",
                                x_range=x_range, y_range=Range1d(0, 1.02), **common)
        self.swapped = figure(title="Swapped reconstruction MSE (validation)", y_axis_type="log",
                              x_range=x_range, **common)
        self.rank1 = figure(title="Twin rank-1 fraction (validation)", x_range=x_range,
                            y_range=Range1d(0, 1.02), **common)
        kw = dict(line_width=2)
        self.recon.line("step", "recon", source=self.step, color=TRAIN_COLOUR, legend_label="training", **kw)
        self.recon.scatter("step", "val_mse", source=self.epoch, color=VAL_COLOUR, size=7,
                           legend_label="validation MSE")
        self.adversary.line("step", "adv_acc", source=self.step, color=TRAIN_COLOUR,
                            legend_label="training batches", **kw)
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

    @property
    def figures(self):
        return (self.recon, self.adversary, self.swapped, self.rank1)

    def clear(self) -> None:
        self.step.data = {c: [] for c in STEP_COLUMNS}
        self.epoch.data = {c: [] for c in EPOCH_COLUMNS}
        self.chance.visible = False
        self.n_points = 0

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


class TrainingTab(pn.viewable.Viewer):
    """Launch and follow training runs (see the module docstring for the wiring)."""

    runs_dir = param.String(default="runs", doc="folder holding the run directories")
    data_dir = param.String(default="data", doc="datasets offered for training must lie in here")
    on_open = param.Callable(default=None, doc="called as on_open(run, model_dir) by 'Open in explorer'")
    defaults = param.Dict(default={}, doc="initial form values overriding TrainConfig's defaults")
    selected = param.String(default=None, allow_None=True, doc="name of the run this session shows")
    opened = param.Dict(default=None, allow_None=True,
                        doc="last run opened in the explorer: {'run', 'model', 'data'}")
    poll_period = param.Integer(default=1000, bounds=(100, None), doc="refresh period, ms")
    cpu_slots = param.Integer(default=1, bounds=(1, None), doc="CPU runs allowed at once (queue)")

    def __init__(self, **params):
        super().__init__(**params)
        self.manager = RunManager.shared(self.runs_dir, self.data_dir, cpu_slots=self.cpu_slots)
        self.manager.start_background(interval=min(1.0, self.poll_period / 1000))
        self._help = field_help()
        self._build_form()
        self._build_runs_view()
        self._records = None   # the manager's record list we have drawn from
        self._drawn = 0        # how many of its records are on the plots
        self._log_size = -1
        self._table_key = None
        runs = self.manager.list_runs(refresh=False)
        if self.selected is None and runs:
            active = [r for r in runs if r.status.get("state") in ("running", "queued")]
            self.selected = (active or runs)[0].name
        self._refresh()
        self._callback = None
        self._start_polling()

    # --- polling -----------------------------------------------------------------------------
    def _start_polling(self) -> None:
        self._callback = pn.state.add_periodic_callback(self._refresh, period=self.poll_period)
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(self._on_session_destroyed)

    def _on_session_destroyed(self, session_context) -> None:
        self._stop_polling()

    def _stop_polling(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def _refresh(self) -> None:
        """Bring the table and the selected run's view up to date (files only; cheap)."""
        self._refresh_table()
        self._refresh_selected()

    # --- the form ----------------------------------------------------------------------------
    def _build_form(self) -> None:
        initial = dataclasses.replace(TrainConfig(), **{k: v for k, v in self.defaults.items()
                                                        if k not in ("data", "val")})
        files = self.manager.data_files()
        self.name_input = pn.widgets.TextInput(label="Run name (optional)", placeholder="e.g. fader-lambda0.01",
                                               sizing_mode="stretch_width")
        data_default = self.defaults.get("data")
        self.data_select = pn.widgets.Select(
            label="Training data", options=files, sizing_mode="stretch_width",
            value=data_default if data_default in files else (files[0] if files else None),
            description=f"{self._help.get('data', '')} (files in {self.manager.data_dir})")
        val_options = {"(none)": ""} | {f: f for f in files}
        val_default = self.defaults.get("val")
        self.val_select = pn.widgets.Select(
            label="Validation data", options=val_options, sizing_mode="stretch_width",
            value=val_default if val_default in files else (files[1] if len(files) > 1 else ""),
            description=self._help.get("val"))
        present = devices()
        self.device_choice = pn.widgets.CheckButtonGroup(
            label="Devices", options={d.label: d.id for d in present},
            value=[present[0].id], variant="outline", color="primary",
            orientation="vertical", sizing_mode="stretch_width",
            description="one GPU, several GPUs (torchrun, one process each) or the CPU")
        self.fields: dict[str, pn.widgets.Widget] = {}
        for name in FORM_FIELDS:
            self.fields[name] = self._widget_for(name, getattr(initial, name))
        self.launch_button = pn.widgets.Button(label="Launch", color="primary",
                                               sizing_mode="stretch_width")
        self.launch_button.on_click(self._on_launch)
        self.form_message = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        more = [w for n, w in self.fields.items() if n not in MAIN_FIELDS]
        self.form = pn.Column(
            pn.pane.Markdown("### New run", margin=(0, 10)),
            self.name_input, self.data_select, self.val_select,
            pn.pane.Markdown("**Device** (what this machine has)", margin=(5, 10, 0, 10)),
            self.device_choice,
            *[self.fields[n] for n in MAIN_FIELDS if n in self.fields],
            pn.Card(*more, title="More settings", collapsed=True, sizing_mode="stretch_width"),
            self.launch_button, self.form_message, width=330, styles={"overflow-y": "auto"})

    def _widget_for(self, name: str, value) -> pn.widgets.Widget:
        label = name.replace("_", " ").capitalize()
        kw = dict(label=label, description=self._help.get(name) or None, sizing_mode="stretch_width")
        if isinstance(value, bool):
            kw.pop("description")  # a Checkbox has no help tooltip
            return pn.widgets.Checkbox(value=value, **kw)
        if isinstance(value, int):
            return pn.widgets.IntInput(value=value, **kw)
        if isinstance(value, float):
            return pn.widgets.FloatInput(value=value, **kw)
        if isinstance(value, list):
            return pn.widgets.TextInput(value=",".join(str(v) for v in value), **kw)
        choices = list(field_choices().get(name) or [])
        if choices:
            options = choices if value in choices else [value] + choices
            return pn.widgets.Select(options=options, value=value, **kw)
        return pn.widgets.TextInput(value=str(value), **kw)

    def form_values(self) -> dict:
        """The form as a config dict (lists parsed; problems raise RunError)."""
        values, problems = {}, []
        defaults = TrainConfig()
        for name, widget in self.fields.items():
            value = widget.value
            if isinstance(getattr(defaults, name), list):
                try:
                    value = [int(v) for v in str(value).replace(" ", "").split(",") if v]
                except ValueError:
                    problems.append(f"{name}: {widget.value!r} must be comma-separated whole numbers")
                    continue
            if value is None:
                problems.append(f"{name}: no value")
                continue
            values[name] = value
        values["data"] = self.data_select.value or ""
        values["val"] = self.val_select.value or None
        if problems:
            raise RunError("; ".join(problems), problems)
        return values

    def _on_launch(self, event=None) -> Run | None:
        try:
            config = self.form_values()
            name = self.name_input.value.strip() or None
            run = self.manager.launch(config, name=name, devices=list(self.device_choice.value))
        except RunError as exc:
            items = "\n".join(f"- {html.escape(p)}" for p in exc.problems)
            self.form_message.param.update(object=f"**Not launched:**\n\n{items}", alert_type="danger",
                                           visible=True)
            return None
        state = run.status.get("state")
        self.form_message.param.update(
            object=f"Launched **{run.name}** ({state}{' — waiting for its device' if state == 'queued' else ''}).",
            alert_type="success", visible=True)
        self.name_input.value = ""
        self.selected = run.name
        self._refresh_soon()
        return run

    # --- runs table and the selected run -----------------------------------------------------
    def _build_runs_view(self) -> None:
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["run", "state", "started", "duration", "progress", "devices", "best"]),
            show_index=False, disabled=True, selectable=1, height=190, sizing_mode="stretch_width",
            layout="fit_data_stretch", pagination=None)
        self.table.param.watch(self._on_table_selection, "selection")
        self.title = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.progress = pn.indicators.Progress(value=0, max=1000, bar_color="primary",
                                               sizing_mode="stretch_width", height=18, margin=(5, 10))
        self.progress_text = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger",
                                               width=120, disabled=True)
        self.cancel_button.on_click(self._on_cancel)
        self.open_button = pn.widgets.Button(label="Open in explorer", color="success",
                                             width=170, disabled=True)
        self.open_button.on_click(self._on_open)
        self.run_message = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        self.curves = LossCurves()
        self.plots = pn.GridBox(*[pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in self.curves.figures],
                                ncols=2, sizing_mode="stretch_width")
        self.log = pn.pane.HTML("", sizing_mode="stretch_width", name="Log",
                                styles={"max-height": "220px", "overflow-y": "auto", "font-size": "12px",
                                        # column-reverse keeps the newest lines in view
                                        "display": "flex", "flex-direction": "column-reverse",
                                        "background": "#f7f7f7", "border": "1px solid #ddd"})

    def _refresh_table(self) -> None:
        rows = []
        for info in self.manager.summaries():
            started = info["started"]
            rows.append({"run": info["name"],
                         "state": "failed (lost)" if info["lost"] else info["state"],
                         "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
                         "duration": _duration(info["duration"]),
                         "progress": f"{info['progress']:.0%}" if info["total_steps"] else "",
                         "devices": ", ".join(info["devices"]), "best": _best_text(info["best"])})
        df = pd.DataFrame(rows, columns=["run", "state", "started", "duration", "progress", "devices", "best"])
        key = df.to_json()
        if key == self._table_key:
            return
        self._table_key = key
        self.table.value = df
        self._sync_table_selection()

    def _sync_table_selection(self) -> None:
        names = list(self.table.value["run"]) if len(self.table.value) else []
        wanted = [names.index(self.selected)] if self.selected in names else []
        if self.table.selection != wanted:
            self.table.selection = wanted

    def _on_table_selection(self, event) -> None:
        if event.new:
            name = self.table.value["run"].iloc[event.new[0]]
            if name != self.selected:
                self.selected = name

    @param.depends("selected", watch=True)
    def _on_selected(self) -> None:
        # Forgetting what was drawn makes the next refresh clear the curves and redraw.
        self._records, self._drawn, self._log_size = None, 0, -1
        self.run_message.visible = False
        self._sync_table_selection()
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        """Refresh from a widget event. Bokeh models (the curves' data sources) may only be
        changed while the session's document is locked, which Bokeh does for the callbacks it
        schedules (next tick, periodic) but not for Panel's widget events."""
        in_session(self._refresh)

    def _selected_run(self) -> Run | None:
        if not self.selected:
            return None
        run = Run(self.manager, self.selected)
        return run if run.path.is_dir() else None

    def _refresh_selected(self) -> None:
        run = self._selected_run()
        if run is None:
            self.title.object = "### No run selected\nLaunch one with the form, or pick one in the table."
            self.progress.value, self.progress_text.object = 0, ""
            self.cancel_button.disabled = self.open_button.disabled = True
            return
        info = run.summary()
        state = info["state"]
        self.title.object = f"### {html.escape(run.name)} — {state}" + (" (process lost)" if info["lost"] else "")
        self.progress.value = int(round(info["progress"] * 1000))
        step, total = info["step"], info["total_steps"]
        parts = [f"step {step} / {total}" if total else ("waiting for a free device" if state == "queued"
                                                          else "starting…" if state == "running" else "")]
        if info["epoch"] is not None and total:
            parts.append(f"epoch {info['epoch']}")
        if info["duration"] is not None:
            parts.append(f"elapsed {_duration(info['duration'])}")
        if info["eta"] is not None:
            parts.append(f"ETA {_duration(info['eta'])}")
        self.progress_text.object = " · ".join(p for p in parts if p)
        self.cancel_button.disabled = state not in ("queued", "running")
        self.open_button.disabled = not (run.has_model or run.has_checkpoint)
        if state == "failed" and info["error"] and not self.run_message.visible:
            error = info["error"].strip().splitlines()
            self.run_message.param.update(
                object=f"**Failed:** {html.escape(error[0])}" + (
                    f"<pre style='white-space:pre-wrap;font-size:11px'>{html.escape(chr(10).join(error[1:])[-1500:])}</pre>"
                    if len(error) > 1 else ""), alert_type="danger", visible=True)
        self._refresh_metrics(run)
        self._refresh_log(run)

    def _refresh_metrics(self, run: Run) -> None:
        records = self.manager.metrics(run)
        if records is not self._records or len(records) < self._drawn:  # a new or rewritten file
            self._records, self._drawn = records, 0
            self.curves.clear()
        new = records[self._drawn:]
        if new:
            self.curves.add(new)
            self._drawn += len(new)

    def _refresh_log(self, run: Run) -> None:
        try:
            size = run.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size == self._log_size:
            return
        self._log_size = size
        self.log.object = (f"<pre style='margin:4px;white-space:pre-wrap'>"
                           f"{html.escape(run.log_tail(30)) or '(no output yet)'}</pre>")

    # --- actions -----------------------------------------------------------------------------
    def _on_cancel(self, event=None) -> None:
        run = self._selected_run()
        if run is None:
            return
        self.manager.cancel(run, grace=30.0)
        self.run_message.param.update(object=f"Cancelling **{html.escape(run.name)}**: it saves a checkpoint "
                                      "and stops.", alert_type="warning", visible=True)
        self._refresh_soon()

    def _on_open(self, event=None) -> None:
        run = self._selected_run()
        if run is None:
            return
        model_dir = run.model_for_explorer()
        if model_dir is None:
            self.run_message.param.update(object="This run has not saved a model yet; try again after its "
                                          "first checkpoint.", alert_type="warning", visible=True)
            return
        data = run.config.get("val") or run.config.get("data")
        try:
            if self.on_open is not None:
                self.on_open(run, model_dir)
        except Exception as exc:  # shown to the user; the app stays usable
            self.run_message.param.update(object=f"**Could not open {html.escape(run.name)}:** "
                                          f"{html.escape(str(exc))}", alert_type="danger", visible=True)
            return
        self.opened = {"run": run.name, "model": str(model_dir), "data": data}
        which = "latest checkpoint" if model_dir.name.startswith("snapshot-") else "best model"
        self.run_message.param.update(object=f"Opened the {which} of **{html.escape(run.name)}** in the explorer.",
                                      alert_type="success", visible=True)

    def __panel__(self):
        actions = pn.Row(self.cancel_button, self.open_button, sizing_mode="stretch_width")
        detail = pn.Column(self.title, self.progress, self.progress_text, actions, self.run_message,
                           self.plots, pn.pane.Markdown("**Log**", margin=(0, 10)), self.log,
                           sizing_mode="stretch_width")
        help_text = pn.pane.Markdown(
            "Train a fader network in the background. Runs keep going when you close the page; "
            "every visitor sees the same runs. One run per GPU at a time (and "
            f"{self.manager.cpu_slots} on the CPU): later launches wait as *queued*.", sizing_mode="stretch_width", styles={"color": "#555"})
        return pn.Row(self.form, pn.Column(help_text, self.table, detail, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width", name="Training")
