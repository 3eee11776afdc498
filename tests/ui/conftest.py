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
        # scripts/setup.sh installs it; the README's test command runs that first.
        pytest.fail(f"{CHROMIUM} not found. Fix: run `bash scripts/setup.sh` or `apt-get install -y chromium` "
                    "(browser tests never download a browser)")
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


# --- `panel serve app.py` in a real subprocess (the explorer's browser tests) -------------------
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """A running ``panel serve app.py --args …``: ``url``, ``log()`` (its output so far),
    ``tracebacks()`` (server tracebacks / ERROR lines in it), ``stop()``."""

    def __init__(self, args, log_path: Path, timeout: float = 120.0):
        import subprocess
        import sys
        import time
        import urllib.request

        self.port = _free_port()
        self.url = f"http://localhost:{self.port}/app"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(self.port),
               "--allow-websocket-origin", f"localhost:{self.port}", "--args", *map(str, args)]
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"panel serve exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=timeout) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"panel serve did not answer within {timeout} s:\n{self.log()}")
                time.sleep(0.5)

    def log(self) -> str:
        if not self._log.closed:  # stop() closes it; the file keeps what the server wrote
            self._log.flush()
        return self.log_path.read_text()

    def tracebacks(self) -> list[str]:
        return [line for line in self.log().splitlines()
                if "Traceback" in line or " ERROR " in line or "Error running application handler" in line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
        self._log.close()


@pytest.fixture(scope="module")
def panel_serve(tmp_path_factory):
    """``panel_serve(*args) -> ServedApp`` for ``panel serve app.py --args *args``; stopped at
    the end of the module. Tests assert ``not app.tracebacks()`` themselves."""
    started = []

    def _start(*args, timeout: float = 120.0) -> ServedApp:
        app = ServedApp(args, tmp_path_factory.mktemp("served") / "panel.log", timeout)
        started.append(app)
        return app

    yield _start
    for app in started:
        app.stop()
