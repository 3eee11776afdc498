"""The training tab: launch, follow, cancel and open training runs from the app.

Public API (for ``layout.py``)::

    tab = TrainingTab(runs_dir="runs", data_dir="data", on_open=callback)
    tab.servable()   # or add it to the layout's tabs: pn.Tabs(("Training", tab), ...)

``on_open(run, model_dir)`` is called when the user presses "Open in explorer": ``run`` is a
:class:`twinviz.runs.Run` (its dataset: ``run.config["val"] or run.config["data"]``),
``model_dir`` a directory ``FaderNetwork.from_pretrained`` (and ``load_app_data(model=...)``)
can open — the best model of a finished run, or the latest checkpoint of a running one. When
the loading happens elsewhere, ``on_open`` returns a :class:`concurrent.futures.Future` that
completes once the model is shown (or fails with the reason); the tab says "Opening…" until
then and "Opened" only after. Once opened, the ``opened`` parameter is set
(``{"run", "model", "data"}``) for code that prefers ``tab.param.watch``. ``selected`` is the
name of the run this session looks at.

The form offers only valid spectra datasets of ``data_dir`` (``twinviz.runs.datasets``):
``defaults["data"]`` (the app passes the dataset it explores) is preselected, validation is
another file named like validation data, or none. Launch and Cancel are for visitors on the
serving machine unless remote launches are allowed (``twinviz.app.access``).

Sharing: the :class:`~twinviz.runs.RunManager` (one per runs/data folder per process) and
its single background polling thread are shared by every session, so runs are global and go
on when browsers close. A tab has no timer of its own: it subscribes to the manager's
:class:`~twinviz.app.runs_feed.RunsFeed`, which tells it (on its session's event loop) only when
a run changed, and it unsubscribes when its session ends. ``poll_period`` is how often that one
thread looks at the runs (the first tab of a runs folder sets it).
"""
from __future__ import annotations

import dataclasses
import html
import time
from concurrent.futures import Future

import pandas as pd
import panel as pn
import param

from twinviz.app import theme
from twinviz.app.access import training_access
from twinviz.app.runs_feed import RunsFeed
from twinviz.app.session import current_document, in_session, served
from twinviz.app.training_curves import LossCurves, best_text, duration_text
from twinviz.app.training_validation import epoch_rule, prepare_validation, sample_note
from twinviz.app.training_form import (FORM_FIELDS, MAIN_FIELDS, field_choices, field_help, parse_fields,
                                       widget_for)
from twinviz.runs import Run, RunError, RunManager, default_pair, devices
from twinviz.training.config import TrainConfig

__all__ = ["TrainingTab", "field_choices", "field_help"]

