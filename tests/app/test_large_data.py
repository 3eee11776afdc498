"""The app on data too large for memory (docs/scale.md): above LAZY_FLUX_BYTES of flux the
spectra stay in their file and are read a star at a time; every view shows what it shows when
the flux is in memory, and the Metrics tab sends the Table-1 computation to the command line."""
import numpy as np
import pytest

from twinviz.app import loading
from twinviz.app.loading import build_app_data
from twinviz.app.metrics import MetricsView
from twinviz.app.state import ExplorerState
from twinviz.app.swap import SwapExplorer
from twinviz.app.twin_table import TwinTable
from twinviz.latents import encode_dataset, save_latents
from twinviz.latents.projection import add_projections
from twinviz.model import FaderNetwork
from twinviz.spectra.dataset import load_spectra, save_spectra
from twinviz.spectra.rows import StarRows
from twinviz.testing import survey_sample


@pytest.fixture
def on_disk(monkeypatch):
    monkeypatch.setattr(loading, "LAZY_FLUX_BYTES", 0)  # every file counts as large


def _zarr_copy(sample_paths, tmp_path):
    model_dir, data, latents = sample_paths
    return model_dir, save_spectra(load_spectra(data), tmp_path / "sample.zarr"), latents


def test_large_flux_stays_on_disk_and_every_view_shows_the_same(sample_paths, tmp_path, on_disk):
    model_dir, data, latents = _zarr_copy(sample_paths, tmp_path)
    lazy = build_app_data(model_dir, data, latents)
    loading.LAZY_FLUX_BYTES = 2 ** 62
    eager = build_app_data(model_dir, data, latents)
    assert isinstance(lazy.flux, StarRows) and isinstance(eager.flux, np.ndarray)
    for pos in (0, 7, lazy.n_stars - 1):
        np.testing.assert_array_equal(lazy.observed(pos), eager.observed(pos))
    views = {}
    for name, d in (("lazy", lazy), ("eager", eager)):
        state = ExplorerState(d)
        swap, table = SwapExplorer(state), TwinTable(state)
        state.star = 11  # a click
        views[name] = (swap, table, state)
    for source in views["lazy"][0].sources:
        for column, values in views["lazy"][0].sources[source].data.items():
            np.testing.assert_array_equal(np.asarray(values), np.asarray(views["eager"][0].sources[source].data[column]),
                                          err_msg=f"{source}.{column}")
    assert views["lazy"][2].compared_twin() == views["eager"][2].compared_twin()


def test_metrics_tab_points_large_data_to_the_command_line(sample_paths, tmp_path, on_disk):
    model_dir, data, latents = _zarr_copy(sample_paths, tmp_path)
    view = MetricsView(ExplorerState(build_app_data(model_dir, data, latents)))
    assert "twinviz evaluate --model DIR --data FILE" in view.status.object
    assert not view.compute_button.visible  # no button: at this size it is a command-line job


def test_masked_survey_stars_read_from_disk_keep_their_gaps(tmp_path, sample_paths, on_disk):
    model_dir = sample_paths[0]
    ds = survey_sample(20, masked=0.05)
    data = save_spectra(ds, tmp_path / "survey.zarr")
    model = FaderNetwork.from_pretrained(model_dir)  # latents given: no UMAP in a test
    latents = save_latents(add_projections(encode_dataset(model, ds), ("pca",)), tmp_path / "survey.latents.nc")
    d = build_app_data(model_dir, data, latents)
    assert isinstance(d.mask, StarRows) and isinstance(d.flux_err, StarRows)
    gaps = np.isnan(d.observed(3))
    np.testing.assert_array_equal(gaps, ds["mask"].values[3])
    np.testing.assert_array_equal(np.isnan(d.observed_err(3)), gaps)
