"""twinviz.app.session: a page closed mid-update leaves no traceback in the server's log."""
from __future__ import annotations

import asyncio
import gc
import logging

from tornado.websocket import WebSocketClosedError

from twinviz.app.session import quiet_closed_connections


def _unretrieved(exc: BaseException) -> list[logging.LogRecord]:
    """Run a loop with the handler installed, let a task fail with ``exc`` and drop it unretrieved;
    the log records asyncio and twinviz wrote."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger("asyncio"), logging.getLogger("twinviz.app")]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.DEBUG)

    async def fail():
        raise exc

    async def main():
        quiet_closed_connections()
        task = asyncio.ensure_future(fail())
        await asyncio.sleep(0.01)
        assert task.done()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
        gc.collect()  # the dropped task's destructor reports its exception to the handler
    finally:
        loop.close()
        for lg, level in zip(loggers, old_levels):
            lg.removeHandler(keep)
            lg.setLevel(level)
    return records


def test_a_write_to_a_closed_page_is_one_info_line():
    records = [r for r in _unretrieved(WebSocketClosedError()) if r.levelno >= logging.INFO]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "page closed" in records[0].getMessage()


def test_other_unretrieved_exceptions_still_log_their_traceback():
    records = _unretrieved(ValueError("a real bug"))
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert errors and "never retrieved" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ValueError


def test_a_served_page_is_built_on_the_servers_own_stylesheets(app_data):
    """While app.py builds a page, Panel addresses the stylesheets it shares between sessions by
    the document's resource URL; without one it picks the CDN, and concurrent visitors' pages
    then came up pointing at it (offline: unstyled). Every stylesheet of a page being built must
    already point at the server."""
    import urllib.request

    import panel as pn
    from bokeh.models import ImportedStyleSheet
    from panel.tests.util import serve_and_wait

    from twinviz.app.layout import build_page

    urls: list[str] = []

    def app():
        page = build_page(app_data, sync_url=False, training=False)
        page.servable()  # the Bokeh models now exist, before Panel renders the page
        urls.extend(str(sheet.url) for model in pn.state.curdoc.models for sheet in getattr(model, "stylesheets", [])
                    if isinstance(sheet, ImportedStyleSheet))

    port = serve_and_wait(app)
    urllib.request.urlopen(f"http://localhost:{port}/", timeout=120).read()
    assert urls and not [u for u in urls if u.startswith("http")], sorted(set(urls))[:5]


def test_a_closed_session_leaves_none_of_its_objects_behind(app_data):
    """Memory comes back: once visitors leave and their sessions are discarded, nothing of their
    pages (selection state, views, template) stays reachable in the server."""
    import panel as pn
    from panel.tests.util import serve_and_wait, wait_until

    from twinviz.app.layout import build_page
    from twinviz.app.state import ExplorerState
    from twinviz.app.swap import SwapExplorer
    from twinviz.testing import visit

    def alive() -> int:
        gc.collect()
        return sum(type(o) in (ExplorerState, SwapExplorer, pn.template.BootstrapTemplate) for o in gc.get_objects())

    def app():
        build_page(app_data, sync_url=False, training=False).servable()

    before = alive()
    port = serve_and_wait(app, unused_session_lifetime_milliseconds=300, check_unused_sessions_milliseconds=100)
    visitors = [visit(f"http://localhost:{port}/") for _ in range(3)]
    assert alive() == before + 3 * 3  # each page: its state, its swap explorer, its template
    for visitor in visitors:
        visitor.close()
    wait_until(lambda: alive() == before, timeout=20_000, interval=200)
