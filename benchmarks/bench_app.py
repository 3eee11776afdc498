"""How fast the explorer feels: slider → plot in Chromium, server compute, cold start, memory
per session, and the latent map at a million stars.

    python benchmarks/bench_app.py                 # the bundled demo when present, else the sample
    python benchmarks/bench_app.py --data sample   # the tiny sample (no demo needed)
    python benchmarks/bench_app.py --map-points 1000000 --moves 40
    python benchmarks/bench_app.py --slider-only --moves 60   # only slider → plot, both paths

Targets: slider → updated plot p95 ≤ 100 ms in the browser (issue 12; 150 ms in issue 5),
server compute ≤ 10 ms per update, cold start ≤ 15 s once the first run's cache exists.

Slider → plot is timed for the swap explorer's current update path ("fast") and for the path
before issue 12 ("legacy": ``TWINVIZ_SWAP_UPDATE=legacy``) in the same run: two servers, one
page each, the moves alternating between them so that a change of machine load hits both alike.
Prints one table.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECKSUM_JS = """(name) => { for (const doc of Bokeh.documents) { const m = doc.get_model_by_name(name);
  if (!m) continue; const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
  let s = 0; for (const v of d.model) if (Number.isFinite(v)) s += v; return s; } return null; }"""


def _inputs(which: str, workdir: Path):
    """(model, data, latents) of the demo or of the sample."""
    if which == "demo":
        from twinviz.app.state import AppDataError
        from twinviz.app.loading import resolve_paths

        try:
            model, data, latents, _ = resolve_paths()
            return "demo", [model, data, latents]
        except AppDataError as exc:
            print(f"(demo unavailable: {exc}; using the sample)")
    from twinviz.testing import make_sample

    return "sample", list(make_sample(workdir / "sample"))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _serve(args, log, env=None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(port),
           "--allow-websocket-origin", f"localhost:{port}", "--args", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    url = f"http://localhost:{port}/app"
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)


def _open(page, url, timeout=120_000):
    page.goto(url, timeout=timeout)
    page.wait_for_selector(".noUi-handle", timeout=timeout)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length && "
                           "Bokeh.documents[0].get_model_by_name('tv-spectrum') !== null", timeout=timeout)


class _SliderPage:
    """One page of one server, its Teff slider focused; ``move()`` times one keyboard step."""

    def __init__(self, page):
        self.page = page
        # The Teff slider, found by its title (the sidebar's k slider comes first in the page);
        titles = page.locator(".bk-slider-title")
        self.title = next(titles.nth(i) for i in range(titles.count())
                          if titles.nth(i).inner_text().startswith("Teff"))
        index = next(i for i in range(titles.count()) if titles.nth(i).inner_text().startswith("Teff"))
        self.handle = page.locator(".noUi-handle").nth(index)
        # alternate single steps, starting away from the nearer bound, so every move changes the value
        start_teff = float(self.title.inner_text().split(":")[1])
        self.keys = ("ArrowRight", "ArrowLeft") if start_teff < 4750 else ("ArrowLeft", "ArrowRight")
        self.n = 0

    def move(self) -> float:
        """Slider → updated data in the browser's document, then one animation frame (painted); ms."""
        page = self.page
        self.handle.focus()
        before = page.evaluate(CHECKSUM_JS, "tv-spectrum")
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
        return (time.perf_counter() - t0) * 1e3


def slider_numbers(inputs, moves: int, browser, log) -> dict:
    """Slider → plot for both update paths, measured in this run, moves interleaved."""
    servers, pages = {}, {}
    try:
        for mode in ("legacy", "fast"):
            proc, url = _serve(inputs, log, env={"TWINVIZ_SWAP_UPDATE": mode})
            servers[mode] = proc
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open(page, url)
            page.wait_for_timeout(1000)
            pages[mode] = _SliderPage(page)
        times = {mode: [] for mode in pages}
        for mode in pages:  # one untimed move each: first-use costs
            pages[mode].move()
        for _ in range(moves):
            for mode in pages:
                times[mode].append(pages[mode].move())
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait()
    out = {}
    for mode, ts in times.items():
        out[f"slider→plot p50, {mode} (ms)"] = float(np.percentile(ts, 50))
        out[f"slider→plot p95, {mode} (ms)"] = float(np.percentile(ts, 95))
    return out


