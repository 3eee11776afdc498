"""Best-epoch selection never picks an epoch whose latent collapsed (all z equal)."""
import json
from pathlib import Path

import numpy as np

from twinviz.testing import make_sample
from twinviz.training import TrainConfig, train
from twinviz.training.validation import ValidationSet, latent_collapsed


def test_equal_latents_are_collapsed_and_spread_ones_are_not():
    assert latent_collapsed(np.full((10, 4), 0.3, dtype=np.float32))
    z = np.zeros((10, 4), dtype=np.float32)
    z[3, 1] = 1e-3
    assert not latent_collapsed(z)


def test_a_collapsed_epoch_is_never_the_best_even_with_the_highest_rank1(tmp_path, monkeypatch):
    _, data, _ = make_sample(tmp_path / "sample", n_pairs=40)
    real = ValidationSet.evaluate
    calls = []

    def first_epoch_collapsed(self, model, **kw):
        out = real(self, model, **kw)
        calls.append(1)
        if len(calls) == 1:  # pretend epoch 1 collapsed although its twin ranks look perfect
            out.update(val_collapsed=True, val_rank1=1.0)
        else:
            out.update(val_collapsed=False, val_rank1=0.5)
        return out

    monkeypatch.setattr(ValidationSet, "evaluate", first_epoch_collapsed)
    run = train(TrainConfig(data=str(data), val=str(data), out=str(tmp_path / "run"), epochs=2, batch_size=40,
                            basis_dim=16, hidden=[32], latent_dim=4, adversary_hidden=[16], progress=False,
                            num_threads=1))
    epochs = [r for r in map(json.loads, (Path(run) / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "epoch"]
    assert [r["best"] for r in epochs] == [False, True]
    status = json.loads((Path(run) / "status.json").read_text())
    assert status["best"]["epoch"] == epochs[1]["epoch"]
