"""The information limit (twinviz/evaluation/information.py): Cramér–Rao by hand, and on the synthesizer."""
import numpy as np
import pytest

from twinviz.evaluation.information import (InformationError, chemistry_covariance, information_limit,
                                            limit_scores, mahalanobis_ranks)
from twinviz.spectra.simulation import simulate
from twinviz.twins.index import TwinIndex


def test_one_parameter_by_hand():
    # F = a·θ on P pixels with noise σ: J = P a²/σ², so var(θ̂) ≥ σ²/(P a²)
    a, sigma, pixels = 0.3, 0.02, 500
    fisher = np.array([[[pixels * a * a / sigma ** 2]]])
    assert chemistry_covariance(fisher, 1)[0, 0, 0] == pytest.approx(sigma ** 2 / (pixels * a * a), rel=1e-12)


def test_a_nuisance_is_marginalised_not_fixed():
    # two pixels, σ = 1: the chemistry moves both (1, 1), a nuisance the first only (1, 0).
    d = np.array([[1.0, 1.0], [1.0, 0.0]])  # rows: pixels; columns: θ, ν
    fisher = (d.T @ d)[None]                 # [[2, 1], [1, 1]]
    assert chemistry_covariance(fisher, 1)[0, 0, 0] == pytest.approx(1.0)   # only pixel 2 is clean
    assert chemistry_covariance(fisher[:, :1, :1], 1)[0, 0, 0] == pytest.approx(0.5)  # ν known
    # a nuisance the spectrum does not feel (a zero column) changes nothing
    d0 = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert chemistry_covariance((d0.T @ d0)[None], 1)[0, 0, 0] == pytest.approx(0.5)


def test_with_equal_covariances_the_ranks_are_euclidean_ranks():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(80, 3))
    theta[1::2] = theta[0::2] + rng.normal(scale=0.3, size=(40, 3))
    groups = np.repeat(np.arange(40), 2)
    cov = np.repeat(0.01 * np.eye(3)[None], 80, axis=0)
    expected = TwinIndex(theta.astype(np.float32), metric="l2").twin_ranks(groups)
    assert np.array_equal(mahalanobis_ranks(theta.astype(np.float32).astype(np.float64), cov, groups), expected)


def test_noiseless_spectra_give_every_twin_rank_one():
    ds = simulate(15, seed=3, population="dwarfs", chemistry="low-d")
    limit = information_limit(ds)
    assert np.all(limit.covariance == 0) and limit.theta.shape == (30, 2)
    (row,) = limit_scores(limit, ds["group"].values, seeds=(0,))
    assert row["rank1"] == 1.0 and row["doppelganger_rate"] == 0.0


def test_the_limit_falls_as_the_snr_falls():
    kw = dict(seed=4, population="giants", chemistry="low-d", nuisances="realistic")
    high, low = (information_limit(simulate(40, snr=snr, **kw)) for snr in (200.0, 10.0))
    # same labels and nuisances (the noise has its own stream): C ∝ σ² exactly
    assert np.array_equal(high.theta, low.theta)
    np.testing.assert_allclose(low.covariance, high.covariance * 400.0, rtol=1e-6)
    assert {"vmicro", "vbroad", "rv", "continuum"} == set(high.info["nuisances_marginalised"])
    groups = np.repeat(np.arange(40), 2)
    r_high, r_low = (np.mean([r["rank1"] for r in limit_scores(x, groups)]) for x in (high, low))
    assert r_high > r_low and r_high > 0.9


def test_data_not_from_the_synthesizer_are_refused():
    ds = simulate(3, seed=1)
    ds.attrs.pop("generator")
    with pytest.raises(InformationError, match="twinviz simulate"):
        information_limit(ds)
