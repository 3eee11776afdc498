"""`twinviz calibrate` and the P(twin) column of `twinviz twins` (issue 13, part 3)."""
from __future__ import annotations

import json


from tests.commands.conftest import run_twinviz
from twinviz import files as runfiles


def test_twins_without_calibration_says_so_then_calibrate_adds_the_column(sample, tmp_path):
    model, data, latents = sample
    before = run_twinviz("twins", "--model", model, "--data", data, "--star", 1000, "-k", 5)
    assert before.returncode == 0, before.stderr
    assert "P(twin): not available" in before.stdout and "Fix: `twinviz calibrate" in before.stdout
    only_latents = run_twinviz("twins", "--latents", latents, "--star", 1000, "-k", 5)
    assert "P(twin): not shown: give --model" in only_latents.stdout

    result = run_twinviz("calibrate", "--model", model, "--data", data, "-k", 5, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    assert "Brier score" in result.stdout
    assert (model / runfiles.MODEL_CALIBRATION).is_file()
    png = (tmp_path / "report" / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "Brier" in (tmp_path / "report" / "calibration.md").read_text()

    after = run_twinviz("twins", "--model", model, "--data", data, "--star", 1000, "-k", 5, "--json")
    assert after.returncode == 0, after.stderr
    out = json.loads(after.stdout)
    probabilities = [row["p_twin"] for row in out["twins"]]
    assert all(p is not None and 0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)  # nearer, no less likely
    assert "isotonic calibration" in out["p_twin_note"]
    table = run_twinviz("twins", "--latents", latents, "--model", model, "--star", 1000, "-k", 5)
    assert "P(twin)" in table.stdout and "n/a" not in table.stdout.split("twin?")[1]


def test_a_calibration_of_other_weights_is_refused(sample, tmp_path):
    model, data, _ = sample
    assert run_twinviz("calibrate", "--model", model, "--data", data, "--out", tmp_path / "r").returncode == 0
    path = model / runfiles.MODEL_CALIBRATION
    saved = json.loads(path.read_text())
    saved["model_sha256"] = "0" * 64
    path.write_text(json.dumps(saved))
    result = run_twinviz("twins", "--model", model, "--data", data, "--star", 1000)
    assert result.returncode == 2 and "model_sha256" in result.stderr and "Fix:" in result.stderr


def test_calibrate_on_data_without_twins_fails_with_a_fix(sample, tmp_path):
    from twinviz.spectra.dataset import load_spectra, save_spectra

    model, data, _ = sample
    ds = load_spectra(data)
    ds["group"].values[:] = -1
    path = save_spectra(ds, tmp_path / "nogroups.nc")
    result = run_twinviz("calibrate", "--model", model, "--data", path, "--out", tmp_path / "r")
    assert result.returncode == 2 and "no twins to calibrate" in result.stderr and "Fix:" in result.stderr


def test_p_twin_is_not_applicable_outside_the_calibration_data(sample, tmp_path):
    from twinviz.spectra.dataset import load_spectra, save_spectra

    model, data, latents = sample
    ds = load_spectra(data)
    cool = ds.isel(star=(ds["teff"].values < 4800))  # calibrate on the cooler stars only
    path = save_spectra(cool, tmp_path / "cool.nc")
    assert run_twinviz("calibrate", "--model", model, "--data", path, "--out", tmp_path / "r").returncode == 0
    hot = int(ds["star"].values[ds["teff"].values > 4900][0])
    result = run_twinviz("twins", "--latents", latents, "--model", model, "--star", hot, "-k", 4, "--json")
    out = json.loads(result.stdout)
    assert "not applicable to this star: Teff" in out["p_twin_note"]
    assert all(row["p_twin"] is None for row in out["twins"])
    cool_star = int(cool["star"].values[0])
    listed = json.loads(run_twinviz("twins", "--latents", latents, "--model", model, "--star", cool_star, "-k", 8,
                                 "--json").stdout)
    for row in listed["twins"]:  # a neighbour outside the range gets no P, one inside gets one
        assert (row["p_twin"] is None) == (row["teff"] > float(cool["teff"].max()) + 1e-3)


def test_p_twin_is_not_applicable_to_an_out_of_distribution_star(sample, tmp_path):
    """A star the model reconstructs far worse than its validation stars gets no P(twin), even
    with labels inside the calibration's range."""
    import shutil

    from twinviz.training.validation import measure_validation_stats
    from twinviz.spectra.dataset import load_spectra, save_spectra

    model, data, _ = sample
    own = shutil.copytree(model, tmp_path / "model")
    measure_validation_stats(own, data)
    assert run_twinviz("calibrate", "--model", own, "--data", data, "--out", tmp_path / "r").returncode == 0
    ds = load_spectra(data)
    odd = int(ds["star"].values[0])
    import numpy as np

    pixels = np.arange(ds.sizes["wavelength"] if "wavelength" in ds.sizes else ds["flux"].shape[1])
    ds["flux"].values[0] = (1.0 + 0.5 * np.sin(pixels / 3.0)).astype(ds["flux"].dtype)  # unlike any star
    path = save_spectra(ds, tmp_path / "odd.nc")
    out = json.loads(run_twinviz("twins", "--model", own, "--data", path, "--star", odd, "-k", 4, "--json").stdout)
    assert out["query"]["ood"]["flag"] and out["query"]["ood"]["recon"]
    assert all(row["p_twin"] is None for row in out["twins"])
    assert "out of distribution" in out["p_twin_note"]
    normal = int(ds["star"].values[10])
    listed = json.loads(run_twinviz("twins", "--model", own, "--data", path, "--star", normal, "-k", 4,
                                 "--json").stdout)["twins"]
    assert any(row["p_twin"] is not None for row in listed)  # the others keep their P(twin)
    for row in listed:
        if row["ood"]["flag"]:
            assert row["p_twin"] is None
