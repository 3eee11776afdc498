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

import math

__all__ = ["LabelsInUrl", "LABEL_FORMATS", "sync_query"]

#: ExplorerState parameter → (URL query name, format): the sliders' own resolution (10 K,
#: 0.01 dex) with a digit to spare, not the float32 noise of the model's label scaling.
LABEL_FORMATS = {"teff": ("teff", "{:.1f}"), "logg": ("logg", "{:.3f}")}


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

    location.sync(target, parameters, on_error=apply_each)


class LabelsInUrl:
    """Keeps ``state``'s Teff/logg in ``location``'s query, ``delay_ms`` after they last changed."""

    def __init__(self, location, state, doc, delay_ms: int = 1000):
        self.location, self.state, self.doc, self.delay_ms = location, state, doc, delay_ms
        self._pending = None
        self._apply_url()
        self._write()
        self._watcher = state.param.watch(self._changed, list(LABEL_FORMATS))

    def _apply_url(self) -> None:
        query = self.location.query_params
        values = {}
        for name, (key, _) in LABEL_FORMATS.items():
            try:
                value = float(query[key])
            except (KeyError, TypeError, ValueError):
                continue  # absent or not a number: the state keeps its own
            if math.isfinite(value):
                values[name] = value
        if values:
            try:
                self.state.param.update(**values)
            except ValueError:  # outside the slider's bounds: keep the state's
                pass

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
