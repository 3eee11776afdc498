"""Training learns the twin metric after its last epoch (twin_metric="fit", the default) from the
training twins, chooses its size on validation and stores it with the weights; everything that
ranks twins with the model then uses it, and the raw-z row stays in the report beside it."""
import json
from pathlib import Path

import numpy as np
import pytest

from twinviz.evaluation import evaluate
from twinviz.latents.encode import encode_dataset, twin_vectors
from twinviz.model import FaderNetwork, ModelError
from twinviz.spectra.dataset import load_spectra
from twinviz.testing import write_toy
from twinviz.training import TrainConfig, train
from twinviz.twins.metric import METRIC_CONFIG, METRIC_FILE, fit_twin_metric

TINY = dict(epochs=2, batch_size=40, basis_dim=16, hidden=[32], latent_dim=6, adversary_hidden=[16],
            progress=False, num_threads=1, warmup_steps=0)


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    return write_toy(d / "train.nc", n_groups=150, seed=0), write_toy(d / "val.nc", n_groups=60, seed=1)


def test_training_fits_the_metric_on_training_twins_and_chooses_it_on_validation(toy_files, tmp_path):
    data, val = toy_files
    run = Path(train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), **TINY)))
    log = (run / "train.log").read_text()
    assert "twin metric:" in log
    model_dir = run / "model"
    if (model_dir / METRIC_CONFIG).exists():  # validation preferred a projection
        info = json.loads((model_dir / METRIC_CONFIG).read_text())
        assert info["fitted_on"] == str(data) and info["chosen_on"] == str(val)
        chosen = str(info["dims"]) if info["degree"] == 0 else f"{info['dims']}/u{info['degree']}"
        assert info["validation"][chosen]["rank1"] > info["validation"]["raw"]["rank1"]
    else:  # raw z ranked the validation twins at least as well: said so, nothing stored
        assert "kept raw z" in log
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_a_failing_metric_fit_leaves_a_finished_run_that_ranks_on_raw_z(toy_files, tmp_path, monkeypatch):
    """Whatever goes wrong after the last epoch (here: an unexpected error from the fit), the
    training stands: the run ends "done", not "running" for ever, and the log says why."""
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr("twinviz.training.twin_metric_fit.fit_model_twin_metric", broken)
    data, val = toy_files
    run = Path(train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), **TINY)))
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    assert "twin metric not fitted (RuntimeError: simulated failure)" in (run / "train.log").read_text()
    assert not (run / "model" / METRIC_CONFIG).exists()


def test_off_keeps_raw_z(toy_files, tmp_path):
    data, val = toy_files
    run = Path(train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), twin_metric="off",
                                 **TINY)))
    assert not (run / "model" / METRIC_FILE).exists()
    assert FaderNetwork.from_pretrained(run / "model").twin_metric is None


def test_a_model_with_a_metric_ranks_on_it_and_the_report_keeps_the_raw_row(toy_files, tmp_path):
    data, val = toy_files
    run = Path(train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), twin_metric="off",
                                 **TINY)))
    model = FaderNetwork.from_pretrained(run / "model")
    ds = load_spectra(val)
    z = encode_dataset(model, ds)["z"].values
    model.twin_metric = fit_twin_metric(z, ds["group"].values).with_dims(3)
    model.save_pretrained(run / "model")

    loaded = FaderNetwork.from_pretrained(run / "model")
    assert loaded.twin_metric.dims == 3
    latents = encode_dataset(loaded, ds)
    assert latents["z_twin"].shape == (ds.sizes["star"], 3)
    np.testing.assert_allclose(twin_vectors(latents), loaded.twin_metric.project(latents["z"].values))
    report = evaluate(loaded, ds, baselines=())
    keys = [m.key for m in report.methods]
    assert keys == ["fader", "fader_raw_z"]
    ranked = {m.key: m.ranks for m in report.methods}
    assert not np.array_equal(ranked["fader"], ranked["fader_raw_z"])

    # Weights saved again without a metric take the old metric files away with them.
    loaded.twin_metric = None
    loaded.save_pretrained(run / "model")
    assert not (run / "model" / METRIC_FILE).exists() and not (run / "model" / METRIC_CONFIG).exists()

    # A broken metric file stops the model from loading with the file and the fix named.
    model.save_pretrained(run / "model")
    (run / "model" / METRIC_CONFIG).write_text("{not json")
    with pytest.raises(ModelError, match=r"twin metric: unreadable.*Fix"):
        FaderNetwork.from_pretrained(run / "model")
