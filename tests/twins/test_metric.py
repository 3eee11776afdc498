"""The twin metric (twinviz/twins/metric.py): learned from training twins, chosen on validation,
stored beside the weights, used wherever twins are ranked."""
import json

import numpy as np
import pytest

from twinviz.twins.index import TwinIndex
from twinviz.twins.metric import (METRIC_CONFIG, METRIC_FILE, TwinMetric, TwinMetricError,
                                  choose_twin_metric, fit_twin_metric, fit_twin_metrics)


def latents_with_leaky_axes(n_pairs, seed, leak=3.0):
    """z [2n, 6]: 2 axes of chemistry (shared by the two twins), 4 axes that differ between twins
    (what an imperfect adversary leaves of Teff/logg) with a larger spread."""
    rng = np.random.default_rng(seed)
    chem = np.repeat(rng.normal(0, 1, (n_pairs, 2)), 2, axis=0)
    leaky = rng.normal(0, leak, (2 * n_pairs, 4))
    mix = np.linalg.qr(np.random.default_rng(99).normal(size=(6, 6)))[0]  # rotated: no axis is pure
    z = np.hstack([chem, leaky]) @ mix
    return z.astype(np.float32), np.repeat(np.arange(n_pairs), 2)


def rank1(vectors, groups):
    ranks = TwinIndex(np.asarray(vectors, np.float32)).twin_ranks(groups)
    return float(np.mean(ranks == 1))


def test_the_metric_finds_the_chemistry_axes_and_validation_keeps_only_those():
    z_train, g_train = latents_with_leaky_axes(2000, seed=0)
    z_val, g_val = latents_with_leaky_axes(500, seed=1)
    z_test, g_test = latents_with_leaky_axes(500, seed=2)
    metric = fit_twin_metric(z_train, g_train, source="train")
    assert metric.ratios[0] > 10 * metric.ratios[2]  # two axes carry the between-twin variance
    chosen = choose_twin_metric(metric, z_val, g_val, source="val")
    assert chosen is not None and chosen.dims == 2
    assert chosen.info["chosen_on"] == "val" and set(chosen.info["validation"]) == {"raw", "2", "4", "6"}
    raw, projected = rank1(z_test, g_test), rank1(chosen.project(z_test), g_test)
    assert raw < 0.5 and projected > 0.95  # on held-out stars, not the ones it was fitted or chosen on


def test_raw_z_is_kept_when_nothing_leaks():
    def clean(n, seed):
        r = np.random.default_rng(seed)
        z = np.repeat(r.normal(0, 1, (n, 4)), 2, axis=0) + r.normal(0, 1e-3, (2 * n, 4))
        return z.astype(np.float32), np.repeat(np.arange(n), 2)

    z_val, g_val = clean(200, 1)
    assert rank1(z_val, g_val) == 1.0  # raw z is already perfect: no projection can beat it
    assert choose_twin_metric(fit_twin_metric(*clean(500, 0)), z_val, g_val) is None  # ties keep raw z


def test_too_few_twins_are_refused_with_the_reason():
    z, g = latents_with_leaky_axes(3, seed=0)
    with pytest.raises(TwinMetricError, match=r"train\.nc: group: .* too few .* Fix:"):
        fit_twin_metric(z, g, source="train.nc")


def test_saved_and_loaded_without_pickle_and_a_broken_file_is_named(tmp_path):
    z, g = latents_with_leaky_axes(300, seed=0)
    metric = fit_twin_metric(z, g).with_dims(3)
    metric.info["note"] = "kept"
    metric.save(tmp_path)
    assert json.loads((tmp_path / METRIC_CONFIG).read_text())["dims"] == 3
    back = TwinMetric.load(tmp_path)
    assert back.dims == 3 and back.info["note"] == "kept"
    np.testing.assert_array_equal(back.project(z), metric.project(z))
    assert TwinMetric.load(tmp_path / "elsewhere") is None
    (tmp_path / METRIC_FILE).write_bytes(b"not safetensors")
    with pytest.raises(TwinMetricError, match="twin metric: unreadable.*Fix: retrain"):
        TwinMetric.load(tmp_path)


def latents_turning_with_teff(n_pairs, seed):
    """z [2n, 4]: 2 chemistry axes whose direction turns with Teff (an encoder that disentangles
    imperfectly, differently at each Teff), 2 axes of noise; with each star's Teff and logg."""
    r = np.random.default_rng(seed)
    chem = np.repeat(r.normal(0, 1, (n_pairs, 2)), 2, axis=0)
    teff, logg = r.uniform(4000, 5000, 2 * n_pairs), r.uniform(1, 3, 2 * n_pairs)
    angle = (teff - 4500) / 500 * 0.6
    c, s = np.cos(angle), np.sin(angle)
    turned = np.stack([c * chem[:, 0] - s * chem[:, 1], s * chem[:, 0] + c * chem[:, 1]], 1)
    z = np.hstack([turned, r.normal(0, 1, (2 * n_pairs, 2))]).astype(np.float32)
    return z, np.repeat(np.arange(n_pairs), 2), teff, logg


def test_teff_logg_interactions_undo_a_direction_that_turns_with_teff():
    z, g, t, lg = latents_turning_with_teff(3000, 0)
    zv, gv, tv, lv = latents_turning_with_teff(500, 1)
    ze, ge, te, le = latents_turning_with_teff(500, 2)
    metrics = fit_twin_metrics(z, g, teff=t, logg=lg, source="train")
    assert [m.degree for m in metrics] == [0, 1, 2]
    chosen = choose_twin_metric(metrics, zv, gv, teff=tv, logg=lv, source="val")
    assert chosen.degree > 0 and chosen.name in chosen.info["validation"]
    flat = choose_twin_metric(metrics[0], zv, gv)  # z alone cannot follow the turn
    assert rank1(ze, ge) < 0.1 and rank1(flat.project(ze), ge) < 0.2
    assert rank1(chosen.project(ze, te, le), ge) > 0.9  # held-out stars
    with pytest.raises(TwinMetricError, match="Teff/logg.*Fix: pass the stars' teff and logg"):
        chosen.project(ze)


def test_a_metric_with_interactions_is_saved_and_loaded_whole(tmp_path):
    z, g, t, lg = latents_turning_with_teff(300, 0)
    metric = fit_twin_metric(z, g, teff=t, logg=lg, degree=2).with_dims(3)
    metric.save(tmp_path)
    back = TwinMetric.load(tmp_path, latent_dim=4)
    assert (back.degree, back.dims) == (2, 3)
    np.testing.assert_array_equal(back.project(z, t, lg), metric.project(z, t, lg))
    with pytest.raises(TwinMetricError, match="29 features do not fit a 8-dim latent.*other weights.*Fix"):
        TwinMetric.load(tmp_path, latent_dim=8)


def test_a_metric_file_from_before_interactions_loads_as_z_alone(tmp_path):
    from safetensors.numpy import save_file

    z, g = latents_with_leaky_axes(300, seed=0)
    metric = fit_twin_metric(z, g).with_dims(2)
    save_file({"mean": metric.mean, "projection": metric.projection, "ratios": metric.ratios},
              str(tmp_path / METRIC_FILE))
    (tmp_path / METRIC_CONFIG).write_text(json.dumps({"format": "twinviz-twin-metric", "dims": 2}))
    back = TwinMetric.load(tmp_path)
    assert back.degree == 0
    np.testing.assert_array_equal(back.project(z), metric.project(z))
