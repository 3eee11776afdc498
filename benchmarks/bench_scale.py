"""A survey-sized dataset end to end on one machine: simulate → encode → twin index → 2-D map → app.

    python benchmarks/bench_scale.py --stars 20000 --workdir /work/scale-data/20k
    nice python benchmarks/bench_scale.py --stars 1000000 --workdir /work/scale-data/1m > 1m.log 2>&1 &
    python benchmarks/bench_scale.py --stars 2000 --workdir W --scheduler distributed   # dask LocalCluster

Stages (each a child process, so each has its own peak RSS; resumable: a stage whose output file
already exists, with its record in WORKDIR/stages/, is skipped and its earlier numbers reused):

  disk      free space under WORKDIR against what the flux needs (stops when it would not fit)
  simulate  `twinviz simulate --out spectra.zarr`: streamed into zarr a block of stars at a time
  encode    `twinviz embed --projections pca`: streamed encoding + out-of-distribution pass + PCA
            of all stars (--scheduler distributed: on a dask LocalCluster of --workers processes)
  index     exact L1 twin index over all latents: build, then top-10 per query star
  map       `twinviz embed --latents … --projections umap`: UMAP fitted on --umap-fit-stars
            stars, the others placed with its transform
  app       the app as `panel serve app.py` builds it, in process: AppData from the cached latents,
            one session's page, clicks on random stars (twin search + every view), one spectrum
            read lazily from the zarr (forced at any N here; the app itself does it above 2 GB of
            flux), the datashader map re-rasterized, a tap on the map
  server    `panel serve app.py` itself: cold start to the first page (GET /app), server RSS

Writes WORKDIR/results.json and WORKDIR/results.md and prints the table. Goals (issue 12):
app cold start with cached latents ≤ 20 s, server RSS ≤ 4 GB, twin search per click ≤ 50 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STAGES = ("disk", "simulate", "encode", "index", "map", "app", "server")
STORED_FRACTION = 0.7  # zarr (blosc lz4) keeps ~66 % of the float32 flux of noiseless spectra (measured)
GOALS = {"app cold start, cached latents (s)": ("≤", 20.0), "server RSS after first page (MB)": ("≤", 4096.0),
         "twin search per click p95 (ms)": ("≤", 50.0)}


# ---------------------------------------------------------------------------------------------
# running one stage as a child process
# ---------------------------------------------------------------------------------------------
def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2 ** 20


def run_child(cmd, log_path: Path, cwd: Path) -> dict:
    """Run ``cmd``; wall time, its own peak RSS (wait4) and the peak RSS of its process tree
    (sampled every 0.2 s: a dask cluster's workers are grandchildren)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    peak_tree, done = [0.0], threading.Event()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)

        def sample():
            while not done.wait(0.2):
                peak_tree[0] = max(peak_tree[0], _tree_rss_mb(proc.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench_scale: {' '.join(map(str, cmd[:4]))} … failed (exit {proc.returncode}); "
                         f"last lines of {log_path}:\n" + "".join(log_path.read_text().splitlines(True)[-25:]))
    return {"wall (s)": wall, "peak RSS (MB)": usage.ru_maxrss / 1024,
            "peak RSS, process tree (MB)": max(peak_tree[0], usage.ru_maxrss / 1024)}


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.workdir).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "stages").mkdir(exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        self.spectra = self.work / "spectra.zarr"
        self.latents = self.work / "latents.nc"
        self.mapped = self.work / "latents-map.nc"
        self.records: dict[str, dict] = {}

    def stage(self, name: str, output: Path, cmd) -> dict:
        from twinviz.atomic import write_json_atomic

        record = self.work / "stages" / f"{name}.json"
        if output.exists() and record.exists():
            self.records[name] = {**json.loads(record.read_text()), "skipped": "output existed"}
            print(f"[{name}] done earlier ({output.name} exists): reusing its numbers", flush=True)
            return self.records[name]
        for stale in self.work.glob(f".{output.name}.*"):  # a killed earlier try's temporary file
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        print(f"[{name}] {' '.join(map(str, cmd))}", flush=True)
        load = os.getloadavg()[0]
        numbers = run_child(cmd, self.work / "logs" / f"{name}.log", self.work)
        numbers["load average (1 min) at start"] = load
        numbers["load average (1 min) at end"] = os.getloadavg()[0]
        extra = self.work / f"{name}.json"
        if extra.exists() and extra != output:
            numbers.update(json.loads(extra.read_text()))
        if output.suffix == ".json" and output.exists():
            numbers.update(json.loads(output.read_text()))
        write_json_atomic(record, numbers)
        self.records[name] = numbers
        print(f"[{name}] {numbers['wall (s)']:.1f} s, peak RSS {numbers['peak RSS, process tree (MB)']:.0f} MB",
              flush=True)
        return numbers


def disk_check(bench: Bench, n_stars: int, force: bool) -> dict:
    n_pix = 7214
    raw = n_stars * n_pix * 4
    need = raw * STORED_FRACTION * 1.1 + 2 * 2 ** 30
    free = shutil.disk_usage(bench.work).free
    have = sum(f.stat().st_size for f in bench.spectra.rglob("*") if f.is_file()) if bench.spectra.exists() else 0
    print(f"[disk] {n_stars:,} stars × {n_pix} px: {raw / 1e9:.1f} GB of float32 flux, ~{raw * STORED_FRACTION / 1e9:.1f} GB "
          f"stored (zarr, lz4); free under {bench.work}: {free / 1e9:.1f} GB"
          + (f" (+{have / 1e9:.1f} GB already written)" if have else ""), flush=True)
    if free + have < need and not force:
        raise SystemExit(f"bench_scale: {bench.work}: disk: {free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed. "
                         "Fix: --workdir on a larger disk, fewer --stars, or --force")
    numbers = {"flux, float32 (GB)": raw / 1e9, "free disk at start (GB)": free / 1e9}
    bench.records["disk"] = numbers
    return numbers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stars", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, required=True, help="where the data and results go (not the repo)")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled demo's)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--scheduler", choices=("local", "distributed"), default="local",
                        help="encode stage: in one process, or on a dask LocalCluster")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers with --scheduler distributed")
    parser.add_argument("--umap-fit-stars", type=int, default=50_000,
                        help="UMAP is fitted on this many stars, the rest are transformed")
    parser.add_argument("--clicks", type=int, default=40, help="random stars clicked in the app stage")
    parser.add_argument("--force", action="store_true", help="go on when the disk check says it will not fit")
    parser.add_argument("--child", choices=("index", "app"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from benchmarks import scale_children

        return scale_children.main(args)
    model = args.model or REPO / "data" / "demo" / "model"
    bench = Bench(args)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(wanted) - set(STAGES)
    if unknown:
        parser.error(f"--stages: unknown {sorted(unknown)}; choose from {','.join(STAGES)}")
    py, me = sys.executable, Path(__file__).resolve()
    pairs = max(1, args.stars // 2)
    t_all = time.perf_counter()
    if "disk" in wanted:
        disk_check(bench, 2 * pairs, args.force)
    if "simulate" in wanted:
        bench.stage("simulate", bench.spectra, [py, "-m", "twinviz", "simulate", "--pairs", pairs, "--seed", args.seed,
                                                "--out", bench.spectra, "--no-progress"])
    if "encode" in wanted:
        extra = ["--scheduler", "distributed", "--workers", args.workers] if args.scheduler == "distributed" else []
        bench.stage("encode", bench.latents, [py, "-m", "twinviz", "embed", "--model", model, "--data", bench.spectra,
                                              "--out", bench.latents, "--projections", "pca", *extra])
    if "index" in wanted:
        bench.stage("index", bench.work / "index.json", [py, me, "--child", "index", "--workdir", bench.work])
    if "map" in wanted:
        bench.stage("map", bench.mapped, [py, "-m", "twinviz", "embed", "--latents", bench.latents, "--out", bench.mapped,
                                          "--projections", "umap", "--umap-fit-stars", min(args.umap_fit_stars, 2 * pairs)])
    if "app" in wanted:
        bench.stage("app", bench.work / "app.json", [py, me, "--child", "app", "--workdir", bench.work, "--model", model,
                                                     "--clicks", args.clicks])
    if "server" in wanted:
        from benchmarks.scale_children import serve_numbers

        record = bench.work / "stages" / "server.json"
        if record.exists():
            bench.records["server"] = {**json.loads(record.read_text()), "skipped": "measured earlier"}
            print("[server] measured earlier: reusing its numbers", flush=True)
        else:
            from twinviz.atomic import write_json_atomic

            print("[server] panel serve app.py …", flush=True)
            bench.records["server"] = serve_numbers(model, bench.spectra, _latents_for_app(bench),
                                                    bench.work / "logs" / "server.log", bench.work)
            write_json_atomic(record, bench.records["server"])
    report(bench, args, time.perf_counter() - t_all)
    return 0


def _latents_for_app(bench: Bench) -> Path:
    """The UMAP'd latents when the map stage made them, else the PCA-only ones."""
    return bench.mapped if bench.mapped.exists() else bench.latents


def report(bench: Bench, args, total: float) -> None:
    from twinviz.atomic import write_json_atomic, write_text_atomic

    r = bench.records
    summary = {}
    app, server, index = r.get("app", {}), r.get("server", {}), r.get("index", {})
    if "cold start to first page (s)" in server:
        summary["app cold start, cached latents (s)"] = server["cold start to first page (s)"]
    elif "load + first page (s)" in app:
        summary["app cold start, cached latents (s)"] = app["load + first page (s)"]
    if "server RSS after first page (MB)" in server:
        summary["server RSS after first page (MB)"] = server["server RSS after first page (MB)"]
    for key in ("twin search per click p50 (ms)", "twin search per click p95 (ms)", "click → all views p50 (ms)",
                "click → all views p95 (ms)", "one spectrum from zarr p50 (ms)", "map re-rasterize p50 (ms)"):
        if key in app:
            summary[key] = app[key]
    if "top-10 p95 (ms)" in index:
        summary["index top-10 p95 (ms)"] = index["top-10 p95 (ms)"]
    result = {"stars": 2 * max(1, args.stars // 2), "workdir": str(bench.work), "scheduler": args.scheduler,
              "cpus": os.cpu_count(), "total wall this run (s)": total, "stages": r, "summary": summary}
    write_json_atomic(bench.work / "results.json", result)
    lines = [f"### {result['stars']:,} stars ({os.cpu_count()} CPUs, encode: {args.scheduler})", "",
             "| stage | wall (s) | peak RSS (MB) | load avg (start → end) |", "|---|---|---|---|"]
    for name in STAGES:
        s = r.get(name)
        if not s or "wall (s)" not in s:
            continue
        peak = s.get("peak RSS, process tree (MB)", s.get("peak RSS (MB)", float("nan")))
        lines.append(f"| {name} | {s['wall (s)']:.1f} | {peak:.0f} | "
                     f"{s.get('load average (1 min) at start', float('nan')):.1f} → "
                     f"{s.get('load average (1 min) at end', float('nan')):.1f} |")
    lines += ["", "| measure | value | goal |", "|---|---|---|"]
    for key, value in summary.items():
        goal = GOALS.get(key)
        mark = "" if goal is None else f"{goal[0]} {goal[1]:g} " + ("ok" if value <= goal[1] else "**missed**")
        lines.append(f"| {key} | {value:.2f} | {mark} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(bench.work / "results.md", text)
    print("\n" + text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
