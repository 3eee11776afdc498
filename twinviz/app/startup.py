"""The bundled demo's first start: a page that says what is being built, while it is built.

``panel serve app.py`` with no arguments opens the demo, whose cache (``data/cache``) a fresh
clone does not have. Building it inside the first page request left the visitor with a blank tab
and the log silent. Instead, :func:`demo_progress_page` returns (when the cache is incomplete) a
page listing the build's steps, runs the build once per process on a background thread
(``twinviz.demo.ensure_demo``, which also logs each step), and reloads every waiting page when
it is done — the reload then gets the explorer at once.
"""
from __future__ import annotations

import html
import threading
import time

import panel as pn

__all__ = ["demo_progress_page", "POLL_MS"]

POLL_MS = 500  # how often a waiting page looks at the build's progress
_lock = threading.Lock()
_build = {"thread": None, "steps": [], "error": None, "done": False, "started": None}


def _run_build() -> None:
    from twinviz.demo import ensure_demo

    def on_step(text: str) -> None:
        with _lock:
            _build["steps"].append((time.monotonic() - _build["started"], text))

    try:
        ensure_demo(on_step=on_step)
    except Exception as exc:  # noqa: BLE001 - shown on the page; the reload then shows the error page
        with _lock:
            _build["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with _lock:
            _build["done"] = True


def _start_build() -> None:
    with _lock:
        if _build["thread"] is None:
            _build["started"] = time.monotonic()
            _build["thread"] = threading.Thread(target=_run_build, name="twinviz-demo-build", daemon=True)
            _build["thread"].start()


def _progress_text() -> tuple[str, bool]:
    with _lock:
        steps, error, done = list(_build["steps"]), _build["error"], _build["done"]
    lines = [f"- {t:5.1f} s — {html.escape(text)}" for t, text in steps] or ["- starting …"]
    head = ("### Preparing the bundled demo (first start)\n\nThe demo's spectra and derived files are "
            "built once and cached in `data/cache/`; this page reloads by itself when they are ready.\n\n")
    if error:
        lines.append(f"- **failed:** {html.escape(error)}")
    return head + "\n".join(lines), done


def demo_progress_page(inputs: dict):
    """A progress page while the demo's cache is built, or None (explicit paths, or the cache is
    complete: build the explorer as usual)."""
    if any(inputs.get(k) for k in ("model", "data", "latents")):
        return None
    from twinviz.demo import demo_ready

    with _lock:
        done = _build["done"]
    if done or demo_ready():
        return None
    _start_build()
    from twinviz.app.layout import _template
    from twinviz.app.session import current_document, pin_resource_urls
    from twinviz.app.theme import ensure_extensions

    ensure_extensions()
    pin_resource_urls(current_document())
    text, _ = _progress_text()
    pane = pn.pane.Markdown(text, sizing_mode="stretch_width", css_classes=["tv-demo-progress"])
    page = _template(pn.Column(pane, sizing_mode="stretch_width"))

    def poll():
        pane.object, finished = _progress_text()
        if finished and pn.state.location is not None:
            callback.stop()
            pn.state.location.reload = True  # the next request builds the explorer from the cache

    callback = pn.state.add_periodic_callback(poll, period=POLL_MS, start=False)
    pn.state.onload(callback.start)
    return page
