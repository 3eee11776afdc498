"""benchmarks/bench_science.py runs a cell end to end and resumes from its files."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_one_smoke_cell_runs_then_resumes_without_retraining(tmp_path):
    report = tmp_path / "suite.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_science.py"), "--size", "smoke", "--out",
           str(tmp_path / "out"), "--cells", "dwarfs-lowd-snr50-realistic", "--seeds", "0",
           "--report", str(report), "--queries", "50"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    table = report.read_text()
    for method in ("fader", "lambda0", "polynomial_pca", "polynomial", "raw_flux", "oracle"):
        assert f"| dwarfs-lowd-snr50-realistic | 1 | {method} |" in table
    cell = tmp_path / "out" / "smoke" / "dwarfs-lowd-snr50-realistic"
    weights = cell / "seed0" / "fader" / "model" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert weights.stat().st_mtime_ns == stamp  # reused, not retrained
    assert report.read_text() == table