def browser_numbers(inputs, moves: int, extra_sessions: int, slider_only: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with tempfile.TemporaryFile("w+") as log, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        out.update(slider_numbers(inputs, moves, browser, log))
        if slider_only:
            browser.close()
            return out
        # Cold start, first with whatever cache exists (warms it), then measured on a fresh process.
        for attempt in range(2):
            t0 = time.perf_counter()
            proc, url = _serve(inputs, log)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                _open(page, url)
            except Exception:
                log.seek(0)
                print(log.read()[-3000:])
                proc.terminate()  # never leave a server behind
                raise
            cold = time.perf_counter() - t0
            if attempt == 0:
                page.close()
                proc.terminate()
                proc.wait()
        out["cold start (s)"] = cold
        page.wait_for_timeout(1000)
        rss_one = _rss_mb(proc.pid)
        # Memory per extra session.
        pages = []
        for _ in range(extra_sessions):
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open(pg, url)
            pages.append(pg)
        page.wait_for_timeout(1500)
        out["memory per extra session (MB)"] = (_rss_mb(proc.pid) - rss_one) / max(1, extra_sessions)
        out["server RSS, 1 session (MB)"] = rss_one
        browser.close()
        proc.terminate()
        proc.wait()
    return out


def server_compute(inputs, moves: int) -> dict:
    from twinviz.app.state import ExplorerState
    from twinviz.app.loading import load_app_data
    from twinviz.app.swap import SwapExplorer

    data = load_app_data(*inputs)
    state = ExplorerState(data)
    view = SwapExplorer(state)
    times = []
    for teff in np.linspace(*data.teff_range, moves):
        state.teff = float(teff)
        times.append(view.last_update_ms)
    return {"server compute p50 (ms)": float(np.percentile(times, 50)),
            "server compute p95 (ms)": float(np.percentile(times, 95)),
            "truth curve": "synthesizer" if data.is_synthetic else "observed spectra only"}


def map_numbers(n: int) -> dict:
    """Rasterize + tap on n synthetic latents, in process (what one zoom / tap costs the server)."""
    import holoviews as hv

    from twinviz.app.latent_map import LatentMap
    from twinviz.app.loading import data_labels
    from twinviz.testing import synthetic_latents
    from twinviz.app.state import AppData, ExplorerState

    class _Config:
        teff_range, logg_range = (4000.0, 5500.0), (1.0, 3.5)

    class _Model:
        config = _Config()

    z, xy, cluster = synthetic_latents(n)
    rng = np.random.default_rng(1)
    teff = rng.uniform(4000, 5500, n).astype(np.float32)
    logg = rng.uniform(1, 3.5, n).astype(np.float32)
    group = (np.arange(n) // 2).astype(np.int64)
    data = AppData(model=_Model(), model_dir=None, data_path=None, latents_path=None,
                   wavelength=np.array([15200.0, 15201.0]), segments=((0, 2),), flux=np.zeros((1, 2), np.float32),
                   teff=teff, logg=logg, group=group, star_ids=np.arange(n), z=z, projections={"umap": xy},
                   labels=data_labels(teff, logg, group, fe_h=cluster.astype(np.float32) / 10))
    t0 = time.perf_counter()
    view = LatentMap(ExplorerState(data, colour_by="[Fe/H]"))
    build = time.perf_counter() - t0
    from holoviews.operation.datashader import rasterize
    import datashader as dsh

    points = view._points("umap", "[Fe/H]")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    times = []
    for f in (1.0, 0.5, 0.2, 0.05, 1.0, 0.5):
        c = (lo + hi) / 2
        half = (hi - lo) / 2 * f
        t0 = time.perf_counter()
        rasterize(points, aggregator=dsh.mean("value"), width=900, height=520, dynamic=False,
                  x_range=(c[0] - half[0], c[0] + half[0]), y_range=(c[1] - half[1], c[1] + half[1]))
        times.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    view.select_at(float(xy[123, 0]), float(xy[123, 1]))
    first_tap = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    view.select_at(float(xy[999, 0]), float(xy[999, 1]))
    tap = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    hv.render(view.plot)
    render = (time.perf_counter() - t0) * 1e3
    return {f"map {n:.0e} pts: view build (s)": build,
            f"map {n:.0e} pts: re-rasterize p50 (ms)": float(np.median(times[1:])),
            f"map {n:.0e} pts: re-rasterize max (ms)": float(np.max(times[1:])),
            f"map {n:.0e} pts: first tap incl. KD-tree + index (ms)": first_tap,
            f"map {n:.0e} pts: tap → select + top-k (ms)": tap,
            f"map {n:.0e} pts: first full render (ms)": render}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["demo", "sample"], default="demo")
    parser.add_argument("--moves", type=int, default=40, help="slider moves timed")
    parser.add_argument("--sessions", type=int, default=4, help="extra browser sessions for memory")
    parser.add_argument("--map-points", type=int, default=1_000_000)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--slider-only", action="store_true",
                        help="only slider → plot in the browser, both update paths (no cold start, "
                             "sessions, map or server compute)")
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        which, inputs = _inputs(args.data, Path(tmp))
        rows["data"] = which
        if not args.slider_only:
            rows.update(server_compute(inputs, args.moves))
        if not args.skip_browser:
            flags = [a for pair in zip(("--model", "--data", "--latents"), inputs) if pair[1] for a in pair]
            rows.update(browser_numbers(flags, args.moves, args.sessions, args.slider_only))
    if args.map_points and not args.slider_only:
        rows.update(map_numbers(args.map_points))
    targets = {"slider→plot p95, fast (ms)": 100, "server compute p95 (ms)": 10, "cold start (s)": 15}
    width = max(map(len, rows))
    print(f"\n{'measure':<{width}}  value      target")
    for k, v in rows.items():
        val = f"{v:9.2f}" if isinstance(v, float) else f"{v!s:>9}"
        t = targets.get(k)
        mark = "" if t is None else (f"≤ {t}  " + ("ok" if v <= t else "MISSED"))
        print(f"{k:<{width}}  {val}  {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
