"""benchmarks/bench_science.py runs a cell end to end and resumes from its files."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_one_smoke_cell_runs_in_parallel_then_resumes_without_retraining(tmp_path):
    report = tmp_path / "suite.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_science.py"), "--size", "smoke", "--out",
           str(tmp_path / "out"), "--cells", "dwarfs-lowd-snr50-realistic", "--seeds", "0",
           "--report", str(report), "--queries", "50", "--set", "latent_dim=8", "epochs=3"]
    # First with two processes (the fader and lambda=0 trainings side by side), then resumed
    # by the one-process path, which must find everything and write the same table.
    first = subprocess.run(cmd + ["--jobs", "2"], capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "dwarfs-lowd-snr50-realistic seed 0: scored" in first.stdout
    table = report.read_text()
    rows = {(line.split(" | ")[1], line.split(" | ")[2]): line.split(" | ") for line in table.splitlines()
            if line.startswith("| dwarfs-lowd-snr50-realistic | ") and line.count(" | ") == 10}
    assert set(rows) == {("limit", "limit (Cramér–Rao)"), ("none", "fader, raw z"), ("none", "λ = 0, raw z"),
                         ("none", "polynomial_pca"), ("none", "polynomial"), ("none", "raw_flux"),
                         ("few", "fader z, few-twin metric"), ("few", "polynomial_pca, few-twin metric (RSCA-like)"),
                         ("many", "fader + twin term (μ 0.1), twin metric"), ("many", "fader + twin term, raw z"),
                         ("many", "fader, twin metric"), ("many", "λ = 0, twin metric"),
                         ("many", "polynomial_pca_metric"), ("labels", "oracle")}
    for (regime, _), cells in rows.items():
        assert cells[7].strip() != ""  # every row has its doppelganger rate
        if regime != "limit":
            assert cells[8].strip() != ""  # … and its share of the limit
    assert rows[("limit", "limit (Cramér–Rao)")][3] == "3"  # three draws
    for regime in ("none", "few", "many"):  # each regime's network row carries its target's verdict
        key = {"none": "fader, raw z", "few": "fader z, few-twin metric",
               "many": "fader + twin term (μ 0.1), twin metric"}[regime]
        assert "×" in rows[(regime, key)][10]
    assert 'TrainConfig defaults except {"latent_dim": 8, "epochs": 3}' in table
    cell = tmp_path / "out" / "smoke" / "dwarfs-lowd-snr50-realistic"
    few = json.loads((cell / "seed0" / "few.json").read_text())
    assert few["few_groups"] <= 25 and few["few_stars"] <= 200  # open-cluster scale
    limit = json.loads((cell / "limit.json").read_text())
    assert limit["info"]["nuisances_marginalised"] == ["vmicro", "vbroad", "rv", "continuum"]
    assert "×" not in rows[("many", "fader, twin metric")][10]  # the none network's metric: no verdict
    for method, mu in (("fader", 0.0), ("lambda0", 0.0), ("fader_twin", 0.1)):  # --set reaches every training
        config = json.loads((cell / "seed0" / method / "model" / "config.json").read_text())
        assert config["latent_dim"] == 8
        run_config = json.loads((cell / "seed0" / method / "config.json").read_text())
        assert run_config["twin_weight"] == mu  # only the many network's loss sees a twin
        assert run_config["epochs"] == 3  # --set epochs overrides the size's epochs
    weights = cell / "seed0" / "fader" / "model" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert weights.stat().st_mtime_ns == stamp  # reused, not retrained
    assert report.read_text() == table


def test_the_defaults_study_scores_variants_on_validation_and_resumes(tmp_path):
    report = tmp_path / "study.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "study_defaults.py"), "--size", "smoke", "--out",
           str(tmp_path / "out"), "--cells", "giants-lowd-noiseless", "--variants", "default", "lambda0",
           "--report", str(report)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "out" / "smoke"
    rows = [json.loads(line) for line in (root / "study.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["default", "lambda0"]
    assert all(set(r["val"]) == {"raw", "std", "white", "metric"} for r in rows)
    assert not (root / "giants-lowd-noiseless" / "test.nc").exists()  # the test split is never made
    table = report.read_text()
    for variant in ("default", "lambda0"):
        for scaling in ("raw", "std", "white", "metric"):
            assert f"| {variant} | {scaling} | 1 |" in table
    assert "| *polynomial_pca (baseline)* |" in table
    winner = json.loads((root / "winner.json").read_text())
    assert winner["variant"] in ("default", "lambda0")
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len((root / "study.jsonl").read_text().splitlines()) == 2  # resumed, nothing retrained
    # These trainings had twins and fitted their metric, so each kept its last epoch: scoring the
    # last epoch from the checkpoint (benchmarks/score_last_epoch.py) gives the study's own numbers.
    last = subprocess.run([sys.executable, str(REPO / "benchmarks" / "score_last_epoch.py"), "--study", str(root),
                           "--variants", "default", "lambda0"], capture_output=True, text=True, timeout=900)
    assert last.returncode == 0, last.stderr[-3000:]
    scored = {r["run"]: r["last"] for r in map(json.loads, (root / "last_epoch.jsonl").read_text().splitlines())}
    assert set(scored) == {"default-seed0", "lambda0-seed0"}
    for r in rows:
        assert scored[f"{r['variant']}-seed0"]["rank1"] == r["val"]["metric"]["rank1"]
    assert "| giants-lowd-noiseless |" in last.stdout


def test_the_few_twin_metric_learns_from_the_few_groups_only_and_beats_raw_l1():
    import numpy as np

    sys.path.insert(0, str(REPO))
    from benchmarks import regimes
    from twinviz.twins.index import TwinIndex

    rng = np.random.default_rng(0)

    def stars(n_groups, size):
        """Chemistry in 2 weak dimensions shared by a group; 6 strong dimensions that differ per star."""
        groups = np.repeat(np.arange(n_groups), size)
        chem = rng.normal(scale=0.3, size=(n_groups, 2))[groups]
        return np.concatenate([chem, rng.normal(size=(groups.size, 6))], axis=1), groups

    few, g_few = stars(25, 8)                     # 200 stars, 25 groups: open-cluster scale
    pool = rng.normal(size=(500, 8)) * np.r_[0.3, 0.3, np.ones(6)]
    test, g_test = stars(200, 2)
    ones = np.ones(len(few))
    metric, table = regimes.fit_few_metric(few, g_few, 4500 * ones, 2.0 * ones, pool, 4500 * np.ones(500),
                                           2.0 * np.ones(500))
    assert metric is not None and metric.name in table and table[metric.name] > table["raw"]
    t = np.full(len(test), 4500.0)
    raw = (TwinIndex(test.astype(np.float32)).twin_ranks(g_test) == 1).mean()
    mapped = (TwinIndex(metric.project(test, t, t / 2250)).twin_ranks(g_test) == 1).mean()
    assert mapped > raw + 0.3


def test_the_frontend_study_scores_three_regimes_on_validation_and_marks_unfair_rows(tmp_path):
    report = tmp_path / "frontend.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "study_frontend.py"), "--size", "smoke", "--out",
           str(tmp_path / "out"), "--cells", "giants-lowd-noiseless", "--variants", "old-default",
           "default-fewtwins", "train-half", "--report", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    root = tmp_path / "out" / "smoke"
    rows = {r["variant"]: r for r in map(json.loads, (root / "study.jsonl").read_text().splitlines())}
    assert set(rows) == {"old-default", "default-fewtwins", "train-half"}
    assert all(set(r["val"]) == {"none", "few", "many"} for r in rows.values())
    assert rows["old-default"]["fair"] == ["none", "few", "many"] and rows["default-fewtwins"]["fair"] == ["few"]
    assert not (root / "giants-lowd-noiseless" / "test.nc").exists()  # the test split is never made
    from twinviz.spectra.dataset import load_spectra

    cell = root / "giants-lowd-noiseless"
    full, half = load_spectra(cell / "train.nc"), load_spectra(cell / "train-half-seed0-train.nc")
    assert 2 * half.sizes["star"] == full.sizes["star"]  # half the training pairs, whole pairs
    assert set(half["group"].values) < set(full["group"].values)
    assert json.loads((cell / "train-half-seed0" / "config.json").read_text())["data"].endswith("train-half-seed0-train.nc")
    log = (root / "giants-lowd-noiseless" / "default-fewtwins-seed0" / "train.log").read_text()
    assert "twin set" in log and "few.nc" in log  # the few twins fed the twin term
    text = report.read_text()
    assert "| giants-lowd-noiseless | default-fewtwins | 1 | [" in text  # its none row is bracketed
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # resumes: nothing retrained
    assert again.returncode == 0 and len((root / "study.jsonl").read_text().splitlines()) == 3
