"""The Training tab's option widgets, generated from TrainConfig's field declarations
(:mod:`twinviz.options`), and the parsing of their values back into a config dict."""
from __future__ import annotations

import panel as pn

from twinviz.options import meta, options_of
from twinviz.training.config import TrainConfig

__all__ = ["FORM_FIELDS", "MAIN_FIELDS", "field_choices", "field_help", "parse_fields", "widget_for"]

# Which fields the form shows, their help and their choices come from TrainConfig's field
# declarations (twinviz.options): "main" ones up front, "more" ones in a collapsed "More
# settings" card; data/val/out/device/progress (form=None) are set by the dataset pickers, the
# device choice and the run manager.
MAIN_FIELDS = tuple(f.name for f in options_of(TrainConfig) if meta(f, "form") == "main")
FORM_FIELDS = tuple(f.name for f in options_of(TrainConfig) if meta(f, "form"))


def field_help() -> dict[str, str]:
    """One line of help per TrainConfig field: the same declaration ``twinviz train --help``
    prints, so the form and the command line never disagree."""
    return {f.name: meta(f, "help") for f in options_of(TrainConfig)}


def field_choices() -> dict[str, tuple]:
    """The allowed values of every TrainConfig field that has a fixed set of them."""
    return {f.name: meta(f, "choices") for f in options_of(TrainConfig) if meta(f, "choices")}


def widget_for(name: str, value, help_text: str | None = None) -> pn.widgets.Widget:
    """The form widget of one TrainConfig field, from its default value's type and choices."""
    label = name.replace("_", " ").capitalize()
    kw = dict(label=label, description=help_text or None, sizing_mode="stretch_width")
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


def parse_fields(fields: dict) -> tuple[dict, list[str]]:
    """The values of the option widgets (lists parsed) and the problems found."""
    values, problems = {}, []
    defaults = TrainConfig()
    for name, widget in fields.items():
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
    return values, problems
