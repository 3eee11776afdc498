"""Shared fixtures of the browser tests: Playwright drives Debian's Chromium (never a
downloaded browser) against Panel apps served on a free localhost port.

- ``browser_type_launch_args``: pytest-playwright's launch options with /usr/bin/chromium.
- ``serve(app) -> url``: serve a Panel app (an object, or a function called per session) in
  a thread; every server is killed after the test (``pn.state.kill_all_servers``).
- ``console_errors``: browser console errors and page errors of the test's ``page``; the test
  fails at teardown if any were seen (a test may also assert on the list itself).
- ``server_errors``: ERROR log records of panel/bokeh/tornado/twinviz (tracebacks of
  callbacks), failing the test at teardown likewise.
- ``artifacts``: the git-ignored ``test-artifacts/`` folder for screenshots.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/ui/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt install chromium); browser tests never download one")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS,
            "headless": True}


@pytest.fixture(autouse=True)
def _panel_cleanup():
    """Stop every server a test started and reset Panel's global state (else pytest hangs at
    exit on the servers' threads)."""
    yield
    import panel as pn

    pn.state.kill_all_servers()
    pn.state.reset()


@pytest.fixture
def serve():
    """``serve(app) -> "http://localhost:PORT"``; ``app`` may be a function (one call per
    session) or a Panel object."""
    from panel.tests.util import serve_and_wait

    def _serve(app, **kwargs) -> str:
        port = serve_and_wait(app, **kwargs)
        return f"http://localhost:{port}"

    return _serve


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield errors
    assert not errors, "browser console errors:\n" + "\n".join(errors)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def server_errors():
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in ("panel", "bokeh", "tornado", "twinviz")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)
    shown = [handler.format(r) for r in handler.records]
    assert not shown, "server errors:\n" + "\n".join(shown)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
