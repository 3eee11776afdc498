"""The Training tab of the full app (`panel serve app.py`) as a new user meets it: the data
pickers offer only spectra (not the latents cache or a report's ranks.nc lying beside them),
the explored dataset is the default training data, validation defaults to none, "Launch" with
the form's defaults runs to "done", and "Opened" appears only once the model is in the explorer.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr

from twinviz.testing import make_sample, wait_for

pytestmark = pytest.mark.ui

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The sample laid out as the demo's cache folder is: spectra, their latents cache, a report."""
    folder = tmp_path_factory.mktemp("cache")
    model, data, latents = make_sample(folder, n_pairs=30)
    (folder / "sample-report").mkdir()
    xr.Dataset({"rank": ("star", np.arange(60))}).to_netcdf(folder / "sample-report" / "ranks.nc",
                                                            engine="h5netcdf")
    return {"model": model, "data": data, "latents": latents, "runs": tmp_path_factory.mktemp("runs")}


@pytest.fixture(scope="module")
def served(panel_serve, inputs):
    # No --data-dir: the Training tab's data folder is the explored file's folder, as for the demo.
    return panel_serve("--model", inputs["model"], "--data", inputs["data"], "--latents", inputs["latents"],
                       "--runs", inputs["runs"])


def _set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_launch_with_the_forms_defaults_runs_to_done_and_opens(page, served, inputs, console_errors, artifacts):
    page.set_viewport_size(VIEWPORT)
    page.goto(served.url)
    source = page.locator(".tv-source-line")
    source.get_by_text("data: sample.nc").wait_for(timeout=60_000)
    page.locator(".bk-tab", has_text=re.compile("^Training$")).click()
    launch = page.get_by_role("button", name="Launch")
    launch.wait_for()
    assert launch.is_enabled()  # the browser is on this machine

    data, val = page.get_by_label("Training data"), page.get_by_label("Validation data")
    offered = data.locator("option").all_inner_texts()
    assert offered == ["sample.nc (60 stars)"], offered  # no sample.latents.nc, no ranks.nc
    assert data.input_value() == "sample.nc (60 stars)"  # the option shown is the one chosen
    assert val.locator("option").all_inner_texts() == ["(none)", "sample.nc (60 stars)"]
    assert val.input_value() == "(none)"
    page.screenshot(path=str(artifacts / "training_defaults_form.png"), full_page=True)

    # Every default as the form chose it; only the length is cut, as a user would, to keep the
    # test short (60 epochs of one step each otherwise).
    _set_number(page, "Epochs", 2)
    launch.click()
    runs = inputs["runs"]
    made = lambda: [p.name for p in runs.iterdir() if p.is_dir()]  # noqa: E731
    wait_for(made, timeout=30)
    name = made()[0]  # the name the form left empty: made up at launch
    page.get_by_text(f"{name} — done").wait_for(timeout=150_000)
    config = json.loads((runs / name / "config.json").read_text())
    assert config["data"] == str(inputs["data"].resolve()) and config["val"] is None
    assert config["epochs"] == 2 and config["latent_dim"] == 32  # the form's own defaults otherwise

    page.get_by_role("button", name="Open in explorer").click()
    message = page.get_by_text(f"the best model of {name}")
    message.wait_for(timeout=30_000)
    if message.inner_text().startswith("Opened"):  # then the explorer must already show the run's model
        assert f"model: {name}/model" in source.inner_text()
    source.get_by_text(f"model: {name}/model").wait_for(timeout=90_000)
    page.get_by_text(f"Opened the best model of {name}").wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "training_defaults_opened.png"), full_page=True)
    assert not served.tracebacks(), "server tracebacks:\n" + served.log()
