"""Training on data without known groups (an imported survey: group all −1): validation reports
MSE and adversary accuracy against chance, no twin ranks; the best epoch follows the documented
rule (lowest validation MSE among epochs whose adversary is at chance); collapsed epochs are
still refused; the validation recon-MSE distribution is stored beside the best weights."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from twinviz.latents.ood import read_validation_stats
from twinviz.spectra.dataset import save_spectra
from twinviz.testing import survey_sample
from twinviz.training import TrainConfig, train
from twinviz.training.validation import ADV_MARGIN, ValidationSet, best_epoch_key

TINY = dict(epochs=3, batch_size=40, basis_dim=16, hidden=[32], latent_dim=4, adversary_hidden=[16],
            progress=False, num_threads=1)


@pytest.fixture(scope="module")
def survey_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey")
    train_ds, val_ds = survey_sample(80, seed=0), survey_sample(40, seed=1)
    assert (train_ds["group"].values == -1).all() and (val_ds["group"].values == -1).all()
    assert val_ds["mask"].values.any() and val_ds["star"].dtype.kind == "U"
    return save_spectra(train_ds, d / "train.nc"), save_spectra(val_ds, d / "val.nc")


def _epochs(run):
    return [r for r in map(json.loads, (Path(run) / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "epoch"]


def test_best_epoch_key_rule():
    with_groups = {"val_rank1": 0.5, "val_mse": 1e-6}
    assert best_epoch_key(with_groups) == ("val_rank1", (-0.5,))
    at_chance = {"val_mse": 2e-6, "val_adv_at_chance": True}
    leaking = {"val_mse": 1e-6, "val_adv_at_chance": False}
    # any epoch at chance beats every epoch whose latent still tells the adversary Teff/logg
    assert best_epoch_key(at_chance)[1] < best_epoch_key(leaking)[1]
    assert best_epoch_key({"val_mse": 1e-6, "val_adv_at_chance": True})[1] < best_epoch_key(at_chance)[1]
    assert best_epoch_key({**at_chance, "val_collapsed": True}) is None
    assert best_epoch_key({"val_mse": float("nan")}) is None
    assert best_epoch_key({"train_recon": 0.3}) == ("train_recon", (0.3,))


def test_train_without_groups_reports_mse_and_adversary_vs_chance_and_stores_stats(survey_files, tmp_path):
    data, val = survey_files
    run = train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), **TINY))
    epochs = _epochs(run)
    assert len(epochs) == 3
    for r in epochs:
        assert "val_rank1" not in r and "val_swapped_mse" not in r  # no twin ranks without groups
        assert r["val_mse"] > 0 and 0 <= r["val_adv_acc"] <= 1 and 0 < r["val_adv_chance"] <= 1
        assert r["val_n_stars"] == 40
        n, c = 40, r["val_adv_chance"]
        assert r["val_adv_margin"] == pytest.approx(ADV_MARGIN + 2 * np.sqrt(c * (1 - c) / n))
        assert r["val_adv_at_chance"] == (r["val_adv_acc"] <= c + r["val_adv_margin"])
    # the best epoch is the rule's choice among the logged epochs
    keys = [best_epoch_key(r)[1] for r in epochs]
    chosen = int(np.argmin([k[0] * 1e9 + k[1] for k in keys]))
    status = json.loads((Path(run) / "status.json").read_text())
    assert status["state"] == "done"
    assert status["best"]["metric"] == "val_mse" and status["best"]["epoch"] == epochs[chosen]["epoch"]
    # the stored validation distribution belongs to the weights beside it and matches a recomputation
    model_dir = Path(run) / "model"
    doc, why = read_validation_stats(model_dir)
    assert why == "" and doc["recon_mse"]["n_stars"] == 40
    assert doc["weights_sha256"] == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert doc["validation"]["epoch"] == epochs[chosen]["epoch"]
    from twinviz.model import FaderNetwork
    from twinviz.spectra.dataset import load_spectra

    vs = ValidationSet(load_spectra(val), 5000, 0)
    metrics = vs.evaluate(FaderNetwork.from_pretrained(model_dir))
    assert metrics["val_mse"] == pytest.approx(epochs[chosen]["val_mse"], rel=1e-5)
    assert doc["recon_mse"]["p99"] == pytest.approx(float(np.quantile(vs.star_mse, 0.99)), rel=1e-5)
    # per-star MSEs pool back to the set's MSE (weighted by each star's good pixels)
    good = (~vs.bad).sum(axis=1)
    assert np.sum(vs.star_mse * good) / good.sum() == pytest.approx(metrics["val_mse"], rel=1e-6)
    # a leftover stats file of other weights is not trusted
    (model_dir / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes() + b"\0")
    assert read_validation_stats(model_dir)[0] is None
    assert "other weights" in read_validation_stats(model_dir)[1]


def test_without_groups_an_epoch_at_chance_wins_and_a_collapsed_one_never(survey_files, tmp_path, monkeypatch):
    data, val = survey_files
    real = ValidationSet.evaluate
    # epoch 0: lowest MSE but the adversary reads Teff/logg from z; epoch 1: at chance;
    # epoch 2: at chance with a lower MSE but collapsed latents
    script = [dict(val_mse=1e-6, val_adv_at_chance=False), dict(val_mse=5e-6, val_adv_at_chance=True),
              dict(val_mse=2e-6, val_adv_at_chance=True, val_collapsed=True)]

    def scripted(self, model, **kw):
        out = real(self, model, **kw)
        out.update(script[len(calls)])
        calls.append(1)
        return out

    calls = []
    monkeypatch.setattr(ValidationSet, "evaluate", scripted)
    run = train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), **TINY))
    assert [r["best"] for r in _epochs(run)] == [True, True, False]
    status = json.loads((Path(run) / "status.json").read_text())
    assert status["best"]["epoch"] == 1 and status["best"]["val_adv_at_chance"] is True
