"""Running code on a browser session's event loop: the one home of "next tick, or now".

Bokeh models may only change while their document is locked. Bokeh locks it for the callbacks
it schedules itself (next tick, periodic), not for Panel's widget events or for worker threads.
:func:`in_session` hands a callback to the session's loop when there is one, and otherwise
(a notebook, tests, plain Python) runs it at once. :func:`release_memory_soon` gives a
server's memory back once visitors have left. :func:`quiet_closed_connections` keeps a visitor
who closes the page mid-update from printing tracebacks in the server's log;
:func:`pin_resource_urls` keeps concurrent visitors' pages on the server's own stylesheets.
:func:`page_build` and :func:`keep_out_of_garbage_collection` make building a page cheaper.
"""
from __future__ import annotations

import gc
import logging
import threading
from contextlib import contextmanager

__all__ = ["current_document", "server_logging", "served", "in_session", "release_memory_soon", "quiet_closed_connections",
           "pin_resource_urls", "page_build", "keep_out_of_garbage_collection"]


def current_document():
    """The Bokeh document of the session this code runs for, or None outside a server.

    Take it in the callback that starts a worker thread: inside the thread ``pn.state.curdoc``
    is None (Panel keeps it in a context variable).
    """
    import panel as pn

    return pn.state.curdoc


def served(doc) -> bool:
    """Whether ``doc`` is a served session's document (not None, not a notebook's or a test's)."""
    return doc is not None and getattr(doc, "session_context", None) is not None


def in_session(callback, doc="current") -> None:
    """Run ``callback`` on ``doc``'s event loop with the document locked and ``pn.state.curdoc``
    set (``pn.state.location`` and ``notifications`` need it); run it now when the document is
    not served. ``doc`` defaults to the current session's document."""
    if doc == "current":
        doc = current_document()
    if not served(doc):
        callback()
        return
    from panel.io.state import set_curdoc

    def locked():
        with set_curdoc(doc):
            callback()

    doc.add_next_tick_callback(locked)


_release_lock = threading.Lock()
_release_timer: threading.Timer | None = None


RELEASE_DELAY_S = 2.0  # quiet time after the last closed session before memory is released


def release_memory_soon(delay: float = RELEASE_DELAY_S) -> None:
    """Once no session has closed for ``delay`` seconds: collect garbage and hand freed heap
    pages back to the system (glibc ``malloc_trim``), so a server's memory comes back after
    visitors leave. Many sessions closing together cost one pass. Thread-safe."""
    global _release_timer
    with _release_lock:
        if _release_timer is not None:
            _release_timer.cancel()
        _release_timer = threading.Timer(delay, _release_memory)
        _release_timer.daemon = True
        _release_timer.start()


def _release_memory() -> None:
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the collected memory is reused, not returned
        pass


_quiet_loops: set[int] = set()


def quiet_closed_connections() -> None:
    """On this thread's asyncio loop (the server's), report a write to a page that was closed
    meanwhile as one INFO line instead of asyncio's "Task exception was never retrieved"
    traceback. Panel writes some updates as separate websocket futures; when the visitor leaves
    before they are sent, nothing is lost (the page is gone) and the server goes on. Any other
    unhandled exception still reaches asyncio's default handler. Idempotent per loop."""
    import asyncio
    import logging

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if id(loop) in _quiet_loops:
        return
    _quiet_loops.add(id(loop))
    previous = loop.get_exception_handler()
    log = logging.getLogger("twinviz.app")

    def handler(loop, context):
        if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
            log.info("a page closed while the server was still sending to it: update dropped")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def pin_resource_urls(doc) -> None:
    """Give a served session's document the address of Panel's stylesheets before any of its
    models is built.

    Panel shares one stylesheet object per URL between all sessions of a process and rewrites
    its address for the document of the model being built — to the CDN when that document has
    no address yet, which is the case while ``app.py`` builds a page (Panel sets the address only
    when it renders the page afterwards). With several visitors opening pages together, one
    session's build so rewrote the shared stylesheets of another, already rendered page to CDN
    addresses: offline, every page but the first came up unstyled, with one failed request per
    stylesheet. Setting the address first (the same one Panel would set) keeps every rewrite
    local.
    """
    if not served(doc):
        return
    from panel.io.resources import get_dist_path

    doc.template_variables.setdefault("dist_url", get_dist_path())


@contextmanager
def page_build(doc="current"):
    """Build a served page with its document's model graph frozen: Bokeh recomputes the set of
    a document's models (a walk over every model) whenever a root is added, and Panel's
    template adds about ten roots per page; frozen, the walk runs once, when the block ends.
    Outside a server this does nothing."""
    if doc == "current":
        doc = current_document()
    if not served(doc):
        yield
        return
    with doc.models.freeze():
        yield


def keep_out_of_garbage_collection() -> None:
    """Exempt every object alive now from Python's cyclic garbage collector (``gc.freeze``).

    Called by a server once it has loaded what all its sessions share (the data, the model, the
    index, every imported library): otherwise each full collection, which building a page's
    thousands of objects triggers now and then, re-scans those millions of long-lived objects
    (about 0.15 s each on the demo). What is frozen is never collected, so this runs right
    after the first load, before any page of the session is built. Outside a server it does
    nothing."""
    global _frozen
    if _frozen or not served(current_document()):
        return
    _frozen = True  # once per process: the first load brings in nearly all that lives long
    gc.collect()
    gc.freeze()


_frozen = False


def server_logging() -> None:
    """Let twinviz's INFO lines (start-up progress, errors shown as pages) reach the server's log:
    ``panel serve`` configures a handler but leaves twinviz's loggers at WARNING."""
    logger = logging.getLogger("twinviz")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    # BokehJS counts the models a server patch added (a tab built when first shown) as new until
    # the browser's next patch, and sends such a model in full with its first event (the Metrics
    # tab's "compute metrics" click): the server keeps its own instance and warned "reference
    # already known" — harmless bookkeeping, not a fault of the page, so not logged.
    import warnings

    from bokeh.util.warnings import BokehUserWarning

    warnings.filterwarnings("ignore", message="reference already known", category=BokehUserWarning)
