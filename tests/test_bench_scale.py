"""benchmarks/bench_scale.py at a small size: simulate → encode → index → app in one working
folder, every stage's wall time and peak RSS recorded, and a second run reuses every stage.
(The map stage — UMAP, which compiles for ~30 s — and the served app are left to the benchmark.)"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_scale_bench_runs_small_end_to_end_then_resumes(tmp_path):
    work = tmp_path / "scale"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--stars", "2000", "--workdir", str(work),
           "--stages", "disk,simulate,encode,index,app", "--clicks", "3"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    result = json.loads((work / "results.json").read_text())
    assert result["stars"] == 2000
    stages = result["stages"]
    for name in ("simulate", "encode", "index", "app"):
        assert stages[name]["wall (s)"] > 0 and stages[name]["peak RSS (MB)"] > 50, name
    assert stages["disk"]["flux, float32 (GB)"] == 2000 * 7214 * 4 / 1e9
    app = stages["app"]
    assert app["flux kept on disk"] is True  # the per-star zarr reads are what was timed
    assert 0 < app["twin search per click p50 (ms)"] <= app["twin search per click p95 (ms)"]
    assert stages["index"]["star 0: its twin is its nearest neighbour"] in (True, False)
    assert "| app cold start, cached latents (s) |" in (work / "results.md").read_text()
    spectra = work / "spectra.zarr"
    stamp = (spectra / ".zattrs").stat().st_mtime_ns
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:]
    assert second.stdout.count("done earlier") == 4
    assert (spectra / ".zattrs").stat().st_mtime_ns == stamp  # not simulated again
    assert json.loads((work / "results.json").read_text())["stages"]["app"]["skipped"] == "output existed"


def test_the_disk_check_stops_before_writing_what_cannot_fit(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--stars", "100000000000",
           "--workdir", str(tmp_path / "huge"), "--stages", "disk,simulate"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "disk:" in run.stderr and "Fix: " in run.stderr
    assert not (tmp_path / "huge" / "spectra.zarr").exists()
