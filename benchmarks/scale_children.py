"""The measuring halves of ``bench_scale.py``'s index, app and server stages (run in child
processes, so each stage's peak RSS is its own). Each child writes WORKDIR/<stage>.json."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

T_START = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]


def _ms(times) -> tuple[float, float]:
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _vm(pid="self", field="VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def index_child(work: Path) -> dict:
    from twinviz.latents import load_latents
    from twinviz.twins.index import TwinIndex

    t0 = time.perf_counter()
    lat = load_latents(work / "latents.nc")
    z = lat["z"].values
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = TwinIndex(z, metric="l1", ids=lat["star"].values)
    first = index.search(0, 10)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    times = []
    for pos in rng.choice(z.shape[0], size=min(200, z.shape[0]), replace=False):
        t = time.perf_counter()
        index.search(int(pos), 10)
        times.append((time.perf_counter() - t) * 1e3)
    p50, p95 = _ms(times)
    group = lat["group"].values
    mate = np.flatnonzero((group == group[0]) & (np.arange(group.size) != 0))
    return {"latents load (s)": load, "index build + first search (s)": build, "top-10 p50 (ms)": p50,
            "top-10 p95 (ms)": p95, "latent dim": int(z.shape[1]),
            "star 0: its twin is its nearest neighbour": bool(mate.size and first[0][0] == mate[0])}


def app_child(work: Path, model: Path, clicks: int) -> dict:
    """What `panel serve app.py` does for the first visitor, in process, then clicks."""
    from twinviz.app import load_app_data, loading, main_args, split_args
    from twinviz.app.layout import build_page

    # the spectra stay in the zarr whatever N (as the app does above 2 GB of flux), so the
    # per-star reads are the ones a survey-sized file costs; the server stage runs the app as is
    loading.LAZY_FLUX_BYTES = 0
    latents = work / "latents-map.nc"
    latents = latents if latents.exists() else work / "latents.nc"
    out = {"imports (s)": time.perf_counter() - T_START}
    t0 = time.perf_counter()
    inputs, training = split_args(main_args(["--model", str(model), "--data", str(work / "spectra.zarr"),
                                             "--latents", str(latents)]))
    data = load_app_data(**inputs)
    out["AppData from cached latents (s)"] = time.perf_counter() - t0
    out["flux kept on disk"] = not isinstance(data.flux, np.ndarray)
    t0 = time.perf_counter()
    page = build_page(data, training=training)
    out["page build, one session (s)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from bokeh.document import Document

    page.server_doc(Document())  # what the server does with the .servable() page of a session
    out["page → Bokeh models (s)"] = time.perf_counter() - t0
    out["load + first page (s)"] = time.perf_counter() - T_START
    out["RSS after first page (MB)"] = _vm()

    explorer = page.explorer
    state = explorer.state
    rng = np.random.default_rng(1)
    stars = rng.choice(data.n_stars, size=min(clicks, data.n_stars), replace=False)
    search, views = [], []
    t = time.perf_counter()
    data.neighbours(int(stars[0]), state.k)  # the first search builds the index (once per process)
    out["first twin search incl. index build (ms)"] = (time.perf_counter() - t) * 1e3
    for pos in stars:
        t = time.perf_counter()
        data.neighbours(int(pos), state.k)
        search.append((time.perf_counter() - t) * 1e3)
    for pos in stars:  # the whole click: the state change and every view's update on the server
        t = time.perf_counter()
        state.star = int(pos)
        views.append((time.perf_counter() - t) * 1e3)
    out["twin search per click p50 (ms)"], out["twin search per click p95 (ms)"] = _ms(search)
    out["click → all views p50 (ms)"], out["click → all views p95 (ms)"] = _ms(views)
    reads = []
    for pos in rng.choice(data.n_stars, size=min(40, data.n_stars), replace=False):
        t = time.perf_counter()
        data.observed(int(pos))
        reads.append((time.perf_counter() - t) * 1e3)
    out["one spectrum from zarr p50 (ms)"], out["one spectrum from zarr p95 (ms)"] = _ms(reads)
    out.update(_map_numbers(data, state))
    out["RSS at end (MB)"], out["peak RSS (MB)"] = _vm(), _vm(field="VmHWM")
    return out


def _map_numbers(data, state) -> dict:
    """Re-rasterize the map (as a zoom does) and tap it, on this dataset's own projection."""
    import datashader as dsh
    from holoviews.operation.datashader import rasterize

    from twinviz.app.latent_map import LatentMap

    view = LatentMap(state)
    name = state.projection
    points = view._points(name, state.colour_by)
    xy = data.projections[name]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    times = []
    for f in (1.0, 0.5, 0.2, 0.05, 1.0, 0.5):
        c, half = (lo + hi) / 2, (hi - lo) / 2 * f
        t = time.perf_counter()
        rasterize(points, aggregator=dsh.mean("value"), width=900, height=520, dynamic=False,
                  x_range=(c[0] - half[0], c[0] + half[0]), y_range=(c[1] - half[1], c[1] + half[1]))
        times.append((time.perf_counter() - t) * 1e3)
    taps = []
    for pos in (123, 999 % data.n_stars, 4567 % data.n_stars):
        t = time.perf_counter()
        view.select_at(float(xy[pos, 0]), float(xy[pos, 1]))
        taps.append((time.perf_counter() - t) * 1e3)
    return {"map": name, "map re-rasterize p50 (ms)": float(np.median(times[1:])),
            "map re-rasterize max (ms)": float(np.max(times[1:])), "first tap incl. KD-tree (ms)": taps[0],
            "tap → select + all views p50 (ms)": float(np.median(taps[1:]))}


def serve_numbers(model: Path, data: Path, latents: Path, log_path: Path, cwd: Path) -> dict:
    """`panel serve app.py`: seconds from launch to the first page served (GET /app builds the
    session's page), the server's RSS then and after a second page, and the second page's time."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--address", "localhost", "--port", str(port),
           "--allow-websocket-origin", f"localhost:{port}", "--args", "--model", str(model), "--data", str(data),
           "--latents", str(latents)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    url = f"http://localhost:{port}/app"
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            body = _get_when_up(url, proc, timeout=600)
            cold = time.perf_counter() - t0
            rss1 = _vm(proc.pid)
            t = time.perf_counter()
            _get_when_up(url, proc, timeout=300)
            second = time.perf_counter() - t
            rss2 = _vm(proc.pid)
            peak = _vm(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if "twinviz could not start" in body:
        raise SystemExit(f"bench_scale: the app showed its error page; see {log_path}")
    return {"wall (s)": cold + second, "cold start to first page (s)": cold, "second page (s)": second,
            "server RSS after first page (MB)": rss1, "server RSS after second page (MB)": rss2,
            "peak RSS (MB)": peak, "peak RSS, process tree (MB)": peak, "load average (1 min) at start": load,
            "load average (1 min) at end": os.getloadavg()[0]}


def _get_when_up(url: str, proc, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"bench_scale: panel serve exited with {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=300) as response:
                return response.read().decode("utf-8", "replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(args) -> int:
    from twinviz.atomic import write_json_atomic

    work = Path(args.workdir)
    if args.child == "index":
        write_json_atomic(work / "index.json", index_child(work))
    else:
        write_json_atomic(work / "app.json", app_child(work, Path(args.model), args.clicks))
    return 0
