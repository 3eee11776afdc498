"""The twin term: pair batches, the loss itself, a run that uses it, and clear refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from twinviz.training import TrainConfig, train
from twinviz.training.config import TrainConfigError
from twinviz.training.data import ArraySource
from twinviz.training.twin_term import twin_loss
from twinviz.twins.groups import twin_pairs
from twinviz.testing import toy_dataset, write_toy

SMALL = dict(basis_dim=32, hidden=[128, 64], latent_dim=8, adversary_hidden=[64, 64], teff_bins=4,
             logg_bins=4, batch_size=64, warmup_steps=20, log_every=5, progress=False, num_threads=1)


def test_pairs_are_consecutive_members_of_each_group():
    pairs = twin_pairs([7, 3, 7, 3, 9, 5, 5, 5, -1, -1])
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (1, 3), (5, 6)]  # 5's third star and 9 left out
    assert twin_pairs([1, 2, 3]).shape == (0, 2)


@pytest.mark.parametrize("world", [1, 2])
def test_pair_batches_hold_whole_pairs_each_once_per_epoch(world):
    ds = toy_dataset(n_groups=100)
    pairs = twin_pairs(ds["group"].values)
    group = ds["group"].values
    seen = []
    for rank in range(world):
        source = ArraySource(ds, 32, rank=rank, world=world, seed=3, pairs=pairs)
        assert source.steps_per_epoch == 100 // 16
        for batch in source.batches(epoch=0):
            teff = batch["teff"].numpy()
            rows = [int(np.flatnonzero(ds["teff"].values == t)[0]) for t in teff]
            assert len(rows) == 32 // world
            assert all(group[a] == group[b] for a, b in zip(rows[0::2], rows[1::2]))
            seen += [group[a] for a in rows[0::2]]
    assert len(seen) == len(set(seen))  # no pair twice in an epoch, across ranks


def test_the_loss_is_low_when_twins_share_z_and_high_when_they_do_not():
    torch.manual_seed(0)
    centres = torch.randn(32, 8)
    twins = torch.repeat_interleave(centres, 2, dim=0) + 0.01 * torch.randn(64, 8)
    strangers = torch.randn(64, 8)
    assert twin_loss(twins, 0.1) < 0.05 < np.log(32) * 0.5 < twin_loss(strangers, 0.1)


def test_a_run_with_the_twin_term_logs_it_and_pulls_twins_together(tmp_path):
    data = write_toy(tmp_path / "train.nc", 300, seed=0)
    val = write_toy(tmp_path / "val.nc", 100, seed=1)
    out = {}
    for weight in (0.0, 1.0):
        run = tmp_path / f"run{weight}"
        train(TrainConfig(data=str(data), val=str(val), out=str(run), epochs=4, twin_weight=weight, **SMALL))
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in records if r["kind"] == "step"]
        assert all(("twin" in r) == bool(weight) for r in steps)
        epochs = [r for r in records if r["kind"] == "epoch"]
        out[weight] = epochs[-1]["val_rank1"]
        if weight:
            assert steps[-1]["twin"] < steps[0]["twin"]
        # the log says which objective ran; the bundle's provenance records what the loss saw
        log = (run / "train.log").read_text()
        assert ("twin term on (auto, μ 1): 300 training twin pairs, 100 % of the stars" in log) == bool(weight)
        assert ("twin term off (--twin-term auto, --twin-weight 0): the paper's objective" in log) == (not weight)
        prov = json.loads((run / "model" / "provenance.json").read_text())["twin_supervision"]
        assert prov == ({"loss": "twin term", "weight": 1.0, "path": str(data), "twins": "600 stars in 300 twin pairs"}
                        if weight else {"loss": "none"})
        # …and evaluate's rows say so: raw z of a network trained with the term is twin-supervised
        from twinviz.bundle import ModelBundle

        label = ModelBundle.open(run / "model").supervision("z")
        assert label == (f"twin-supervised (twin term in the loss: 600 stars in 300 twin pairs from {data})"
                         if weight else "unsupervised (no twin seen)")
        bundle = ModelBundle.open(run / "model")
        bundle.metric = None  # as a model without a twin metric: the app's "twins ranked on" line
        assert bundle.ranking()[1] == ("raw z (the model has no twin metric; z is twin-supervised: twin term in the "
                                       f"loss, 600 stars in 300 twin pairs from {data})" if weight else
                                       "raw z (the model has no twin metric: no twin supervision)")
    assert out[1.0] >= out[0.0]  # the twin term does not make the raw-z twin search worse here


def test_without_groups_or_when_streamed_on_refuses_with_the_fix_and_auto_trains_without_it(tmp_path):
    ds = toy_dataset(n_groups=100).drop_vars("group")
    from twinviz.spectra.dataset import save_spectra

    save_spectra(ds, tmp_path / "nogroups.nc")
    with pytest.raises(TrainConfigError, match=r"nogroups\.nc: group: --twin-term on needs training twins.*Fix"):
        train(TrainConfig(data=str(tmp_path / "nogroups.nc"), out=str(tmp_path / "r1"), twin_term="on", **SMALL))
    data = write_toy(tmp_path / "train.nc", 100, seed=0)
    with pytest.raises(TrainConfigError, match=r"train\.nc: flux: --twin-term on needs the training spectra in memory"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "r2"), twin_term="on", stream="always", **SMALL))
    # the default (auto) trains the paper's objective on both, and says why for the streamed one
    for name, path, extra in (("r3", tmp_path / "nogroups.nc", {}), ("r4", data, {"stream": "always"})):
        train(TrainConfig(data=str(path), out=str(tmp_path / name), epochs=1, **extra, **SMALL))
        prov = json.loads((tmp_path / name / "model" / "provenance.json").read_text())
        assert prov["twin_supervision"] == {"loss": "none"}
    assert "twin term off (auto): the training data is streamed" in (tmp_path / "r4" / "train.log").read_text()


def test_auto_leaves_the_term_off_when_few_training_stars_have_a_twin(tmp_path):
    """A survey with some cluster members among many field stars: with the term a batch would hold
    only the pairs, so auto keeps the paper's objective (the members still fit the twin metric)."""
    from twinviz.spectra.dataset import save_spectra

    ds = toy_dataset(n_groups=150, seed=0)
    group = ds["group"].values.copy()
    group[80:] = -1  # 40 pairs of 300 stars: 27 % have a twin
    save_spectra(ds.assign(group=("star", group)), tmp_path / "survey.nc")
    run = tmp_path / "run"
    train(TrainConfig(data=str(tmp_path / "survey.nc"), out=str(run), epochs=1, **SMALL))
    log = (run / "train.log").read_text()
    assert "twin term off (auto): 80 of 300 training stars are in twin pairs" in log
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any("twin" in r for r in records if r["kind"] == "step")
    # --twin-term on uses them anyway, on the pairs only (40 pairs: batches of 32 pairs)
    train(TrainConfig(data=str(tmp_path / "survey.nc"), out=str(tmp_path / "on"), epochs=1, twin_term="on", **SMALL))
    assert "1 steps/epoch of 64 spectra" in (tmp_path / "on" / "train.log").read_text()


