"""Cluster recovery on the latent and the baselines (issue 13, part 2)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import twinviz.evaluation.clusters as clusters_module
from twinviz.evaluation.cluster_report import cluster_dataset, cluster_markdown, write_cluster_report
from twinviz.evaluation.clusters import cluster_scores, find_clusters, score_representation
from twinviz.testing import make_sample, synthetic_latents


def test_perfect_clustering_scores_one_and_noise_field_stars_count_as_right():
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 3, 4])  # two clusters, three field stars (groups of one)
    found = np.array([5, 5, 5, 7, 7, 7, -1, -1, -1])
    s = cluster_scores(groups, found, min_cluster_size=3)
    assert s["homogeneity"] == pytest.approx(1) and s["completeness"] == pytest.approx(1)
    assert s["v_measure"] == pytest.approx(1) and s["recovered_fraction"] == 1.0 and s["n_groups_scored"] == 2


def test_merged_groups_lose_homogeneity_and_are_not_recovered_lost_members_lose_completeness():
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 3])
    merged = cluster_scores(groups, np.array([1, 1, 1, 1, 1, 1, -1, -1]), min_cluster_size=3)
    assert merged["homogeneity"] < 0.8 and merged["completeness"] == pytest.approx(1)
    assert merged["recovered_fraction"] == 0.0  # the found cluster is half of each: no majority
    lost = cluster_scores(groups, np.array([4, 4, -1, 6, 6, 6, -1, -1]), min_cluster_size=3)
    assert lost["homogeneity"] == pytest.approx(1) and lost["completeness"] < 1
    assert lost["recovered_fraction"] == 1.0  # 2 of 3 members, and nothing else, in one cluster
    # stars of unknown group (−1) are left out of the scores
    assert cluster_scores(np.r_[groups, -1, -1], np.r_[[4, 4, -1, 6, 6, 6, -1, -1], 4, 6],
                          min_cluster_size=3) == lost


@pytest.mark.parametrize("groups", [np.full(6, -1), np.arange(6)], ids=["unknown", "all-field"])
def test_without_groups_the_scores_are_absent_not_zero(groups):
    assert cluster_scores(groups, np.array([0, 0, 0, 1, 1, 1])) is None
    result = score_representation("fader", np.random.default_rng(0).normal(size=(6, 3)), None, min_cluster_size=2)
    assert result.v_measure is None and result.homogeneity is None and result.recovered_fraction is None


def test_hdbscan_finds_separated_blobs_and_both_distance_paths_agree(monkeypatch):
    z, _, which = synthetic_latents(600, dim=8, n_clusters=6, seed=1)
    labels = find_clusters(z, min_cluster_size=10)
    s = cluster_scores(which, labels, min_cluster_size=10)
    assert s["v_measure"] > 0.9 and s["recovered_fraction"] == 1.0
    monkeypatch.setattr(clusters_module, "PRECOMPUTED_MAX_STARS", 10)  # scikit-learn's own manhattan search
    np.testing.assert_array_equal(find_clusters(z, min_cluster_size=10), labels)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("clusters"), n_pairs=40)


def test_cluster_dataset_reports_every_representation_and_writes_files(sample, tmp_path):
    from twinviz.latents import load_latents
    from twinviz.spectra.dataset import load_spectra
    import xarray as xr

    _, data, latents = sample
    ds = load_spectra(data)
    z = load_latents(latents)["z"].values
    report = cluster_dataset(ds, z, baselines=("polynomial_pca", "oracle"), poly_pca={"degree": 1, "n_components": 5},
                             min_cluster_size=2)
    assert [m.key for m in report.methods] == ["fader", "polynomial_pca", "oracle"]
    assert report.n_groups == 40 and all(m.v_measure is not None for m in report.methods)
    oracle = report.methods[-1]
    assert oracle.v_measure > 0.95  # true abundances: twins are identical points
    paths = write_cluster_report(report, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["methods"][2]["v_measure"] == pytest.approx(oracle.v_measure)
    labels = xr.load_dataset(paths["labels"])
    np.testing.assert_array_equal(labels["cluster_oracle"].values, oracle.labels)
    assert "V-measure, fader latent / strongest baseline" in paths["md"].read_text()


def test_clusters_cli_runs_without_groups_and_says_the_scores_are_absent(sample, tmp_path):
    from twinviz.spectra.dataset import load_spectra, save_spectra

    model, data, _ = sample
    ds = load_spectra(data)
    ds["group"].values[:] = -1
    nogroups = save_spectra(ds, tmp_path / "nogroups.nc")
    cmd = [sys.executable, "-m", "twinviz", "clusters", "--model", str(model), "--data", str(nogroups),
           "--baselines", "oracle", "--min-cluster-size", "2", "--out", str(tmp_path / "rep")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "group scores are absent" in result.stdout and "| absent | absent | absent | absent |" in result.stdout
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["n_groups"] == 0 and saved["methods"][0]["v_measure"] is None
    bad = subprocess.run(cmd[:-2] + ["--baselines", "nonsense"], capture_output=True, text=True, timeout=180)
    assert bad.returncode == 2 and "Fix:" in bad.stderr and "nonsense" in bad.stderr


def test_markdown_says_when_the_target_is_not_met():
    from twinviz.evaluation.cluster_report import ClusterReport
    from twinviz.evaluation.clusters import ClusterResult

    def result(key, v):
        return ClusterResult(key=key, label=key, dim=2, labels=np.zeros(3, np.int64), v_measure=v,
                             homogeneity=v, completeness=v, recovered_fraction=0.5, n_groups_scored=2)
    report = ClusterReport(n_stars=3, n_groups=2, methods=[result("fader", 0.9), result("polynomial_pca", 0.8)],
                           star_ids=np.arange(3), settings={"data": "x", "algorithm": "a", "min_cluster_size": 5,
                                                            "min_samples": None})
    assert "1.12×" in cluster_markdown(report) and "not met" in cluster_markdown(report)
    report.methods[1].v_measure = 0.5
    assert "1.80×" in cluster_markdown(report) and "(issue 13's target: ≥ 1.5×, met)" in cluster_markdown(report)
