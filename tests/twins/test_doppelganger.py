"""The doppelganger rate (docs/evaluation.md): exact on small sets, seeded and unbiased on large ones."""
import math

import numpy as np

from twinviz.twins.ranks import doppelganger_rate, pair_distances


def _brute_force(x, groups):
    n = len(x)
    d = np.abs(x[:, None, :].astype(np.float64) - x[None, :, :].astype(np.float64)).sum(-1)
    i, j = np.triu_indices(n, k=1)
    twin = (groups[i] == groups[j]) & (groups[i] >= 0)
    median = np.median(d[i[twin], j[twin]])
    return float(np.mean(d[i[~twin], j[~twin]] <= median)), float(median)


def test_a_hand_checked_set():
    # twins (0,1) at distance 1 and (2,3) at distance 3: median twin distance 2. The 8 non-twin
    # pairs (star 4 has group -1): 0-2 10, 0-3 13, 1-2 9, 1-3 12, 0-4 1.5, 1-4 0.5, 2-4 8.5,
    # 3-4 11.5 → two of them ≤ 2.
    x = np.array([[0.0], [1.0], [10.0], [13.0], [1.5]], dtype=np.float32)
    groups = np.array([0, 0, 1, 1, -1])
    d = doppelganger_rate(x, groups)
    assert d.n_twin_pairs == 2 and d.n_pairs == 8 and not d.sampled
    assert d.median_twin_distance == 2.0
    assert d.rate == 2 / 8 and d.stderr is None


def test_matches_brute_force_when_every_pair_fits():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    groups = np.repeat(np.arange(30), 2)
    groups[:3] = [7, 7, 7]  # a group of three and a star left alone in group 0
    expected, median = _brute_force(x, groups)
    d = doppelganger_rate(x, groups)
    assert not d.sampled and d.rate == expected and d.median_twin_distance == median


def test_a_sample_is_seeded_and_close_to_the_exact_rate():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    x[1::2] = x[0::2] + rng.normal(scale=0.5, size=(200, 3)).astype(np.float32)  # twins nearby
    groups = np.repeat(np.arange(200), 2)
    exact = doppelganger_rate(x, groups, n_pairs=10**6)
    a = doppelganger_rate(x, groups, n_pairs=20_000, seed=3)
    b = doppelganger_rate(x, groups, n_pairs=20_000, seed=3)
    assert not exact.sampled and a.sampled and a == b
    assert abs(a.rate - exact.rate) < 4 * a.stderr
    assert 0.0 < exact.rate < 0.2


def test_identical_twins_score_zero_and_a_collapsed_space_one():
    rng = np.random.default_rng(2)
    x = np.repeat(rng.normal(size=(50, 2)), 2, axis=0).astype(np.float32)
    groups = np.repeat(np.arange(50), 2)
    assert doppelganger_rate(x, groups).rate == 0.0
    assert doppelganger_rate(np.zeros((100, 2), np.float32), groups).rate == 1.0


def test_undefined_without_twins_and_a_custom_distance():
    x = np.arange(6, dtype=np.float32)[:, None]
    assert math.isnan(doppelganger_rate(x, np.arange(6)).rate)
    groups = np.array([0, 0, 1, 1, 2, 2])
    # a distance that makes twins farther than everyone else: every non-twin pair counts
    d = doppelganger_rate(None, groups, distance=lambda i, j: np.where(groups[i] == groups[j], 5.0, 1.0))
    assert d.rate == 1.0
    assert np.allclose(pair_distances(x, [0, 1], [3, 5], "l2"), [3.0, 4.0])
