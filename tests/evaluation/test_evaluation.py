"""Table-1 evaluation: baselines behave as specified, model errors, reports on disk."""
import json

import numpy as np
import pytest
import torch

from twinviz.evaluation.baselines import polynomial_design, polynomial_residuals, raw_flux, true_abundances
from twinviz.testing import untrained_model
from twinviz.evaluation.compute import evaluate, evaluate_representation, model_errors
from twinviz.evaluation.report import write_report
from twinviz.evaluation.results import PAPER_REFERENCE
from twinviz.twins.groups import swap_partners
from twinviz.spectra.dataset import DatasetError, make_spectra


def additive_dataset(n_groups=150, n_pixels=40, degree=2, seed=0, with_labels=True):
    """Flux = chemistry(group) + a per-pixel polynomial of total `degree` in (Teff, logg).

    The polynomial part is much larger than the chemical differences, so raw flux cannot find
    twins, while the polynomial baseline removes it exactly (up to the in-sample fit).
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_groups
    group = np.repeat(np.arange(n_groups), 2)
    chem_labels = rng.normal(0, 0.3, (n_groups, 8))
    # Full-rank chemistry (every pixel its own response) keeps different groups well apart.
    chem = np.repeat(chem_labels @ rng.normal(0, 1, (8, n_pixels)) + rng.normal(0, 1, (n_groups, n_pixels)),
                     2, axis=0)
    teff = rng.uniform(4000, 5500, n)
    logg = rng.uniform(1.0, 3.5, n)
    design = polynomial_design(teff, logg, degree, center=(4750, 2.25), scale=(750, 1.25))
    coeffs = rng.normal(0, 1.0, (design.shape[1], n_pixels))
    flux = 0.8 + 0.01 * (chem + design @ coeffs * 5.0)
    wave = 15200.0 + 0.2 * np.arange(n_pixels)
    kw = {}
    if with_labels:
        kw = dict(fe_h=np.repeat(chem_labels[:, 0], 2), x_fe=np.repeat(chem_labels[:, 1:], 2, axis=0),
                  elements=["C", "N", "O", "Mg", "Al", "Si", "Ca"])
    return make_spectra(flux, wave, teff, logg, group=group, **kw)


def tiny_model(ds, latent_dim=4, seed=0):
    return untrained_model(ds, latent_dim=latent_dim, hidden=16, seed=seed)


def test_polynomial_baseline_recovers_twins_when_labels_act_additively():
    ds = additive_dataset()
    result = evaluate_representation("polynomial", polynomial_residuals(ds, degree=2), ds["group"].values)
    assert result.fractions.rank1 == 1.0
    # ... while the same twins are hidden in the raw flux.
    raw = evaluate_representation("raw_flux", raw_flux(ds), ds["group"].values)
    assert raw.fractions.rank1 < 0.5


def test_polynomial_residuals_vanish_for_a_pure_polynomial():
    ds = additive_dataset(degree=3)
    ds["flux"] = ds["flux"] * 0 + 0.9 + 0.01 * ds["teff"] / 1000 - 0.002 * (ds["logg"] ** 2)
    np.testing.assert_allclose(polynomial_residuals(ds, degree=2), 0, atol=2e-6)


def test_oracle_gives_rank_one_when_twins_share_labels():
    ds = additive_dataset()
    result = evaluate_representation("oracle", true_abundances(ds), ds["group"].values)
    assert np.all(result.ranks == 1)


def test_oracle_gives_rank_one_on_noiseless_synthetic_data():
    from twinviz.spectra.simulation import simulate

    ds = simulate(40, group_size=2, seed=0, snr=None)
    result = evaluate_representation("oracle", true_abundances(ds), ds["group"].values)
    assert np.all(result.ranks == 1)


def test_oracle_needs_true_abundances():
    with pytest.raises(DatasetError, match="fe_h/x_fe"):
        true_abundances(additive_dataset(with_labels=False))


def test_swap_partners_pairs_and_larger_groups():
    partners = swap_partners(np.array([5, 5, -1, 7, 7, 7, 9]))
    assert partners.tolist() == [1, 0, -1, 4, 5, 3, -1]


def test_model_errors_match_a_direct_computation():
    ds = additive_dataset(n_groups=20)
    model = tiny_model(ds)
    flux = torch.as_tensor(ds["flux"].values)
    teff, logg = torch.as_tensor(ds["teff"].values), torch.as_tensor(ds["logg"].values)
    with torch.no_grad():
        z = model.encode(flux, teff, logg)
        recon = model.decode(z, teff, logg)
        partners = swap_partners(ds["group"].values)
        swapped = model.decode(z[partners], teff, logg)
    expect_mse = float(((recon - flux).double() ** 2).mean())
    expect_swap = float(((swapped - flux).double() ** 2).mean())
    mse, swap = model_errors(model, ds, z.numpy(), partners, batch_size=7, chunk=11)
    assert mse == pytest.approx(expect_mse, rel=1e-5)
    assert swap == pytest.approx(expect_swap, rel=1e-5)


def test_model_errors_skip_masked_pixels():
    ds = additive_dataset(n_groups=10)
    model = tiny_model(ds)
    mask = np.zeros(ds["flux"].shape, bool)
    mask[:, :5] = True
    ds_masked = ds.assign(mask=(("star", "wavelength"), mask), flux=ds["flux"].where(~mask, 1e3))
    z = np.zeros((ds.sizes["star"], 4), np.float32)
    partners = swap_partners(ds["group"].values)
    mse_masked, _ = model_errors(model, ds_masked, z, partners)
    with torch.no_grad():
        recon = model.decode(torch.as_tensor(z), torch.as_tensor(ds["teff"].values),
                             torch.as_tensor(ds["logg"].values)).numpy()
    expect = np.mean((recon[:, 5:] - ds["flux"].values[:, 5:]).astype(np.float64) ** 2)
    assert mse_masked == pytest.approx(expect, rel=1e-5)


def test_evaluate_reports_every_method_with_paper_thresholds():
    ds = additive_dataset(n_groups=60)
    model, baseline = tiny_model(ds, seed=0), tiny_model(ds, seed=1)
    report = evaluate(model, ds, baseline_model=baseline, pixel_queries=50, seed=3)
    assert [m.key for m in report.methods] == ["fader", "lambda0", "polynomial", "raw_flux", "oracle"]
    assert report.n_stars == 120 and report.thresholds == {"rank_0p1": 0, "rank_1": 1}
    assert report["polynomial"].sampled and report["polynomial"].fractions.n_ranked == 50
    assert not report["fader"].sampled and report["fader"].fractions.n_ranked == 120
    assert report["fader"].mse > 0 and report["fader"].swapped_mse > 0
    assert report["oracle"].fractions.rank1 == 1.0
    # the doppelganger rate is over all stars even where the ranks are sampled
    assert report["polynomial"].doppelganger == full_rate(report, ds)
    # The sample is a subset of the full ranking, star by star.
    full = evaluate(None, ds, baselines=("polynomial",), pixel_queries=None)
    np.testing.assert_array_equal(report["polynomial"].ranks, full["polynomial"].ranks[report["polynomial"].queries])


def full_rate(report, ds):
    from twinviz.twins.ranks import doppelganger_rate

    return doppelganger_rate(polynomial_residuals(ds, 2), ds["group"].values)


def test_evaluate_refuses_data_without_twins():
    ds = additive_dataset(n_groups=10)
    ds["group"] = ds["group"] * 0 - 1
    with pytest.raises(DatasetError, match="no star shares its group"):
        evaluate(None, ds)


def test_report_files(tmp_path):
    ds = additive_dataset(n_groups=30)
    report = evaluate(tiny_model(ds), ds, pixel_queries=None)
    paths = write_report(report, tmp_path / "eval")
    data = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [m["key"] for m in data["methods"]] == ["fader", "polynomial", "raw_flux", "oracle"]
    assert data["thresholds"] == {"rank_0p1": 0, "rank_1": 0}
    assert len(data["paper_reference"]) == len(PAPER_REFERENCE)
    curve = data["methods"][0]["cumulative_rank_curve"]
    assert curve["rank"][0] == 1 and curve["fraction"][-1] == 1.0
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "paper, fader network" in md and "60.7 %" in md and "rank_curve.png" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    import xarray as xr
    ranks = xr.open_dataset(paths["ranks"], engine="h5netcdf")
    assert set(ranks.data_vars) == {"rank_fader", "rank_polynomial", "rank_raw_flux", "rank_oracle"}
    ranks.close()


def test_twinviz_evaluate_end_to_end_writes_both_reports(tmp_path, capsys):
    from twinviz.cli import main
    from twinviz.spectra.dataset import save_spectra

    ds = additive_dataset(n_groups=25)
    data = save_spectra(ds, tmp_path / "val.nc")
    tiny_model(ds, seed=0).save_pretrained(tmp_path / "runs" / "fader" / "model")
    tiny_model(ds, seed=1).save_pretrained(tmp_path / "runs" / "lambda0" / "model")
    status = main(["evaluate", "--model", str(tmp_path / "runs" / "fader"), "--data", str(data),
                   "--baseline-model", str(tmp_path / "runs" / "lambda0"), "--pixel-queries", "0",
                   "--chunk", "16"])
    assert status == 0
    out = tmp_path / "runs" / "fader" / "evaluation"
    report = json.loads((out / "report.json").read_text())
    assert [m["key"] for m in report["methods"]] == ["fader", "lambda0", "polynomial", "raw_flux", "oracle"]
    md = (out / "report.md").read_text()
    assert md.startswith("# twinviz evaluation") and "| doppelganger rate |" in md
    # every row has its doppelganger rate, over all 50 stars: 25 twin pairs and all 1 200 others
    for m in report["methods"]:
        assert m["doppelganger"]["n_twin_pairs"] == 25 and m["doppelganger"]["n_pairs"] == 1200
        assert m["doppelganger_rate"] == m["doppelganger"]["rate"]
    assert report["methods"][-1]["doppelganger_rate"] == 0.0  # the oracle: twins at distance 0
    assert "fader network" in capsys.readouterr().out


def test_twinviz_evaluate_names_a_missing_model(tmp_path, capsys):
    from twinviz.cli import main
    from twinviz.spectra.dataset import save_spectra

    data = save_spectra(additive_dataset(n_groups=5), tmp_path / "val.nc")
    assert main(["evaluate", "--model", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    assert "model.safetensors" in capsys.readouterr().err
