"""Twin confidence: P(twin | latent distance) fitted on validation pairs (issue 13, part 3)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from twinviz import files as runfiles
from twinviz.twins.confidence import (CalibrationError, fit_calibration, load_calibration, save_calibration,
                                      weights_sha256)


def _pairs(n_pairs=400, dim=6, spread=1.0, twin_noise=0.15, seed=0, snr=None):
    """Latents of twin pairs: each pair a random centre, members a small step apart (larger at low SNR)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (n_pairs, dim))
    noise = twin_noise * (1.0 if snr is None else 50.0 / np.repeat(snr, 2)[:, None])
    z = np.repeat(centres, 2, axis=0) + rng.normal(0, 1, (2 * n_pairs, dim)) * noise
    groups = np.repeat(np.arange(n_pairs), 2)
    teff, logg = rng.uniform(4000, 5500, 2 * n_pairs), rng.uniform(1.0, 3.5, 2 * n_pairs)
    return z.astype(np.float32), groups, teff, logg


@pytest.mark.parametrize("method", ["isotonic", "logistic"])
def test_probability_falls_with_distance_and_beats_the_base_rate(method):
    z, groups, teff, logg = _pairs()
    cal = fit_calibration(z, groups, teff, logg, method=method, k=10)
    d = np.linspace(0, 5, 50)
    p = cal.probability(d)
    assert np.all(np.diff(p) <= 1e-12) and p[0] > 0.8 and p[-1] < 0.1
    assert 0.05 < cal.base_rate < 0.2  # about one twin among 10 neighbours
    assert cal.brier < 0.5 * cal.base_rate * (1 - cal.base_rate)  # far better than a constant
    for row in cal.reliability:  # held-out pairs: predicted ≈ observed where there are many pairs
        if row["n"] >= 100:
            assert abs(row["mean_p"] - row["fraction_twins"]) < 0.1


def test_logistic_uses_the_snr_when_it_varies_and_says_where_it_applies():
    rng = np.random.default_rng(1)
    snr = rng.choice([25.0, 100.0], 600)
    z, groups, teff, logg = _pairs(n_pairs=600, snr=snr, seed=1)
    cal = fit_calibration(z, groups, teff, logg, snr=np.repeat(snr, 2), method="logistic")
    assert cal.uses_snr and cal.snr_range == [25.0, 100.0]
    d = 0.6
    assert cal.probability(d, 25.0) > cal.probability(d, 100.0)  # noisy twins sit further apart
    with pytest.raises(CalibrationError, match="SNR"):
        cal.probability(d)
    assert cal.not_applicable(4500, 2.0, 50.0) is None
    assert "Teff" in cal.not_applicable(6500, 2.0, 50.0) and "SNR" in cal.not_applicable(4500, 2.0, 5.0)


def test_without_twins_the_fit_says_why():
    z, _, teff, logg = _pairs(n_pairs=20)
    with pytest.raises(CalibrationError, match="no star shares its group"):
        fit_calibration(z, np.arange(40), teff, logg)
    with pytest.raises(CalibrationError, match="method"):
        fit_calibration(z, np.repeat(np.arange(20), 2), teff, logg, method="platt")


def test_saved_calibration_round_trips_and_other_weights_are_refused_by_hash(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / runfiles.MODEL_WEIGHTS).write_bytes(b"weights one")
    assert load_calibration(model_dir) is None  # no file: no calibration, no error
    z, groups, teff, logg = _pairs(n_pairs=100)
    cal = fit_calibration(z, groups, teff, logg, model_sha256=weights_sha256(model_dir))
    path = save_calibration(cal, model_dir)
    assert json.loads(path.read_text())["model_sha256"] == weights_sha256(model_dir)
    loaded = load_calibration(model_dir)
    np.testing.assert_allclose(loaded.probability([0.1, 1.0, 3.0]), cal.probability([0.1, 1.0, 3.0]))
    (model_dir / runfiles.MODEL_WEIGHTS).write_bytes(b"weights two")  # retrained
    with pytest.raises(CalibrationError, match="model_sha256.*Fix: rerun `twinviz calibrate"):
        load_calibration(model_dir)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="unreadable"):
        load_calibration(model_dir)
