"""The Teff/logg sliders in the page URL, written once the sliders rest.

Panel's ``Location.sync`` rewrites the URL on every change of a synced parameter. For the swap
explorer's sliders that is every step: one more message to the browser per step, which the
browser answers with the new ``href`` — a round trip inside the step the visitor is waiting on
(measured: it reached the page before the step's data). Here the labels reach the URL
``delay_ms`` after the last step instead; the rest of the selection (star, twin, tab, …) stays
with ``Location.sync``. Reading works as with ``sync``: labels in the URL a page opens with are
applied to the state first.
"""
from __future__ import annotations

import json
import logging
import math
from urllib.parse import parse_qsl, urlencode

__all__ = ["LabelsInUrl", "LABEL_FORMATS", "raw_query", "sync_query"]

#: ExplorerState parameter → (URL query name, format): the sliders' own resolution (10 K,
#: 0.01 dex) with a digit to spare, not the float32 noise of the model's label scaling.
LABEL_FORMATS = {"teff": ("teff", "{:.1f}"), "logg": ("logg", "{:.3f}")}
#: How far past a slider's end a URL value may lie and still mean the end: the rounding of its
#: format (a slider at 5499.98 K is written "5500.0").
LABEL_TOLERANCE = {"teff": 0.05, "logg": 0.0005}


def raw_query(location) -> dict[str, str]:
    """The page's query as the strings in the address (Panel's ``query_params`` turns "-1" into
    -1.0 and drops values that start with "[", such as ``colour=[Fe/H]``)."""
    return dict(parse_qsl((location.search or "").lstrip("?"), keep_blank_values=False))


def keep_query_strings(location) -> None:
    """Make ``location.update_query`` merge into the address's own strings.

    Panel's ``update_query`` re-encodes the whole query from ``query_params``: every later
    change wrote ``twin=-1.0`` for ``twin=-1`` and dropped ``colour=[Fe/H]`` (it cannot parse
    it), so a permalink lost its colouring as soon as a slider moved."""
    if getattr(location, "_tv_raw_update", False):
        return

    def update_query(**kwargs):
        query = raw_query(location)
        query.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in kwargs.items() if v is not None})
        location.search = "?" + urlencode(query)

    location.update_query = update_query
    location._tv_raw_update = True
    _quiet_panel_parse_warning()


class _UnparsedQueryFilter:
    """Drops Panel's "Could not parse value … of query parameter" warnings: the app reads those
    values as strings itself (``raw_query``)."""

    def filter(self, record) -> bool:
        return "of query parameter" not in record.getMessage()


def _quiet_panel_parse_warning() -> None:
    logger = logging.getLogger("panel.util")
    if not any(isinstance(f, _UnparsedQueryFilter) for f in logger.filters):
        logger.addFilter(_UnparsedQueryFilter())


def sync_query(location, target, parameters: dict) -> None:
    """``location.sync(target, parameters)``, but a bad value in the URL drops only itself.

    Panel applies a page's query to the synced object in one update, and a value the object
    refuses (``?rank=bogus``, ``?k=-3``, a star id not in the data) stops that update where it
    stands — the good parameters after it in a hand-edited or stale permalink were lost. Here
    each value is then tried on its own; the ones refused keep the object's own value.
    """

    def apply_each(mapped: dict) -> None:
        for name, value in mapped.items():
            try:
                target.param.update(**{name: value})
            except Exception:  # noqa: BLE001 - any refusal: keep the current value
                continue

    keep_query_strings(location)
    raw = raw_query(location)  # before sync writes the object's values into the address
    parsed = location.query_params
    location.sync(target, parameters, on_error=apply_each)
    # Values Panel could not parse (``colour=[Fe/H]``): string parameters take them as written.
    unparsed = {name: raw[key] for name, key in parameters.items()
                if key in raw and key not in parsed and _is_string(target, name)}
    apply_each(unparsed)


def _is_string(target, name: str) -> bool:
    import param

    return isinstance(target.param[name], param.String)


class LabelsInUrl:
    """Keeps ``state``'s Teff/logg in ``location``'s query, ``delay_ms`` after they last changed."""

    def __init__(self, location, state, doc, delay_ms: int = 1000):
        self.location, self.state, self.doc, self.delay_ms = location, state, doc, delay_ms
        self._pending = None
        self._apply_url()
        self._write()
        self._watcher = state.param.watch(self._changed, list(LABEL_FORMATS))

    def _apply_url(self) -> None:
        keep_query_strings(self.location)
        query = raw_query(self.location)
        values = {}
        for name, (key, _) in LABEL_FORMATS.items():
            try:
                value = float(query[key])
            except (KeyError, TypeError, ValueError):
                continue  # absent or not a number: the state keeps its own
            if not math.isfinite(value):
                continue
            lo, hi = self.state.param[name].bounds or (-math.inf, math.inf)
            tol = LABEL_TOLERANCE[name]
            if lo - tol <= value <= hi + tol:  # the format's rounding at a slider's end
                values[name] = min(max(value, lo), hi)
        if values:  # together, so that the star's watcher keeps both
            self.state.param.update(**values)

    def _write(self) -> None:
        self._pending = None
        self.location.update_query(**{key: fmt.format(getattr(self.state, name))
                                      for name, (key, fmt) in LABEL_FORMATS.items()})

    def _changed(self, *events) -> None:
        if self.doc is None:  # no session loop to wait on (tests, notebooks)
            self._write()
            return
        self._cancel()
        self._pending = self.doc.add_timeout_callback(self._write, self.delay_ms)

    def _cancel(self) -> None:
        if self._pending is not None:
            try:
                self.doc.remove_timeout_callback(self._pending)
            except ValueError:  # it has just run
                pass
            self._pending = None

    def stop(self) -> None:
        """Stop following the state (another model was opened)."""
        self.state.param.unwatch(self._watcher)
        self._cancel()
