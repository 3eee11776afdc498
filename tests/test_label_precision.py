"""benchmarks/label_precision.py: the pieces its table rests on."""
import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import label_precision as lp  # noqa: E402


def _groups(n_pairs):
    return np.repeat(np.arange(n_pairs), 2)


def test_twins_with_identical_features_rank_first_and_a_collapsed_space_ranks_last():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 3))
    features = np.repeat(centres, 2, axis=0)
    assert lp.twin_rank(features, _groups(50)) == (1.0, 1.0)
    # all features equal: every other star ties with the twin, and ties count against the star
    r1, _ = lp.twin_rank(np.zeros((100, 3)), _groups(50))
    assert r1 == 0.0


def test_ridge_recovers_a_linear_map_on_held_out_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 5))
    w = rng.normal(size=(5, 2))
    y = x @ w + 0.3
    pred, strength = lp.ridge_predict(x[:500], y[:500], x[500:])
    assert np.abs(pred - y[500:]).max() < 1e-3 and strength <= 1e-2


def test_only_the_directions_in_which_labels_vary_are_kept():
    rng = np.random.default_rng(2)
    fe = rng.normal(size=80)
    alpha = rng.normal(size=80)
    x_fe = np.stack([alpha, alpha, 0 * alpha, alpha], axis=1)  # one varying direction among four
    ds = xr.Dataset({"fe_h": ("star", fe), "x_fe": (("star", "element"), x_fe)})
    train, test = lp.varying_labels(ds, ds)
    assert train.shape == (80, 2) and test.shape == (80, 2)


def _spectra(flux, teff, logg):
    from twinviz.spectra.dataset import make_spectra

    n = len(teff)
    return make_spectra(flux.astype(np.float32), 15200.0 + 0.2 * np.arange(flux.shape[1]), teff, logg,
                        group=np.repeat(np.arange(n // 2), 2))


def test_the_polynomial_and_components_are_fitted_on_the_training_split_only():
    rng = np.random.default_rng(3)
    n, p = 200, 30
    teff, logg = rng.uniform(4000, 5500, n), rng.uniform(1, 3.5, n)
    t, g = (teff - 4750) / 750, (logg - 2.25) / 1.25
    coef = rng.normal(size=(3, p))
    smooth = 0.8 + 0.01 * (coef[0] + t[:, None] * coef[1] + g[:, None] * coef[2])
    train = _spectra(smooth + 0.001 * rng.normal(size=(n, p)), teff, logg)
    # a "test" set that is the training polynomial exactly, plus one wild star: its residuals are
    # zero except that star's, which a fit including the test set would have spread to the others
    wild = smooth.copy()
    wild[0] += 0.5
    test = _spectra(wild, teff, logg)
    r_train, r_test = lp.train_fitted_residuals(train, [test], 1, None)
    r_train_alone, = lp.train_fitted_residuals(train, [], 1, None)
    np.testing.assert_array_equal(r_train, r_train_alone)
    assert np.abs(r_test[1:]).max() < 0.002 and np.abs(r_test[0] - 0.5).max() < 0.002
    pcs_train, pcs_test = lp.train_fitted_residuals(train, [test], 1, 5)
    assert pcs_train.shape == (n, 5) and pcs_test.shape == (n, 5)


def test_the_degree_sweep_stops_where_rank_one_turns(monkeypatch):
    scores = {1: 0.2, 2: 0.5, 3: 0.6, 4: 0.55, 5: 0.9}  # turns at 4; 5 must never be tried
    tried = []

    def fake_residuals(train, others, degree, components):
        tried.append(degree)
        return [degree, degree]

    monkeypatch.setattr(lp, "train_fitted_residuals", fake_residuals)
    best, table = lp.degree_sweep(None, None, "test", None, lambda v, t: scores[v])
    assert best == 3 and tried == [1, 2, 3, 4] and table[-1] == (4, 0.55)


def test_a_non_linear_read_out_recovers_what_a_linear_one_cannot():
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 2, size=(3000, 2))
    y = np.stack([np.sin(2 * x[:, 0]) * x[:, 1], np.abs(x[:, 0])], axis=1)
    linear, _ = lp.ridge_predict(x[:2500], y[:2500], x[2500:])
    knn, k = lp.knn_predict(x[:2500], y[:2500], x[2500:])
    mlp, _ = lp.mlp_predict(x[:2500], y[:2500], x[2500:])
    err = {name: np.sqrt(((pred - y[2500:]) ** 2).mean()) for name, pred in
           (("linear", linear), ("knn", knn), ("mlp", mlp))}
    assert err["knn"] < 0.3 * err["linear"] and err["mlp"] < 0.5 * err["linear"] and k in (5, 10, 20, 50)
