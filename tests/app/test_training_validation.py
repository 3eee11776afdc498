"""The Training tab on an imported survey (no twin groups): a held-out split of the same file as
validation, chosen at launch and stated; the epoch rule named; in-sample numbers labelled."""
import numpy as np
import pytest

from twinviz.app.training_validation import HELD_OUT_FRACTION, epoch_rule, sample_note
from twinviz.spectra.dataset import load_spectra, save_spectra
from twinviz.testing import TINY_TRAINING, toy_dataset, wait_for


@pytest.fixture
def survey_dir(tmp_path):
    ds = toy_dataset(30, seed=1, n_pixels=48)
    ds["group"] = ("star", np.full(ds.sizes["star"], -1, dtype=ds["group"].dtype))  # no twin groups
    save_spectra(ds, tmp_path / "survey.nc")
    save_spectra(toy_dataset(10, seed=2, n_pixels=48), tmp_path / "val.nc")
    return tmp_path


def _tab(survey_dir):
    from twinviz.app.training import TrainingTab

    defaults = {k: v for k, v in TINY_TRAINING.items() if k not in ("data", "val")}
    tab = TrainingTab(runs_dir=str(survey_dir / "runs"), data_dir=str(survey_dir),
                      defaults={**defaults, "data": "survey.nc"}, poll_period=200)
    tab.val_select.value = ""  # "(none)"
    return tab


def test_a_survey_without_groups_trains_on_a_held_out_split_and_says_so(survey_dir):
    tab = _tab(survey_dir)
    assert "held out" in tab.rule_text.object and "lowest validation MSE" in tab.rule_text.object
    run = tab._on_launch()
    assert run is not None, tab.form_message.object
    config = run.config
    assert "/held-out/survey.heldout10" in config["data"] and "/held-out/survey.heldout10" in config["val"], config
    assert "held out" in tab.form_message.object and "held-out/survey.heldout10-seed0.val.nc" in tab.form_message.object
    train, val = (load_spectra(config[k]) for k in ("data", "val"))
    assert val.sizes["star"] == round(HELD_OUT_FRACTION * 60) and train.sizes["star"] == 60 - val.sizes["star"]
    assert not set(train["star"].values) & set(val["star"].values)  # held out: no star in both
    wait_for(lambda: run.status.get("state") in ("done", "failed"), timeout=300)
    assert run.status["state"] == "done", run.log_tail()
    assert run.status["best"]["metric"] == "val_mse"  # kept on the held-out stars, not the training loss

    def table_best():  # the manager's summaries are shared for up to 0.5 s: the table catches up
        tab._refresh_table()
        return tab.table.value["best"].iloc[0]

    wait_for(lambda: table_best() != "", timeout=10)
    best = table_best()
    assert "in-sample" not in best and "MSE" in best, best


def test_the_form_names_the_epoch_rule_and_in_sample_numbers_are_labelled(survey_dir):
    tab = _tab(survey_dir)
    tab.val_select.value = "survey.nc"  # validation = training data
    assert "in-sample" in tab.rule_text.object
    tab.data_select.value, tab.val_select.value = "val.nc", "survey.nc"
    assert "lowest validation MSE" in tab.rule_text.object and "no twin groups" in tab.rule_text.object
    assert sample_note({"data": "survey.nc", "val": "survey.nc"}) == " (in-sample: validation = training data)"
    assert sample_note({"data": "survey.nc", "val": None}) == " (in-sample: no validation)"
    assert sample_note({"data": "a.nc", "val": "b.nc"}) == ""
    assert epoch_rule([], "x.nc", None) == ""
