"""Browser timing helpers shared by the app benchmarks: Debian's Chromium through Playwright
(never a downloaded browser), opening the explorer, and timing one slider step.

Not a benchmark itself: ``bench_app.py`` and ``bench_sessions.py`` import it (scripts in this
folder have it on their path).
"""
from __future__ import annotations

import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
#: Sum of the finite values of the model column of the plot named ``name`` (null if absent).
CHECKSUM_JS = """(name) => { for (const doc of Bokeh.documents) { const m = doc.get_model_by_name(name);
  if (!m) continue; const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
  let s = 0; for (const v of d.model) if (Number.isFinite(v)) s += v; return s; } return null; }"""
FIRST_PLOT_JS = f"() => window.Bokeh && Bokeh.documents.length > 0 && ({CHECKSUM_JS})('tv-spectrum') > 0"


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def open_explorer(page, url, timeout=120_000):
    """Load the explorer and wait until the swap explorer's spectrum holds data."""
    page.goto(url, timeout=timeout)
    wait_first_plot(page, timeout)


def wait_first_plot(page, timeout=120_000):
    page.wait_for_selector(".noUi-handle", timeout=timeout)
    page.wait_for_function(FIRST_PLOT_JS, timeout=timeout)


#: In-page clock of one slider step, armed before the key is pressed: the key's own timestamp
#: (``event.timeStamp``: when the renderer got the input), the first animation frame that sees
#: the new data, and the next frame's start (the changed frame was produced by then).
ARM_STEP_JS = f"""(before) => {{
  const checksum = {CHECKSUM_JS};
  const step = window.__tvStep = {{key: null, seen: null, done: null}};
  if (!window.__tvKeyListener) {{
    window.__tvKeyListener = true;
    window.addEventListener("keydown", (e) => {{
      const s = window.__tvStep; if (s && s.key === null) s.key = e.timeStamp; }}, true);
  }}
  const tick = (ts) => {{
    if (window.__tvStep !== step) return;
    if (step.seen === null) {{
      const c = checksum("tv-spectrum");
      if (step.key !== null && c !== null && c !== before) step.seen = ts;
    }} else {{ step.done = ts; return; }}
    requestAnimationFrame(tick);
  }};
  requestAnimationFrame(tick);
}}"""


class SliderPage:
    """One open explorer page, its Teff slider focused; ``move()`` times one keyboard step."""

    def __init__(self, page):
        self.page = page
        # The Teff slider, found by its title (the sidebar's k slider comes first in the page);
        titles = page.locator(".bk-slider-title")
        index = next(i for i in range(titles.count()) if titles.nth(i).inner_text().startswith("Teff"))
        self.title = titles.nth(index)
        self.handle = page.locator(".noUi-handle").nth(index)
        # alternate single steps, starting away from the nearer bound, so every move changes the value
        start_teff = float(self.title.inner_text().split(":")[1])
        self.keys = ("ArrowRight", "ArrowLeft") if start_teff < 4750 else ("ArrowLeft", "ArrowRight")
        self.n = 0
        #: the last move's in-page time, key event → start of the frame after the one that first
        #: held the new data (ms): what the page itself spends, without Playwright's round trips
        self.last_in_page = float("nan")

    def move(self) -> float:
        """Slider → updated data in the browser's document, then one animation frame (painted);
        ms as the driving script sees it (key dispatch and Playwright's round trips included).
        The page's own clock of the same step is left in ``last_in_page``."""
        page = self.page
        self.handle.focus()
        before = page.evaluate(CHECKSUM_JS, "tv-spectrum")
        page.evaluate(ARM_STEP_JS, before)
        key = self.keys[self.n % 2]
        self.n += 1
        t0 = time.perf_counter()
        page.keyboard.press(key)
        try:
            page.wait_for_function(f"(b) => {{ const s = ({CHECKSUM_JS})('tv-spectrum'); return s !== null && s !== b; }}",
                                   arg=before, polling="raf", timeout=10_000)
        except Exception:
            print(f"move {self.n} ({key}) did not change the plot; slider title now: "
                  f"{self.title.inner_text()!r}; checksum {before}")
            raise
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        elapsed = (time.perf_counter() - t0) * 1e3
        page.wait_for_function("() => window.__tvStep.done !== null", polling="raf", timeout=10_000)
        step = page.evaluate("() => window.__tvStep")
        self.last_in_page = step["done"] - step["key"]
        return elapsed


#: Installed before a page's scripts run: records ``window.__tvFirstPlot`` (ms after the
#: navigation started) the first animation frame at which the spectrum holds data.
FIRST_PLOT_RECORDER = f"""(() => {{
  const tick = () => {{
    try {{ if (({FIRST_PLOT_JS})()) {{ window.__tvFirstPlot = performance.now(); return; }} }} catch (e) {{}}
    requestAnimationFrame(tick);
  }};
  requestAnimationFrame(tick);
}})();"""


def open_together(browser, url: str, n: int, timeout=300_000):
    """``n`` pages navigating to ``url`` at once (each a new session). Returns (pages, first-plot
    seconds per page measured in the page from its own navigation start, console errors)."""
    pages, errors = [], []
    for _ in range(n):
        page = browser.new_page(viewport=VIEWPORT)
        page.add_init_script(FIRST_PLOT_RECORDER)
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages.append(page)
    for page in pages:  # start every navigation without waiting for any
        page.evaluate("(u) => { window.location.href = u; }", url)
    seconds = []
    for page in pages:
        page.wait_for_function("() => window.__tvFirstPlot !== undefined", timeout=timeout, polling=200)
        seconds.append(page.evaluate("() => window.__tvFirstPlot") / 1000)
    return pages, seconds, errors
