"""The demo's first start on a fresh clone (no data/cache): the page and the log say what is
being built, the committed derived files are used (no encoding, no UMAP, no evaluation), and the
page turns into the explorer by itself. Chromium against `panel serve app.py` (no arguments)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.ui.conftest import REPO, _free_port
from twinviz.testing import wait_for

pytestmark = pytest.mark.ui


@pytest.fixture
def fresh_demo(tmp_path):
    """A copy of the committed data/demo with no cache: what a fresh clone has."""
    shutil.copytree(REPO / "data" / "demo", tmp_path / "demo")
    return tmp_path


def test_the_first_start_shows_its_progress_and_uses_the_committed_files(page, fresh_demo, tmp_path,
                                                                         console_errors, artifacts):
    port = _free_port()
    log_path = tmp_path / "panel.log"
    env = {**os.environ, "TWINVIZ_DATA_DIR": str(fresh_demo)}
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(port),
                                 "--allow-websocket-origin", f"localhost:{port}"],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://localhost:{port}/app"

            def answers():
                try:
                    with urllib.request.urlopen(url, timeout=60) as r:
                        return r.status == 200
                except OSError:
                    return False

            wait_for(answers, timeout=60)
            page.set_viewport_size({"width": 1400, "height": 900})
            page.goto(url)
            # the page either still shows the build's steps, or has already reloaded into the explorer
            progress = page.get_by_text("Preparing the bundled demo")
            progress.or_(page.locator(".noUi-handle")).first.wait_for(timeout=30_000)
            if progress.count():
                page.screenshot(path=str(artifacts / "demo_first_start_progress.png"))
            page.wait_for_selector(".noUi-handle", timeout=120_000)  # reloaded by itself when ready
            seconds = time.monotonic() - started
            page.screenshot(path=str(artifacts / "demo_first_start_explorer.png"))
            text = log_path.read_text()
            assert "demo: synthesising the demo's 4,000 spectra" in text, text
            assert "demo: copying the committed latents" in text, text
            assert "encoding the spectra" not in text, text  # the committed derived files matched
            assert "Traceback" not in text, text
            assert (fresh_demo / "cache").is_dir()
            print(f"first start: explorer after {seconds:.1f} s (server start to slider drawn)")
        finally:
            proc.terminate()
            proc.wait(20)
