"""The twin-supervised baseline: polynomial-PCA residuals in a twin metric, fitted on the training
twins and chosen on validation (twinviz/evaluation/supervised_baseline.py)."""
import json

import numpy as np
import pytest

from twinviz.cli import main as cli
from twinviz.evaluation.baselines import polynomial_pca_residuals
from twinviz.evaluation.compute import evaluate
from twinviz.evaluation.supervised_baseline import fit_polynomial_pca_metric
from twinviz.spectra.simulation import simulate
from twinviz.twins.index import TwinIndex


@pytest.fixture(scope="module")
def splits():
    """Low-d chemistry (only [Fe/H] and [α/Fe] vary): the suite's hardest regime."""
    return tuple(simulate(n, seed=s, chemistry="low-d") for n, s in ((600, 41), (150, 42), (150, 43)))


def rank1(vectors, groups):
    return float(np.mean(TwinIndex(np.asarray(vectors, np.float32)).twin_ranks(groups) == 1))


def test_it_learns_on_training_twins_chooses_on_validation_and_wins_on_held_out_stars(splits):
    train, val, test = splits
    fitted = fit_polynomial_pca_metric(train, val, poly_degrees=(2,), n_components=32)
    info = fitted.info
    assert info["chosen_on"]["n_star"] == val.sizes["star"] and info["poly_degree"] == 2 and info["n_components"] == 32
    assert set(info["validation"]) == {"2"}
    groups = test["group"].values
    supervised = rank1(fitted.vectors(test), groups)
    unsupervised = rank1(polynomial_pca_residuals(test, 2, 32), groups)
    # The twin metric turns 32 residual components into the few that separate chemistries.
    assert supervised > 2 * unsupervised and supervised > 0.5
    # Nothing is fitted on the scored stars: their vectors do not depend on the other test stars.
    np.testing.assert_allclose(fitted.vectors(test.isel(star=slice(0, 40))), fitted.vectors(test)[:40], atol=1e-4)


def test_evaluate_adds_its_row_and_records_the_choices(splits):
    train, val, test = splits
    fitted = fit_polynomial_pca_metric(train, val, poly_degrees=(2,), n_components=16)
    report = evaluate(None, test, baselines=(), supervised=fitted)
    assert [m.key for m in report.methods] == ["polynomial_pca_metric"]
    assert report.settings["polynomial_pca_metric"]["poly_degree"] == 2


def test_cli_adds_it_beside_the_fader_row_and_refuses_the_evaluated_file(tmp_path, capsys):
    from twinviz.testing import make_sample

    model_dir, data, _ = make_sample(tmp_path / "sample", n_pairs=30)
    val = make_sample(tmp_path / "val", n_pairs=30, seed=5)[1]
    train = make_sample(tmp_path / "train", n_pairs=150, seed=6)[1]
    base = ["evaluate", "--model", str(model_dir), "--data", str(data), "--baselines", "",
            "--baseline-val", str(val), "--out", str(tmp_path / "eval")]
    assert cli(base + ["--baseline-train", str(train)]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [m["key"] for m in report["methods"]] == ["fader", "polynomial_pca", "polynomial_pca_metric"]
    assert report["settings"]["polynomial_pca_metric"]["fitted_on"]["path"].endswith("train/sample.nc")

    assert cli(base + ["--baseline-train", str(data)]) != 0
    err = capsys.readouterr().err
    assert "--baseline-train" in err and "is the evaluated file" in err and "Fix:" in err
