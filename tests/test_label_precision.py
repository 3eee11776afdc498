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
