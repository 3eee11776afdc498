"""The polynomial-residual baseline on principal components: chosen on validation, scored on test."""
import json

import numpy as np
import pytest

from twinviz.cli import main as cli
from twinviz.evaluation.baselines import (choose_polynomial_pca, polynomial_pca_residuals, polynomial_residuals,
                                         residual_components)
from twinviz.evaluation.compute import evaluate
from twinviz.spectra.simulation import simulate


@pytest.fixture(scope="module")
def val_and_test():
    return simulate(150, seed=21), simulate(150, seed=22)


def test_components_are_the_leading_principal_directions_of_the_residuals():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((3, 50))
    x = rng.standard_normal((200, 3)) * [5.0, 2.0, 1.0] @ basis + 1e-3 * rng.standard_normal((200, 50))
    coords = residual_components(x.astype(np.float32), 3)
    centred = x - x.mean(axis=0)
    # Three components carry (nearly) all the variance of a rank-3 signal.
    assert coords.shape == (200, 3)
    assert np.square(coords).sum() == pytest.approx(np.square(centred).sum(), rel=1e-3)


def test_choice_is_made_on_the_validation_set_from_the_documented_grid(val_and_test):
    val, _ = val_and_test
    choice = choose_polynomial_pca(val, grid={"degree": (1, 2), "n_components": (5, 20)}, queries=200)
    assert len(choice["scores"]) == 4
    best = max(s["rank1"] for s in choice["scores"])
    picked = [s for s in choice["scores"]
              if (s["degree"], s["n_components"]) == (choice["degree"], choice["n_components"])][0]
    assert picked["rank1"] == best


def test_projected_residuals_have_the_chosen_number_of_columns(val_and_test):
    _, test = val_and_test
    vectors = polynomial_pca_residuals(test, 2, 12)
    assert vectors.shape == (test.sizes["star"], 12)
    assert polynomial_residuals(test, 2).shape[1] == test.sizes["wavelength"]


def test_evaluate_reports_it_and_records_where_it_was_chosen(val_and_test):
    val, test = val_and_test
    choice = choose_polynomial_pca(val, grid={"degree": (2,), "n_components": (10,)}, queries=100)
    report = evaluate(None, test, baselines=("polynomial", "polynomial_pca"), poly_pca=choice, pixel_queries=None)
    keys = [m.key for m in report.methods]
    assert keys == ["polynomial", "polynomial_pca"]
    assert report.settings["poly_pca"]["n_components"] == 10
    assert 0.0 <= report["polynomial_pca"].fractions.rank1 <= 1.0


def test_evaluate_refuses_the_baseline_without_a_validation_choice(val_and_test):
    with pytest.raises(ValueError, match="validation set"):
        evaluate(None, val_and_test[1], baselines=("polynomial_pca",))


def test_cli_refuses_to_choose_it_on_the_evaluated_file(tmp_path, val_and_test, capsys):
    from twinviz.testing import make_sample

    model_dir, data, _ = make_sample(tmp_path / "sample", n_pairs=30)
    code = cli(["evaluate", "--model", str(model_dir), "--data", str(data), "--baseline-val", str(data),
                "--out", str(tmp_path / "eval")])
    assert code == 2
    assert "--baseline-val is the evaluated file" in capsys.readouterr().err


def test_cli_adds_the_baseline_chosen_on_another_file(tmp_path, val_and_test):
    from twinviz.testing import make_sample

    model_dir, data, _ = make_sample(tmp_path / "sample", n_pairs=30)
    val = make_sample(tmp_path / "val", n_pairs=30, seed=5)[1]
    assert cli(["evaluate", "--model", str(model_dir), "--data", str(data), "--baseline-val", str(val),
                "--baselines", "raw_flux", "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [m["key"] for m in report["methods"]] == ["fader", "polynomial_pca", "raw_flux"]
    assert report["settings"]["poly_pca"]["chosen_on"] == str(val)


def test_the_degree_search_goes_on_while_rank_one_rises_and_stops_where_it_turns(val_and_test, monkeypatch):
    import twinviz.evaluation.baselines as baselines

    val = val_and_test[0]
    groups = val["group"].values
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(groups.max() + 1, 3))
    noise = {1: 3.0, 2: 1.0, 3: 0.3, 4: 0.1, 5: 1.0, 6: 0.0}  # rises to degree 4, turns at 5
    tried = []

    def residuals(ds, degree):
        tried.append(degree)
        return np.full((1, 1), degree)

    def components(marker, k, seed=0):
        d = int(marker[0, 0])
        return (centres[groups] + noise[d] * np.random.default_rng(d).normal(size=(groups.size, 3))).astype(np.float32)

    monkeypatch.setattr(baselines, "polynomial_residuals", residuals)
    monkeypatch.setattr(baselines, "residual_components", components)
    choice = choose_polynomial_pca(val, grid={"degree": (1, 2, 3, 4, 5, 6), "n_components": (5,)}, queries=100)
    assert tried == [1, 2, 3, 4, 5] and choice["degree"] == 4
