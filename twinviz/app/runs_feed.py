"""One poller of the training runs per server process, shared by every session.

The :class:`~twinviz.runs.RunManager` of a runs folder already polls from one daemon thread
(``start_background``). :class:`RunsFeed` listens to that thread: after each poll it reduces what
the runs tables and plots show to a small signature (states, steps, best values, sizes of the
metrics and log files) and, only when that signature changed, hands each subscribed session its
refresh callback on the session's own event loop (:func:`twinviz.app.session.in_session`, i.e.
``doc.add_next_tick_callback``, which Bokeh allows from other threads).

So an idle page costs nothing: no periodic callback per session (Panel counts each run of one as
"busy" for every open page's indicator), and nothing is sent while no run changes. Sessions
unsubscribe when they are destroyed; callbacks are held through weak references as well, so a
view that is gone (a closed notebook cell, a test) drops out on its own.
"""
from __future__ import annotations

import itertools
import logging
import threading
import weakref
from pathlib import Path

from twinviz.app.session import in_session
from twinviz import files as runfiles

log = logging.getLogger(__name__)

__all__ = ["RunsFeed"]


def _weak(callback):
    """A callable returning the callback (or None once its object is gone)."""
    try:
        return weakref.WeakMethod(callback)
    except TypeError:  # a plain function or lambda: held strongly
        return lambda: callback


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


class RunsFeed:
    """Tells subscribed sessions when anything about the runs of one manager changed."""

    _feeds: dict[int, "RunsFeed"] = {}
    _feeds_lock = threading.Lock()

    def __init__(self, manager):
        self.manager = manager
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple] = {}  # token → (weak callback, document or None)
        self._tokens = itertools.count(1)
        self._signature = None
        self.notifications = 0  # how many times subscribers were told (tests, benchmarks)
        manager.add_poll_listener(self.check)

    @classmethod
    def shared(cls, manager) -> "RunsFeed":
        """The one feed of ``manager`` in this process."""
        with cls._feeds_lock:
            feed = cls._feeds.get(id(manager))
            if feed is None or feed.manager is not manager:
                feed = cls._feeds[id(manager)] = cls(manager)
            return feed

    # --- subscribers -------------------------------------------------------------------------
    def subscribe(self, callback, doc=None) -> int:
        """Call ``callback()`` on ``doc``'s event loop whenever the runs change (now, on the
        polling thread, when ``doc`` is not served). Returns the token for :meth:`unsubscribe`."""
        token = next(self._tokens)
        with self._lock:
            self._subscribers[token] = (_weak(callback), doc)
        return token

    def unsubscribe(self, token) -> None:
        with self._lock:
            self._subscribers.pop(token, None)

    @property
    def n_subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    # --- polling -----------------------------------------------------------------------------
    def signature(self) -> tuple:
        """What the Training tab shows of every run, in a form cheap to compare."""
        rows = []
        for info in self.manager.summaries():
            path = self.manager.runs_dir / info["name"]
            duration = info["duration"]
            rows.append((info["name"], info["state"], info["lost"], info["step"], info["total_steps"],
                         info["epoch"], repr(sorted(info["best"].items())), info["error"],
                         None if duration is None else int(duration), info["finished"],
                         _size(path / runfiles.METRICS), _size(path / runfiles.LOG)))
        return tuple(rows)

    def check(self) -> bool:
        """Compare the runs with the last look; tell every subscriber when they changed.
        Called by the manager's polling thread after each poll; returns whether it told them."""
        signature = self.signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self.notify()
        return True

    def notify(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers.items())
        self.notifications += 1
        for token, (ref, doc) in subscribers:
            callback = ref()
            if callback is None:
                self.unsubscribe(token)
                continue
            try:
                in_session(callback, doc)
            except Exception:  # a session that went away between two polls
                log.debug("dropping a runs subscriber", exc_info=True)
                self.unsubscribe(token)
