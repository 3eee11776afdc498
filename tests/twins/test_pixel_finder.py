"""The pixel twin finder (twinviz/evaluation/pixel_finder.py): fitted on training twins, chosen on
validation, saved as safetensors + JSON, and used from the command line on real netCDF files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.commands.conftest import run_twinviz
from twinviz.spectra.dataset import save_spectra
from twinviz.spectra.simulation import simulate
from twinviz.twins.index import TwinIndex
from twinviz.evaluation.pixel_finder import (FINDER_CONFIG, PixelFinderError, fit_pixel_finder,
                                        load_pixel_finder)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Low-d chemistry (only [Fe/H] and [α/Fe] vary), as netCDF files a user would have."""
    root = tmp_path_factory.mktemp("pixel-finder")
    out = {}
    for name, n, seed in (("train", 500, 61), ("val", 120, 62), ("test", 150, 63)):
        out[name] = save_spectra(simulate(n, seed=seed, chemistry="low-d"), root / f"{name}.nc")
    return out


@pytest.fixture(scope="module")
def fitted(files, tmp_path_factory):
    from twinviz.spectra.dataset import load_spectra

    finder = fit_pixel_finder(load_spectra(files["train"]), load_spectra(files["val"]), n_components=24)
    return finder, finder.save(tmp_path_factory.mktemp("finders") / "pixel")


def rank1(vectors, groups):
    return float(np.mean(TwinIndex(np.asarray(vectors, np.float32)).twin_ranks(groups) == 1))


def test_saved_finder_ranks_exactly_as_the_fitted_one_streaming_in_chunks(files, fitted):
    from twinviz.spectra.dataset import open_spectra

    finder, folder = fitted
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["pixel_finder.json", "pixel_finder.safetensors", "twin_metric.json", "twin_metric.safetensors"])
    cfg = json.loads((folder / FINDER_CONFIG).read_text())
    assert cfg["format"] == "twinviz-pixel-finder" and cfg["grid_id"] == "apogee-aspcap-dr12" and cfg["n_pixels"] == 7214
    assert cfg["chosen_on"]["path"] == str(files["val"]) and cfg["n_components"] == 24
    assert cfg["fitted_on"]["fingerprint"] and cfg["chosen_on"]["domain"] == "twinviz.synth"  # provenance
    loaded = load_pixel_finder(folder)
    test = open_spectra(files["test"], chunks={})  # lazily: the finder reads it step by step
    direct = finder.fitted.vectors(test.load())
    np.testing.assert_allclose(loaded.vectors(test, step=37), direct, rtol=1e-5, atol=1e-5)
    groups = test["group"].values
    assert rank1(direct, groups) > 0.5  # held-out twins of the hard regime, from 500 training pairs


def test_it_flags_stars_outside_its_training_labels(fitted):
    finder, _ = fitted
    lo, hi = finder.teff_range
    flags = finder.outside_training([lo, (lo + hi) / 2, hi + 50], [np.mean(finder.logg_range)] * 3)
    assert flags.tolist() == [False, False, True]


def test_a_folder_that_is_not_a_finder_is_never_replaced(fitted, tmp_path):
    finder, _ = fitted
    precious = tmp_path / "model"
    precious.mkdir()
    (precious / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(PixelFinderError, match="not a pixel finder"):
        finder.save(precious)
    assert (precious / "model.safetensors").read_bytes() == b"weights"
    with pytest.raises(PixelFinderError, match="no pixel_finder.json"):
        load_pixel_finder(precious)


def test_a_damaged_finder_says_which_folder_and_how_to_fix_it(fitted, tmp_path):
    import shutil

    _, folder = fitted
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "pixel_finder.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PixelFinderError) as err:
        load_pixel_finder(broken)
    assert str(broken) in str(err.value) and "Fix:" in str(err.value)


def test_cli_fits_then_lists_a_stars_twins(files, tmp_path):
    out = tmp_path / "finder"
    fit = run_twinviz("fit-pixel-finder", "--data", files["train"], "--val", files["val"], "--out", out,
                      "--components", "24", timeout=600)
    assert fit.returncode == 0, fit.stderr
    assert "validation rank 1" in fit.stdout and (out / FINDER_CONFIG).is_file()
    result = run_twinviz("twins", "--pixel-finder", out, "--data", files["test"], "--star", 0, "-k", 5, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ranked_on"] == f"pixel finder {out}" and len(answer["twins"]) == 5
    assert answer["true_twin"]["twin_rank"] >= 1 and answer["p_twin_note"].startswith("P(twin): not available")
    assert answer["query"]["ood"]["recon_mse"] is None  # no decoder: only the label ranges are checked
    table = run_twinviz("twins", "--pixel-finder", out, "--data", files["test"], "--star", 0)
    assert table.returncode == 0, table.stderr
    assert "its closest true twin" in table.stdout and "the finder's training stars" in table.stdout


def test_cli_errors_name_the_file_field_and_fix(files, tmp_path):
    import xarray as xr

    out = tmp_path / "finder"
    same = run_twinviz("fit-pixel-finder", "--data", files["train"], "--val", files["train"], "--out", out)
    assert same.returncode == 2 and "--val" in same.stderr and "Fix:" in same.stderr
    no_twins = tmp_path / "no_twins.nc"
    with xr.open_dataset(files["val"]) as ds:
        ds.drop_vars("group").load().to_netcdf(no_twins)
    missing = run_twinviz("fit-pixel-finder", "--data", files["train"], "--val", no_twins, "--out", out)
    assert missing.returncode == 2 and str(no_twins) in missing.stderr and "group" in missing.stderr
    assert "Traceback" not in missing.stderr and not out.exists()
    not_a_finder = run_twinviz("twins", "--pixel-finder", tmp_path, "--data", files["test"], "--star", 0)
    assert not_a_finder.returncode == 2 and "pixel_finder.json" in not_a_finder.stderr
    assert "Traceback" not in not_a_finder.stderr


def test_spectra_on_another_grid_are_refused_with_a_fix(fitted, files):
    from twinviz.spectra.dataset import DatasetError, load_spectra

    finder, _ = fitted
    cut = load_spectra(files["test"]).isel(wavelength=slice(0, 3000))
    cut.attrs["grid_id"] = "custom-cut"
    with pytest.raises(DatasetError) as err:
        finder.vectors(cut)
    assert "wavelength" in str(err.value) and "Fix:" in str(err.value)


def test_evaluate_scores_a_saved_finder_in_the_supervised_row(files, fitted, tmp_path):
    from twinviz.spectra.dataset import load_spectra
    from twinviz.testing import make_sample

    finder, folder = fitted
    model_dir = make_sample(tmp_path / "sample", n_pairs=20)[0]
    out = tmp_path / "eval"
    result = run_twinviz("evaluate", "--model", model_dir, "--data", files["test"], "--baselines", "",
                         "--pixel-finder", folder, "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [m["key"] for m in report["methods"]] == ["fader", "polynomial_pca_metric"]
    assert report["settings"]["polynomial_pca_metric"]["fitted_on"]["path"] == str(files["train"])
    row = next(m for m in report["methods"] if m["key"] == "polynomial_pca_metric")
    test = load_spectra(files["test"])
    assert row["rank1"] == pytest.approx(rank1(finder.vectors(test), test["group"].values))
    both = run_twinviz("evaluate", "--model", model_dir, "--data", files["test"], "--pixel-finder", folder,
                       "--baseline-train", files["train"], "--baseline-val", files["val"], "--out", out)
    assert both.returncode == 2 and "give one of them" in both.stderr
