"""The nuisance augmenter of the invariance term (twinviz/training/augment.py) and the term in
training: the nuisances have the sizes they are documented to have, and a network trained with
the term moves its z less under them than the same network trained without."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from twinviz.spectra.grid import get_grid
from twinviz.spectra.nuisances import PERSISTENCE_RANGE_A
from twinviz.training import TrainConfig, Trainer
from twinviz.training.augment import NuisanceAugmenter

from twinviz.testing import write_toy

SMALL = dict(basis_dim=32, hidden=[128, 64], latent_dim=8, adversary_hidden=[64, 64], teff_bins=4,
             logg_bins=4, batch_size=64, warmup_steps=20, log_every=5, progress=False, num_threads=1,
             twin_term="off")  # the invariance term alone (the toy files are twin pairs)


@pytest.fixture(scope="module")
def grid():
    return get_grid().wavelength


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_the_continuum_error_has_the_documented_rms_and_is_smooth_per_chip(grid):
    aug = NuisanceAugmenter(grid, vbroad=0.0, mask_fraction=0.0, persistence_fraction=0.0)
    flux = torch.ones(2000, grid.size)
    out, mask = aug.augment(flux, None, _gen(0))
    assert not mask.any()
    dev = out - 1.0
    assert float(dev.pow(2).mean().sqrt()) == pytest.approx(0.0075, rel=0.05)
    # smooth: neighbouring pixels of one chip differ by far less than the error itself
    assert float((dev[:, 1:] - dev[:, :-1]).abs().median()) < 1e-4


def test_masks_cover_about_one_percent_plus_the_persistence_band_of_a_quarter_of_the_stars(grid):
    aug = NuisanceAugmenter(grid, vbroad=0.0, continuum_error=0.0)
    old = torch.zeros(4000, grid.size, dtype=torch.bool)
    old[:, 100] = True
    out, mask = aug.augment(torch.ones(4000, grid.size), old, _gen(1))
    assert torch.equal(out, torch.ones_like(out))  # masks alone leave the flux as it was
    assert mask[:, 100].all()  # the observed mask is kept
    band = torch.from_numpy((grid >= PERSISTENCE_RANGE_A[0]) & (grid <= PERSISTENCE_RANGE_A[1]))
    persistent = mask[:, band].all(1)
    assert float(persistent.float().mean()) == pytest.approx(0.25, abs=0.03)
    outside = mask[~persistent][:, ~band].float().mean()
    assert 0.006 < float(outside) < 0.012


def test_broadening_keeps_the_flux_of_a_line_and_makes_it_shallower(grid):
    aug = NuisanceAugmenter(grid, continuum_error=0.0, mask_fraction=0.0, persistence_fraction=0.0)
    flux = torch.ones(500, grid.size)
    flux[:, 3000] = 0.5  # an unresolved line, one pixel deep
    out, _ = aug.augment(flux, None, _gen(2))
    window = slice(3000 - aug.half_kernel, 3000 + aug.half_kernel + 1)
    np.testing.assert_allclose((1 - out[:, window]).sum(1).numpy(), 0.5, rtol=1e-4)  # equivalent width
    depth = 1 - out[:, 3000]
    assert float(depth.max()) <= 0.5 + 1e-6 and float(depth.min()) < 0.3  # ζ up to 8 km/s ≈ 2 px


def test_the_same_generator_seed_draws_the_same_nuisances(grid):
    aug = NuisanceAugmenter(grid)
    flux = torch.rand(8, grid.size) * 0.2 + 0.8
    a, b = aug.augment(flux, None, _gen(3)), aug.augment(flux, None, _gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="pixels"):
        aug.augment(flux[:, :10], None, _gen(3))


def _z_shift(run, data, wavelength) -> float:
    """Mean squared move of z under the nuisances, over z's variance, on the validation stars."""
    from twinviz.model import FaderNetwork
    from twinviz.spectra.dataset import load_spectra

    model = FaderNetwork.from_pretrained(run / "model")
    ds = load_spectra(data)
    flux = torch.from_numpy(ds["flux"].values.astype(np.float32))
    aug = NuisanceAugmenter(wavelength)
    flux_a, mask_a = aug.augment(flux, None, _gen(4))
    teff, logg = ds["teff"].values, ds["logg"].values
    with torch.no_grad():
        z = model.encode(flux, teff, logg)
        z_a = model.encode(flux_a, teff, logg, mask=mask_a)
    return float(((z_a - z) ** 2).mean() / z.var(0).mean())


def test_the_invariance_term_trains_on_pixels_and_makes_z_move_less_under_nuisances(tmp_path):
    from twinviz.spectra.dataset import load_spectra

    train, val = write_toy(tmp_path / "train.nc", 300, seed=0), write_toy(tmp_path / "val.nc", 100, seed=1)
    shifts = {}
    for nu in (0.0, 3.0):
        out = tmp_path / f"nu{nu}"
        trainer = Trainer(TrainConfig(data=str(train), val=str(val), out=str(out), epochs=6,
                                      invariance_weight=nu, **SMALL))
        assert (trainer.source.coef is None) == bool(nu)  # the term needs the pixels of every batch
        trainer.fit()
        steps = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "step"]
        if nu:
            assert steps[-1]["invariance"] < 0.5 * steps[0]["invariance"]
        else:
            assert "invariance" not in steps[-1]
        shifts[nu] = _z_shift(out, val, load_spectra(val)["wavelength"].values)
    assert shifts[3.0] < 0.5 * shifts[0.0], shifts


def test_invariance_nuisances_chooses_what_is_drawn(grid):
    from twinviz.training.augment import make_augmenter

    assert make_augmenter(TrainConfig(data="x.nc"), grid) is None  # ν = 0: no augmenter
    flux = torch.rand(50, grid.size) * 0.2 + 0.8
    only_masks = make_augmenter(TrainConfig(data="x.nc", invariance_weight=1.0, invariance_nuisances="masks"), grid)
    out, mask = only_masks.augment(flux, None, (0, 0, 1))
    assert torch.equal(out, flux) and mask.any()
    no_masks = make_augmenter(TrainConfig(data="x.nc", invariance_weight=1.0,
                                          invariance_nuisances="continuum+broadening"), grid)
    out, mask = no_masks.augment(flux, None, (0, 0, 1))
    assert not mask.any() and not torch.equal(out, flux)
    with pytest.raises(ValueError, match="invariance_nuisances"):
        TrainConfig(data="x.nc", invariance_nuisances="sky").validate()
