"""Training learns the twin metric after its last epoch (twin_metric="fit", the default) from the
training twins, chooses its size on validation and stores it with the weights; everything that
ranks twins with the model then uses it, and the raw-z row stays in the report beside it."""
import json
from pathlib import Path

import numpy as np
import pytest

from twinviz.evaluation import evaluate
from twinviz.latents.encode import encode_dataset, twin_vectors
from twinviz.model import ModelError
from twinviz.spectra.dataset import load_spectra
from twinviz.testing import write_toy
from twinviz.training import TrainConfig, train
from twinviz.bundle import BundleError, ModelBundle
from twinviz.evaluation.registry import InSampleError
from twinviz.spectra.fingerprint import describe_data
from twinviz.twins.metric import METRIC_CONFIG, METRIC_FILE, fit_twin_metric

TINY = dict(epochs=2, batch_size=40, basis_dim=16, hidden=[32], latent_dim=6, adversary_hidden=[16],
            progress=False, num_threads=1, warmup_steps=0, twin_term="off")  # the metric alone


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
        assert info["fitted_on"]["path"] == str(data) and info["chosen_on"]["path"] == str(val)
        assert info["weights_sha256"] == ModelBundle.open(model_dir).weights_sha256
        chosen = str(info["dims"]) if info["degree"] == 0 else f"{info['dims']}/u{info['degree']}"
        assert info["validation"][chosen]["rank1"] > info["validation"]["raw"]["rank1"]
    else:  # raw z ranked the validation twins at least as well: said so, nothing stored
        assert "kept raw z" in log
    prov = json.loads((model_dir / "provenance.json").read_text())  # the bundle's training record
    assert prov["trained_on"]["path"] == str(data) and prov["epoch_chosen_on"]["path"] == str(val)
    assert prov["trained_on"]["fingerprint"] != prov["epoch_chosen_on"]["fingerprint"]
    assert prov["epoch_rule"].startswith("latest epoch") and prov["twin_supervision"] == {"loss": "none"}
    assert prov["weights_sha256"] == ModelBundle.open(model_dir).weights_sha256
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_a_failing_metric_fit_leaves_a_finished_run_that_ranks_on_raw_z(toy_files, tmp_path, monkeypatch):
    """Whatever goes wrong after the last epoch (here: an unexpected error from the fit), the
    training stands: the run ends "done", not "running" for ever, and the log says why."""
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr("twinviz.bundle.fit.fit_model_twin_metric", broken)
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
    assert ModelBundle.open(run / "model").metric is None


def test_a_model_with_a_metric_ranks_on_it_and_the_report_keeps_the_raw_row(toy_files, tmp_path):
    data, val = toy_files
    run = Path(train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), twin_metric="off",
                                 **TINY)))
    bundle = ModelBundle.open(run / "model")
    ds = load_spectra(val)
    z = encode_dataset(bundle.model, ds)["z"].values
    metric = fit_twin_metric(z, ds["group"].values).with_dims(3)
    metric.info.update(weights_sha256=bundle.weights_sha256, fitted_on=describe_data(ds, val))
    metric.save(run / "model")

    loaded = ModelBundle.open(run / "model")
    assert loaded.metric.dims == 3
    latents = loaded.embed(ds, ood=False)
    assert latents["z_twin"].shape == (ds.sizes["star"], 3)
    np.testing.assert_allclose(twin_vectors(latents), loaded.metric.project(latents["z"].values))
    # the metric was fitted on these very stars: refused, then scored only when marked in-sample
    with pytest.raises(InSampleError, match="twin metric fit"):
        evaluate(loaded, ds, baselines=())
    report = evaluate(loaded, ds, baselines=(), allow_in_sample=True)
    keys = [m.key for m in report.methods]
    assert keys == ["fader", "fader_raw_z"]
    assert "twin metric fit" in report["fader"].in_sample and "in-sample" in report["fader"].label and report["fader"].supervision.startswith(
        "twin-supervised")
    ranked = {m.key: m.ranks for m in report.methods}
    assert not np.array_equal(ranked["fader"], ranked["fader_raw_z"])

    # Weights saved again take the old metric files away with them: they belong to other weights.
    loaded.model.save_pretrained(run / "model")
    assert not (run / "model" / METRIC_FILE).exists() and not (run / "model" / METRIC_CONFIG).exists()

    # A metric of other weights, or a broken metric file, stops the bundle with the file and the fix named.
    metric.info["weights_sha256"] = "0" * 64
    metric.save(run / "model")
    with pytest.raises(BundleError, match=r"twin_metric.json: weights_sha256.*other weights.*Fix"):
        ModelBundle.open(run / "model")
    (run / "model" / METRIC_CONFIG).write_text("{not json")
    with pytest.raises(ModelError, match=r"twin metric: unreadable.*Fix"):
        ModelBundle.open(run / "model")
