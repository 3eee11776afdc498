"""FaderNetwork: shapes and units, normalisation owned by the model, save/load, grid checks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from twinviz.model import FaderNetwork, ModelConfig, ModelError, encode_arrays

from twinviz.testing import toy_arrays


def _model(n_pixels=160, mode="joint", basis_dim=16, seed=0, residual_degree=0):
    torch.manual_seed(seed)
    wave = 15200.0 + 0.2 * np.arange(n_pixels)
    from twinviz.spectra.grid import grid_id

    cfg = ModelConfig(n_pixels=n_pixels, grid_id=grid_id(wave), latent_dim=6, basis_dim=basis_dim,
                      hidden=[32, 16], adversary_hidden=[16], adversary_mode=mode, residual_degree=residual_degree,
                      teff_bin_edges=[4000, 4500, 5000, 5500], logg_bin_edges=[1, 2, 3.5])
    model = FaderNetwork(cfg)
    model.set_flux_normalisation(np.full(n_pixels, 0.9), 0.05)
    return model


def _batch(n=8, seed=0):
    flux, _, teff, logg, _, _ = toy_arrays(n_groups=n // 2, seed=seed)
    return torch.from_numpy(flux), torch.tensor(teff, dtype=torch.float32), torch.tensor(logg, dtype=torch.float32)


def test_encode_and_decode_map_flux_to_latent_and_back_in_dataset_units():
    model = _model()
    flux, teff, logg = _batch()
    with torch.no_grad():
        z = model.encode(flux, teff, logg)
        x = model.decode(z, teff, logg)
    assert z.shape == (8, 6)
    assert x.shape == flux.shape
    # An untrained decoder still lands near the model's flux offset, i.e. dataset units.
    assert abs(float(x.mean()) - 0.9) < 0.5


def test_label_bins_follow_the_saved_edges_in_joint_and_separate_modes():
    teff = torch.tensor([3900.0, 4600.0, 4999.0, 6000.0])
    logg = torch.tensor([0.5, 1.5, 2.5, 4.0])
    joint = _model(mode="joint").label_bins(teff, logg)
    assert joint.tolist() == [0, 2, 3, 5]  # teff_bin * 2 + logg_bin; outliers fall in outer bins
    sep = _model(mode="separate").label_bins(teff, logg)
    assert sep.tolist() == [[0, 0], [1, 0], [1, 1], [2, 1]]
    assert _model(mode="separate").config.n_classes == 5


def test_masked_pixels_carry_no_information_into_the_encoder():
    model = _model()
    flux, teff, logg = _batch()
    mask = torch.zeros_like(flux, dtype=torch.bool)
    mask[:, 10:30] = True
    garbage = flux.clone()
    garbage[:, 10:30] = torch.nan
    z1 = model.encode(flux, teff, logg, mask)
    z2 = model.encode(garbage, teff, logg, mask)
    assert torch.equal(z1, z2)


def test_encode_arrays_matches_encode_in_chunks():
    model = _model()
    flux, teff, logg = _batch(n=10)
    with torch.no_grad():
        ref = model.encode(flux, teff, logg).numpy()
    out = encode_arrays(model, flux.numpy(), teff.numpy(), logg.numpy(), batch_size=3)
    assert out.dtype == np.float32 and out.shape == (10, 6)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["joint", "separate"])
def test_save_then_load_gives_identical_outputs(tmp_path, mode):
    model = _model(mode=mode).eval()
    flux, teff, logg = _batch()
    model.save_pretrained(tmp_path / "m")
    loaded = FaderNetwork.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        for a, b in [(model.encode(flux, teff, logg), loaded.encode(flux, teff, logg)),
                     (model(flux, teff, logg), loaded(flux, teff, logg)),
                     (model.adversary_logits(model.encode(flux, teff, logg)),
                      loaded.adversary_logits(loaded.encode(flux, teff, logg)))]:
            assert torch.equal(a, b)
    assert loaded.config == model.config
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


def test_loaded_model_keeps_its_own_normalisation(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m")
    loaded = FaderNetwork.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.flux_offset, torch.full((160,), 0.9))
    assert torch.allclose(loaded.flux_scale, torch.full((160,), 0.05))


def test_grid_mismatch_raises_an_error_naming_both_grids():
    from twinviz.spectra.grid import get_grid

    model = _model()
    model.check_grid(15200.0 + 0.2 * np.arange(160))  # its own grid passes
    with pytest.raises(ModelError) as err:
        model.check_grid(get_grid("apogee-aspcap-dr12").wavelength)
    msg = str(err.value)
    assert model.config.grid_id in msg and "apogee-aspcap-dr12" in msg


def test_grid_check_accepts_a_dataset():
    from twinviz.spectra.dataset import make_spectra

    flux, wave, teff, logg, group, _ = toy_arrays(n_groups=2, n_pixels=100)
    ds = make_spectra(flux, wave, teff, logg, group=group)
    with pytest.raises(ModelError, match="100 px"):
        _model().check_grid(ds)


def test_truncated_weights_file_raises_a_clear_error(tmp_path):
    _model().save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        FaderNetwork.from_pretrained(tmp_path / "m")


def test_corrupt_config_raises_a_clear_error(tmp_path):
    _model().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt model config"):
        FaderNetwork.from_pretrained(tmp_path / "m")


def test_missing_model_directory_raises_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="missing"):
        FaderNetwork.from_pretrained(tmp_path / "nothing")


def test_weights_of_another_architecture_are_refused(tmp_path):
    _model().save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["latent_dim"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not match"):
        FaderNetwork.from_pretrained(tmp_path / "m")


def test_invalid_config_is_refused_up_front():
    with pytest.raises(ModelError, match="adversary_mode"):
        ModelConfig(n_pixels=10, adversary_mode="both")
    with pytest.raises(ModelError, match="teff_bin_edges"):
        ModelConfig(n_pixels=10, teff_bin_edges=[5000, 4000])


def test_architecture_options_are_declared_once_for_model_and_training():
    import dataclasses

    from twinviz.layers import ACTIVATIONS
    from twinviz.options import Architecture, meta
    from twinviz.training.config import TrainConfig

    shared = {f.name: f for f in dataclasses.fields(Architecture)}
    for cls in (ModelConfig, TrainConfig):
        assert issubclass(cls, Architecture)
        own = {f.name: f for f in dataclasses.fields(cls) if f.name in shared}
        assert {n: f.metadata for n, f in own.items()} == {n: f.metadata for n, f in shared.items()}
    # every activation a config may declare is one the network can build, and no other
    assert set(meta(shared["activation"], "choices")) == set(ACTIVATIONS)
    with pytest.raises(ModelError, match="activation"):
        ModelConfig(n_pixels=10, activation="relu")


def test_saved_configs_of_the_demo_still_load():
    from pathlib import Path

    from twinviz.training.config import TrainConfig

    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "model"
    model = FaderNetwork.from_pretrained(demo)
    assert model.config.activation == "silu" and model.config.hidden == [1024, 512]
    train_config = TrainConfig.load(demo / "train_config.json")
    assert train_config.latent_dim == model.config.latent_dim and train_config.epochs == 60
    saved = json.loads((demo / "train_config.json").read_text())
    # written before residual_degree existed: loads as the run it was (no polynomial subtracted)
    assert "residual_degree" not in saved and train_config.residual_degree == 0
    # twin_term: its twin_weight 0.0 meant no twin term, which "off" keeps (today's default is "auto")
    added_since = {"residual_degree": 0, "twin_set": None, "conv_channels": 0, "invariance_weight": 0.0,
                   "invariance_nuisances": "continuum+broadening+masks", "twin_term": "off"}
    assert json.loads(train_config.to_json()) == {**saved, **added_since}


def test_weights_with_bytes_flipped_mid_file_are_refused_naming_the_file_and_the_fix(tmp_path):
    """A damaged model.safetensors that still parses (values changed, not truncated) used to load
    without a word; its SHA-256 no longer matches the digest config.json recorded."""
    _model().save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model.safetensors: corrupt or truncated.*weights_sha256.*Fix"):
        FaderNetwork.from_pretrained(tmp_path / "m")


def _residual_model(degree=2):
    return _model(residual_degree=degree)  # label_mean starts at zero


def test_the_residual_front_end_subtracts_its_polynomial_and_adds_it_back():
    model = _residual_model(degree=2)
    n = model.config.n_pixels
    rng = np.random.default_rng(0)
    coef = rng.normal(0, 0.1, (6, n)).astype(np.float32)  # 1, g, g², t, t·g, t² (label_terms order)
    model.set_label_mean(coef)
    flux, teff, logg = _batch()
    u = model.scale_labels(teff, logg)
    t, g = u[:, :1].double().numpy(), u[:, 1:].double().numpy()
    terms = np.concatenate([t ** i * g ** j for i, j in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]], 1)
    plain = (flux.double().numpy() - 0.9) / 0.05
    x = model.normalise_flux(flux, None, u)
    np.testing.assert_allclose(x.double().numpy(), plain - terms @ coef, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(model.denormalise_flux(x, u), flux, rtol=0, atol=1e-5)
    with pytest.raises(ModelError, match="polynomial in \\(Teff, logg\\)"):
        model.normalise_flux(flux)  # without u it cannot know what to subtract
    with pytest.raises(ModelError, match="do not fit"):
        model.set_label_mean(coef[:3])
    # masked pixels still enter as exactly 0 (no information), whatever the polynomial says there
    mask = torch.zeros_like(flux, dtype=torch.bool)
    mask[:, 5:9] = True
    assert torch.all(model.normalise_flux(flux, mask, u)[:, 5:9] == 0)


def test_a_residual_model_round_trips_and_old_configs_load_without_a_residual(tmp_path):
    model = _residual_model(degree=3)
    model.set_label_mean(np.random.default_rng(1).normal(0, 0.1, model.label_mean.shape))
    flux, teff, logg = _batch()
    model.save_pretrained(tmp_path / "m")
    loaded = FaderNetwork.from_pretrained(tmp_path / "m")
    assert loaded.config.residual_degree == 3
    with torch.no_grad():
        torch.testing.assert_close(loaded(flux, teff, logg), model.eval()(flux, teff, logg))
    # a config written before the option existed means "no polynomial"
    _model().save_pretrained(tmp_path / "old")
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    cfg.pop("residual_degree")
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    old = FaderNetwork.from_pretrained(tmp_path / "old")
    assert old.config.residual_degree == 0 and not hasattr(old, "label_mean")
