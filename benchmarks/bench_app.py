"""How fast the explorer feels: slider → plot in Chromium, server compute, cold start, memory
per session, and the latent map at a million stars.

    python benchmarks/bench_app.py                 # the bundled demo when present, else the sample
    python benchmarks/bench_app.py --data sample   # the tiny sample (no demo needed)
    python benchmarks/bench_app.py --map-points 1000000 --moves 40
    python benchmarks/bench_app.py --slider-only --moves 60   # only slider → plot, both paths
    python benchmarks/bench_app.py --slider-only --compare main /path/to/main/checkout
    python benchmarks/bench_app.py --skip-browser --map-points 0   # server compute, the map tab's first builds

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
from browser_timing import SliderPage, VIEWPORT, launch, open_explorer  # noqa: E402  (this folder)


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


def _serve(args, log, env=None, repo: Path = REPO):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "panel", "serve", str(repo / "app.py"), "--port", str(port),
           "--allow-websocket-origin", f"localhost:{port}", "--args", *map(str, args)]
    env = {**os.environ, **(env or {})}
    if repo != REPO:  # the other checkout's package, not this one's
        env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(cmd, cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://localhost:{port}/app"
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)


def slider_numbers(inputs, moves: int, browser, log, compare=(), pause_ms: int = 0) -> dict:
    """Slider → plot for both update paths of this checkout (and the fast path of every
    ``compare`` (label, checkout)), measured in this run, moves interleaved. ``pause_ms``: quiet
    time before each timed move, so that no page's trailing work of its previous step (the URL
    echo, a busy spinner switched off late) lands inside the next page's step."""
    servers, pages = {}, {}
    variants = [("legacy", REPO, {"TWINVIZ_SWAP_UPDATE": "legacy"}), ("fast", REPO, {"TWINVIZ_SWAP_UPDATE": "fast"})]
    variants += [(label, Path(repo).resolve(), {}) for label, repo in compare]
    try:
        for mode, repo, env in variants:
            proc, url = _serve(inputs, log, env=env, repo=repo)
            servers[mode] = proc
            page = browser.new_page(viewport=VIEWPORT)
            open_explorer(page, url)
            page.wait_for_timeout(1000)
            pages[mode] = SliderPage(page)
        times = {mode: [] for mode in pages}
        in_page = {mode: [] for mode in pages}
        for mode in pages:  # one untimed move each: first-use costs
            pages[mode].move()
        for _ in range(moves):
            for mode in pages:
                if pause_ms:
                    pages[mode].page.wait_for_timeout(pause_ms)
                times[mode].append(pages[mode].move())
                in_page[mode].append(pages[mode].last_in_page)
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait()
    out = {}
    for mode, ts in times.items():
        out[f"slider→plot p50, {mode} (ms)"] = float(np.percentile(ts, 50))
        out[f"slider→plot p95, {mode} (ms)"] = float(np.percentile(ts, 95))
    for mode, ts in in_page.items():
        out[f"key→frame in page p50, {mode} (ms)"] = float(np.percentile(ts, 50))
        out[f"key→frame in page p95, {mode} (ms)"] = float(np.percentile(ts, 95))
    return out


def browser_numbers(inputs, moves: int, extra_sessions: int, slider_only: bool = False, compare=(),
                    pause_ms: int = 0) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with tempfile.TemporaryFile("w+") as log, sync_playwright() as p:
        browser = launch(p)
        out.update(slider_numbers(inputs, moves, browser, log, compare, pause_ms))
        if slider_only:
            browser.close()
            return out
        # Cold start, first with whatever cache exists (warms it), then measured on a fresh process.
        for attempt in range(2):
            t0 = time.perf_counter()
            proc, url = _serve(inputs, log)
            page = browser.new_page(viewport=VIEWPORT)
            try:
                open_explorer(page, url)
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
            pg = browser.new_page(viewport=VIEWPORT)
            open_explorer(pg, url)
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


_MAP_TAB_CHILD = """
import sys, time
from bokeh.document import Document
from twinviz.app.latent_map import LatentMap
from twinviz.app.loading import load_app_data
from twinviz.app.state import ExplorerState
data = load_app_data(*[a if a != 'None' else None for a in sys.argv[1:4]])
t0 = time.perf_counter()
LatentMap(ExplorerState(data)).__panel__().get_root(Document())
t1 = time.perf_counter()
LatentMap(ExplorerState(data)).__panel__().get_root(Document())
print(t1 - t0, time.perf_counter() - t1)
"""


def map_tab_first_build(inputs) -> dict:
    """The latent map tab's first build in a fresh process (datashader compiles its kernels
    then), and the next visitor's, in a child process."""
    args = [sys.executable, "-c", _MAP_TAB_CHILD, *[str(a) for a in inputs]]
    first, second = map(float, subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                                              check=True).stdout.split()[-2:])
    return {"map tab, first build in a fresh process (s)": first, "map tab, next visitor's build (s)": second}


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
    parser.add_argument("--compare", nargs=2, action="append", metavar=("LABEL", "CHECKOUT"), default=[],
                        help="also time slider → plot on another checkout's app.py (e.g. the previous "
                             "main), in the same run; repeatable")
    parser.add_argument("--pause", type=int, default=0, metavar="MS",
                        help="quiet time before each timed slider move (default 0: moves back to back)")
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        which, inputs = _inputs(args.data, Path(tmp))
        rows["data"] = which
        rows["pause before each move (ms)"] = args.pause
        if not args.slider_only:
            rows.update(server_compute(inputs, args.moves))
            rows.update(map_tab_first_build(inputs))
        if not args.skip_browser:
            flags = [a for pair in zip(("--model", "--data", "--latents"), inputs) if pair[1] for a in pair]
            rows.update(browser_numbers(flags, args.moves, args.sessions, args.slider_only, args.compare,
                                        args.pause))
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
