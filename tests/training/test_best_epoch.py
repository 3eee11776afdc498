"""Best-epoch selection never picks an epoch whose latent collapsed (all z equal), under either
rule: the best validation rank 1, or the latest epoch when a twin metric is fitted after training."""
import json
from pathlib import Path

import numpy as np

from twinviz.testing import make_sample
from twinviz.training import TrainConfig, train
from twinviz.training.validation import ValidationSet, best_epoch_key, latent_collapsed


def test_equal_latents_are_collapsed_and_spread_ones_are_not():
    assert latent_collapsed(np.full((10, 4), 0.3, dtype=np.float32))
    z = np.zeros((10, 4), dtype=np.float32)
    z[3, 1] = 1e-3
    assert not latent_collapsed(z)


def test_the_latest_rule_keys_on_the_step_and_still_refuses_a_collapsed_epoch():
    rec = {"step": 120, "val_rank1": 0.2, "val_collapsed": False}
    assert best_epoch_key(rec, latest=True) == ("latest", (-120,))
    assert best_epoch_key({**rec, "step": 240}, latest=True)[1] < best_epoch_key(rec, latest=True)[1]
    assert best_epoch_key({**rec, "val_collapsed": True}, latest=True) is None
    assert best_epoch_key(rec) == ("val_rank1", (-0.2,))  # the rule without a twin metric


def _run(tmp_path, monkeypatch, collapsed_epoch: int, **kw):
    """A 2-epoch run on twins whose epoch ``collapsed_epoch`` (1 or 2) pretends to have collapsed
    with perfect twin ranks; returns (the epoch records, status)."""
    _, data, _ = make_sample(tmp_path / "sample", n_pairs=40)
    _, val, _ = make_sample(tmp_path / "val", n_pairs=40, seed=1)  # another file: never the training stars
    real = ValidationSet.evaluate
    calls = []

    def pretend(self, model, **kwargs):
        out = real(self, model, **kwargs)
        calls.append(1)
        collapsed = len(calls) == collapsed_epoch
        out.update(val_collapsed=collapsed, val_rank1=1.0 if collapsed else 0.5)
        return out

    monkeypatch.setattr(ValidationSet, "evaluate", pretend)
    run = train(TrainConfig(data=str(data), val=str(val), out=str(tmp_path / "run"), epochs=2, batch_size=40,
                            basis_dim=16, hidden=[32], latent_dim=4, adversary_hidden=[16], progress=False,
                            num_threads=1, **kw))
    epochs = [r for r in map(json.loads, (Path(run) / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "epoch"]
    return epochs, json.loads((Path(run) / "status.json").read_text())


def test_a_collapsed_last_epoch_is_not_kept_by_the_latest_rule(tmp_path, monkeypatch):
    epochs, status = _run(tmp_path, monkeypatch, collapsed_epoch=2)  # twin metric "fit": the latest rule
    assert [r["best"] for r in epochs] == [True, False]
    assert status["best"]["metric"] == "latest" and status["best"]["epoch"] == epochs[0]["epoch"]


def test_a_collapsed_epoch_is_not_kept_for_its_rank1_without_a_twin_metric(tmp_path, monkeypatch):
    epochs, status = _run(tmp_path, monkeypatch, collapsed_epoch=1, twin_metric="off")
    assert [r["best"] for r in epochs] == [False, True]
    assert status["best"]["metric"] == "val_rank1" and status["best"]["epoch"] == epochs[1]["epoch"]
