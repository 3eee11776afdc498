"""Provenance in the browser: a cached Table 1 belongs to one model bundle, never to the data file.

Model A's metrics are computed in the Metrics tab and cached; a server started with model B
(other weights) on the same data file must not show A's numbers under B's name — the cache was
keyed by the data file alone.
"""
from __future__ import annotations

import re
import shutil

import pytest
import torch
from playwright.sync_api import expect

from twinviz.testing import make_sample

pytestmark = pytest.mark.ui

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from twinviz.model import FaderNetwork

    root = tmp_path_factory.mktemp("provenance")
    model_a, data, _ = make_sample(root, n_pairs=40)
    model_b = root / "model-b"
    shutil.copytree(model_a, model_b)
    other = FaderNetwork.from_pretrained(model_b)
    with torch.no_grad():  # other weights: another model on the same data file
        for p in other.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other.save_pretrained(model_b)
    return model_a, model_b, data


def _metrics_tab(page, url):
    page.set_viewport_size(VIEWPORT)
    page.goto(url)
    page.wait_for_selector(".noUi-handle", timeout=60_000)
    tab = page.locator(".bk-tab", has_text=re.compile("^Metrics$"))
    tab.click()
    expect(tab).to_have_class(re.compile(r"\bbk-active\b"), timeout=10_000)


def test_a_second_model_on_the_same_data_never_shows_the_first_models_table_1(page, panel_serve, two_models,
                                                                            console_errors, artifacts):
    model_a, model_b, data = two_models
    served_a = panel_serve("--model", model_a, "--data", data)
    _metrics_tab(page, served_a.url)
    page.get_by_role("button", name="compute metrics").click()
    page.get_by_text("(this model/data)").first.wait_for(timeout=90_000)
    rank1_a = page.locator(".tabulator-row").first.inner_text()
    page.screenshot(path=artifacts / "provenance_metrics_model_a.png", full_page=True)
    served_a.stop()

    served_b = panel_serve("--model", model_b, "--data", data)
    _metrics_tab(page, served_b.url)
    page.get_by_text("No Table-1 report is cached for this model").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="compute metrics").is_visible()
    assert not page.get_by_text("(this model/data)").count(), "model B shows model A's cached report"
    page.screenshot(path=artifacts / "provenance_metrics_model_b.png", full_page=True)
    assert rank1_a  # A's table was there to be (wrongly) reused
    assert not served_b.tracebacks(), served_b.log()