class TrainingTab(pn.viewable.Viewer):
    """Launch and follow training runs (see the module docstring for the wiring)."""

    runs_dir = param.String(default="runs", doc="folder holding the run directories")
    data_dir = param.String(default="data", doc="datasets offered for training must lie in here")
    on_open = param.Callable(default=None, doc="called as on_open(run, model_dir) by 'Open in explorer'")
    defaults = param.Dict(default={}, doc="initial form values overriding TrainConfig's defaults")
    selected = param.String(default=None, allow_None=True, doc="name of the run this session shows")
    opened = param.Dict(default=None, allow_None=True,
                        doc="last run opened in the explorer: {'run', 'model', 'data'}")
    poll_period = param.Integer(default=1000, bounds=(100, None), doc="how often the shared poller looks at the runs, ms")
    cpu_slots = param.Integer(default=1, bounds=(1, None), doc="CPU runs allowed at once (queue)")
    allow_remote = param.Boolean(default=None, allow_None=True,
                                 doc="let visitors on other machines launch and cancel runs "
                                     "(None: $TWINVIZ_ALLOW_REMOTE_TRAINING; see app/access.py)")

    def __init__(self, **params):
        super().__init__(**params)
        self.access = training_access(self.allow_remote)  # this session's client, decided once
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
        self.feed = RunsFeed.shared(self.manager)
        self._subscription = None
        self._subscribe()

    # --- following the runs (one shared poller: app/runs_feed.py) ----------------------------
    def _subscribe(self) -> None:
        doc = current_document()
        self._subscription = self.feed.subscribe(self._refresh, doc)
        if served(doc):
            doc.on_session_destroyed(self._on_session_destroyed)

    def _on_session_destroyed(self, session_context) -> None:
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self.feed.unsubscribe(self._subscription)
            self._subscription = None

    def _refresh(self) -> None:
        """Bring the table and the selected run's view up to date (files only; cheap)."""
        self._refresh_table()
        self._refresh_selected()

    # --- the form ----------------------------------------------------------------------------
    def _build_form(self) -> None:
        initial = dataclasses.replace(TrainConfig(), **{k: v for k, v in self.defaults.items()
                                                        if k not in ("data", "val")})
        self.name_input = pn.widgets.TextInput(label="Run name (optional)", placeholder="e.g. fader-lambda0.01",
                                               sizing_mode="stretch_width")
        # Only valid spectra datasets (headers checked: no latents caches, reports or ranks).
        datasets = self.manager.datasets()
        options = {d.label: d.path for d in datasets}
        data_default, val_default = default_pair(datasets, preferred=self.defaults.get("data"))
        if self.defaults.get("val") in options.values() and self.defaults["val"] != data_default:
            val_default = self.defaults["val"]
        self.data_select = pn.widgets.Select(
            label="Training data", options=options, value=data_default, sizing_mode="stretch_width",
            description=f"{self._help.get('data', '')} (spectra datasets in {self.manager.data_dir})")
        self.val_select = pn.widgets.Select(
            label="Validation data", options={"(none)": ""} | options, value=val_default or "",
            sizing_mode="stretch_width", description=self._help.get("val"))
        self.data_message = pn.pane.Alert(
            f"No spectra dataset in {html.escape(str(self.manager.data_dir))}. Make one with "
            f"`twinviz simulate --out {html.escape(str(self.manager.data_dir))}/train.nc`, then reload.",
            alert_type="warning", visible=not datasets, sizing_mode="stretch_width")
        # which epoch the run keeps, and the held-out split for data without twin groups
        self.rule_text = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10), name="epoch-rule")
        self._datasets, self._twin_metric = datasets, initial.twin_metric
        self.data_select.param.watch(self._show_epoch_rule, "value")
        self.val_select.param.watch(self._show_epoch_rule, "value")
        self._show_epoch_rule()
        present = devices()
        self.device_choice = pn.widgets.CheckButtonGroup(
            label="Devices", options={d.label: d.id for d in present},
            value=[present[0].id], variant="outline", color="primary",
            orientation="vertical", sizing_mode="stretch_width",
            description="one GPU, several GPUs (torchrun, one process each) or the CPU")
        self.fields: dict[str, pn.widgets.Widget] = {}
        for name in FORM_FIELDS:
            self.fields[name] = widget_for(name, getattr(initial, name), self._help.get(name))
        self.launch_button = pn.widgets.Button(label="Launch", color="primary", sizing_mode="stretch_width",
                                               disabled=not self.access.allowed)
        self.launch_button.on_click(self._on_launch)
        self.form_message = pn.pane.Alert("", alert_type="light", visible=False, sizing_mode="stretch_width")
        # Why Launch (and Cancel) are disabled for this visitor (twinviz/app/access.py).
        self.access_message = pn.pane.Alert(html.escape(self.access.reason), alert_type="warning",
                                            visible=not self.access.allowed, sizing_mode="stretch_width",
                                            css_classes=["tv-access-refused"])
        more = [w for n, w in self.fields.items() if n not in MAIN_FIELDS]
        self.form = pn.Column(
            pn.pane.Markdown("### New run", margin=(0, 10)),
            self.access_message, self.name_input, self.data_select, self.val_select, self.rule_text,
            self.data_message,
            pn.pane.Markdown("**Device** (what this machine has)", margin=(5, 10, 0, 10)),
            self.device_choice,
            *[self.fields[n] for n in MAIN_FIELDS if n in self.fields],
            pn.Card(*more, title="More settings", collapsed=True, sizing_mode="stretch_width"),
            self.launch_button, self.form_message, width=330, styles={"overflow-y": "auto"})

    def _show_epoch_rule(self, *events) -> None:
        self.rule_text.object = epoch_rule(self._datasets, self.data_select.value, self.val_select.value or None,
                                           self._twin_metric)

    def form_values(self) -> dict:
        """The form as a config dict (lists parsed; problems raise RunError)."""
        values, problems = parse_fields(self.fields)
        values["data"] = self.data_select.value or ""
        values["val"] = self.val_select.value or None
        if problems:
            raise RunError("; ".join(problems), problems)
        return values

    def _refused(self, message_pane) -> bool:
        """Whether this session may not start or stop processes; says so in ``message_pane``.
        Checked here, on the server, whatever the browser shows (twinviz/app/access.py)."""
        if self.access.allowed:
            return False
        message_pane.param.update(object=f"**Not allowed:** {html.escape(self.access.reason)}",
                                  alert_type="danger", visible=True)
        return True

    def _on_launch(self, event=None) -> Run | None:
        if self._refused(self.form_message):
            return None
        try:
            config, split_note = prepare_validation(self.form_values(), self.manager.data_dir, self.manager.datasets())
            name = self.name_input.value.strip() or None
            run = self.manager.launch(config, name=name, devices=list(self.device_choice.value))
        except RunError as exc:
            items = "\n".join(f"- {html.escape(p)}" for p in exc.problems)
            self.form_message.param.update(object=f"**Not launched:**\n\n{items}", alert_type="danger",
                                           visible=True)
            return None
        state = run.status.get("state")
        self.form_message.param.update(
            object=f"Launched **{run.name}** ({state}{' — waiting for its device' if state == 'queued' else ''})."
                   + (f"\n\n{html.escape(split_note)}" if split_note else ""),
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
            layout="fit_data_fill", pagination=None, **theme.compact_table(wrap=("best", "run"), sort=True))
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
        # Two plots a row where they fit at 380 px or more, else one: in a 2-column grid at a
        # 1 100 px window each was ~200 px wide and its title cut.
        self.plots = pn.FlexBox(*[pn.pane.Bokeh(f, sizing_mode="stretch_width", min_width=380,
                                                styles={"flex": "1 1 380px"}) for f in self.curves.figures],
                                flex_wrap="wrap", sizing_mode="stretch_width")
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
                         "duration": duration_text(info["duration"]),
                         "progress": f"{info['progress']:.0%}" if info["total_steps"] else "",
                         "devices": ", ".join(info["devices"]),
                         "best": best_text(info["best"], info.get("twin_metric"))
                         + (sample_note(info) if info["best"] else "")})
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
        # The curves and the log first: Bokeh sends each change as its own message, so a page
        # that shows "done" in the title has already received every step record before it.
        self._refresh_metrics(run)
        self._refresh_log(run)
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
            parts.append(f"elapsed {duration_text(info['duration'])}")
        if info["eta"] is not None:
            parts.append(f"ETA {duration_text(info['eta'])}")
        self.progress_text.object = " · ".join(p for p in parts if p)
        self.cancel_button.disabled = state not in ("queued", "running") or not self.access.allowed
        self.open_button.disabled = not (run.has_model or run.has_checkpoint)
        if state == "failed" and info["error"] and not self.run_message.visible:
            error = info["error"].strip().splitlines()
            self.run_message.param.update(
                object=f"**Failed:** {html.escape(error[0])}" + (
                    f"<pre style='white-space:pre-wrap;font-size:11px'>{html.escape(chr(10).join(error[1:])[-1500:])}</pre>"
                    if len(error) > 1 else ""), alert_type="danger", visible=True)

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
        if run is None or self._refused(self.run_message):
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
        which = "latest checkpoint" if model_dir.name.startswith("snapshot-") else "best model"
        try:
            pending = self.on_open(run, model_dir) if self.on_open is not None else None
        except Exception as exc:  # shown to the user; the app stays usable
            self._open_finished(run, model_dir, data, which, exc)
            return
        if not isinstance(pending, Future):
            self._open_finished(run, model_dir, data, which, None)
            return
        # Loading runs elsewhere: say "Opened" only once the model is in the explorer.
        self.run_message.param.update(object=f"Opening the {which} of **{html.escape(run.name)}** (loading the "
                                      "model and encoding its data)…", alert_type="info", visible=True)
        doc = current_document()  # the future may complete in a worker thread

        def finished(future: Future) -> None:
            error = future.exception()
            in_session(lambda: self._open_finished(run, model_dir, data, which, error), doc)

        pending.add_done_callback(finished)

    def _open_finished(self, run: Run, model_dir, data, which: str, error) -> None:
        if error is not None:
            self.run_message.param.update(object=f"**Could not open {html.escape(run.name)}:** "
                                          f"{html.escape(str(error))}", alert_type="danger", visible=True)
            return
        self.opened = {"run": run.name, "model": str(model_dir), "data": data}
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
        # The runs table and the run's detail need ~600 px: beside the form where the window
        # allows, below it otherwise (their columns and plot titles were cut at 1 100 px).
        return pn.FlexBox(self.form, pn.Column(help_text, self.table, detail, sizing_mode="stretch_width",
                                               min_width=600, styles={"flex": "1 1 600px"}),
                          flex_wrap="wrap", align_items="flex-start", sizing_mode="stretch_width", name="Training")