def test_a_config_from_before_twin_term_reproduces_its_objective(tmp_path):
    for weight, term in ((None, "off"), (0.0, "off"), (0.1, "on")):
        doc = TrainConfig(data="x.nc").to_dict()
        del doc["twin_term"], doc["twin_weight"]
        if weight is not None:
            doc["twin_weight"] = weight
        (tmp_path / "config.json").write_text(json.dumps(doc))
        loaded = TrainConfig.load(tmp_path / "config.json")
        assert (loaded.twin_term, loaded.twin_weight) == (term, weight or 0.0)


def test_a_twin_set_feeds_the_term_while_the_training_stars_need_no_twins(tmp_path):
    """The survey case: training spectra without groups, a few known twins (cluster members) in
    their own file; the twin term learns from the latter only, in the same steps."""
    from twinviz.spectra.dataset import save_spectra

    save_spectra(toy_dataset(n_groups=150, seed=0).drop_vars("group"), tmp_path / "survey.nc")
    members = write_toy(tmp_path / "members.nc", 12, seed=5)  # 12 "clusters" of 2
    run = tmp_path / "run"
    train(TrainConfig(data=str(tmp_path / "survey.nc"), out=str(run), epochs=6, twin_weight=1.0,
                      twin_set=str(members), **SMALL))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and all("twin" in r for r in steps)
    assert steps[-1]["twin"] < steps[0]["twin"]  # the members' z are pulled together
    log = (run / "train.log").read_text()
    assert "members.nc: 24 stars in 12 groups, 12 pairs; 24 stars per twin batch" in log
    # the survey's own batches stay ordinary: 300 stars in batches of 64
    assert "4 steps/epoch of 64 spectra" in log
    prov = json.loads((run / "model" / "provenance.json").read_text())["twin_supervision"]
    assert prov == {"loss": "twin term", "weight": 1.0, "path": str(members), "twins": "24 stars in 12 twin pairs"}


def test_a_twin_set_without_groups_or_without_the_term_is_refused_with_the_fix(tmp_path):
    from twinviz.spectra.dataset import save_spectra

    data = write_toy(tmp_path / "train.nc", 100, seed=0)
    save_spectra(toy_dataset(n_groups=10).drop_vars("group"), tmp_path / "loners.nc")
    with pytest.raises(TrainConfigError, match=r"loners\.nc: group: the twin set needs stars sharing a `group`.*Fix"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "r1"), twin_weight=0.1,
                          twin_set=str(tmp_path / "loners.nc"), **SMALL))
    with pytest.raises(TrainConfigError, match=r"twin_set: .*twin term, which is off.*Fix: --twin-term auto"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "r2"), twin_set=str(data), twin_term="off", **SMALL))
