"""The swap explorer's slider path in a real browser: one slider step reaches the page as a
single Bokeh message carrying every changed column (binary float32), not one message per model;
the URL follows once the slider rests."""
from __future__ import annotations

import json

import pytest

from tests.ui.test_app import CHECKSUM_JS, _open, _slider_handle, sample, served  # noqa: F401  (fixtures)

pytestmark = pytest.mark.ui


def test_one_slider_step_is_one_message_with_every_changed_column(page, served, console_errors):  # noqa: F811
    frames: list[str | bytes] = []
    sent: list[str | bytes] = []

    def on_websocket(ws):
        ws.on("framereceived", lambda f: frames.append(f))
        ws.on("framesent", lambda f: sent.append(f))

    page.on("websocket", on_websocket)
    _open(page, served.url)
    handle, title = _slider_handle(page, "Teff (K)")
    handle.focus()
    before = page.evaluate(CHECKSUM_JS, ["tv-spectrum", "model"])
    frames.clear()
    sent.clear()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => Math.abs(({CHECKSUM_JS})(['tv-spectrum', 'model']) - {before}) > 1e-9",
                           timeout=10_000)
    # the URL follows once the slider rests, in its own later message (not one per step)
    teff = float(title.inner_text().split(":")[1])
    page.wait_for_function(f"() => new URLSearchParams(window.location.search).get('teff') === '{teff:.1f}'",
                           timeout=10_000)
    contents = [json.loads(f) for f in frames if isinstance(f, str) and f.startswith('{"events"')]
    with_data = [i for i, c in enumerate(contents) if any(e["kind"] == "ColumnDataChanged" for e in c["events"])]
    assert len(with_data) == 1, [contents[i]["events"] for i in with_data]
    with_search = [i for i, c in enumerate(contents) if any(e.get("attr") == "search" for e in c["events"])]
    assert len(with_search) == 1 and with_search[0] > with_data[0], contents
    events = contents[with_data[0]]["events"]
    columns = {name for e in events if e["kind"] == "ColumnDataChanged" for name in e["cols"]}
    assert {"model", "truth"} <= columns  # the spectrum panel and the residual's model column
    assert sum(e["kind"] == "ColumnDataChanged" for e in events) == 2
    # the title (with the step's MSE) travels in the same message
    assert any(e["kind"] == "ModelChanged" and e["attr"] == "text" and e["new"].startswith("D(z") for e in events)
    # numbers go as binary float32 buffers, 4 bytes a pixel (7 214 pixels + chip gaps here)
    binary = [f for f in frames if isinstance(f, bytes)]
    assert binary and all(len(b) % 4 == 0 for b in binary)
    # the y ranges are fitted on the server and travel in the same message ...
    assert {e["attr"] for e in events if e["kind"] == "ModelChanged"} >= {"start", "end"}
    # ... so the browser sends no auto-ranged start/end back, and nothing flips the busy spinner
    page.wait_for_timeout(1000)  # what follows: the URL echo
    from_browser = [e for f in sent if isinstance(f, str) and f.startswith('{"events"')
                    for e in json.loads(f)["events"] if e["kind"] == "ModelChanged"]
    assert {e["attr"] for e in from_browser} <= {"value", "value_throttled", "href"}, from_browser
    later = [e for f in frames if isinstance(f, str) and f.startswith('{"events"')
             for e in json.loads(f)["events"] if e["kind"] == "ModelChanged"]
    assert not [e for e in later if e["attr"] == "css_classes" and "spin" in e["new"]], later
