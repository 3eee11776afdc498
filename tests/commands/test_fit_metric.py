"""`twinviz fit-metric`: the twin metric for a model trained without one."""
from __future__ import annotations

import json
import shutil


from tests.commands.conftest import run_twinviz
from twinviz import files as runfiles
from twinviz.testing import make_sample
from twinviz.twins.metric import METRIC_CONFIG, METRIC_FILE


def test_fit_metric_stores_a_choice_and_drops_a_stale_calibration(sample, tmp_path):
    model, data, _ = sample
    model = shutil.copytree(model, tmp_path / "model")
    (model / runfiles.MODEL_CALIBRATION).write_text("{}")  # fitted on the old distances
    same = run_twinviz("fit-metric", "--model", model, "--data", data, "--val", data)
    assert same.returncode == 2 and "the same data as --data" in same.stderr and "Fix:" in same.stderr
    _, val, _ = make_sample(tmp_path / "val", n_pairs=40, seed=1)  # other stars: a real validation split
    result = run_twinviz("fit-metric", "--model", model, "--data", data, "--val", val)
    assert result.returncode == 0, result.stderr
    assert "twin metric:" in result.stdout  # the choice, with the validation rank 1 it rests on
    assert not (model / runfiles.MODEL_CALIBRATION).exists()
    assert "twinviz calibrate" in result.stdout
    kept_raw = "kept raw z" in result.stdout
    assert (model / METRIC_FILE).exists() is not kept_raw
    if not kept_raw:
        info = json.loads((model / METRIC_CONFIG).read_text())
        assert info["fitted_on"]["path"] == str(data) and info["chosen_on"]["path"] == str(val) and info["dims"] >= 1
        assert info["weights_sha256"] == json.loads((model / runfiles.MODEL_CONFIG).read_text())["weights_sha256"]


def test_fit_metric_without_twins_says_what_is_missing(sample, tmp_path):
    import xarray as xr

    model, data, _ = sample
    no_groups = tmp_path / "no_groups.nc"
    with xr.open_dataset(data) as ds:
        ds.drop_vars("group").load().to_netcdf(no_groups)
    result = run_twinviz("fit-metric", "--model", model, "--data", no_groups, "--val", data)
    assert result.returncode == 2
    assert str(no_groups) in result.stderr and "group" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
