"""Fixtures of the app's Python-level tests: a tiny sample model + dataset (built once)."""
import panel as pn
import pytest

from twinviz.testing import make_sample
from twinviz.app.state import ExplorerState
from twinviz.app.loading import load_app_data


@pytest.fixture(scope="session")
def sample_paths(tmp_path_factory):
    """(model_dir, data_path, latents_path) of the sample (60 twin pairs on the DR12 grid)."""
    return make_sample(tmp_path_factory.mktemp("app-sample"), n_pairs=60)


@pytest.fixture
def app_data(sample_paths):
    return load_app_data(*sample_paths)


@pytest.fixture
def state(app_data):
    return ExplorerState(app_data)


@pytest.fixture(autouse=True)
def _panel_clean():
    yield
    pn.state.kill_all_servers()
    pn.state.reset()


@pytest.fixture(scope="session")
def synth_paths(tmp_path_factory):
    """A small dataset from the real built-in synthesizer, with a matching (untrained) model."""
    import torch

    from twinviz.latents import encode_dataset, save_latents
    from twinviz.model import FaderNetwork, ModelConfig
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate
    from twinviz.latents.projection import add_projections

    out = tmp_path_factory.mktemp("app-synth")
    ds = simulate(12, seed=3)
    data = save_spectra(ds, out / "synth.nc")
    torch.manual_seed(0)
    flux = ds["flux"].values
    model = FaderNetwork(ModelConfig(n_pixels=flux.shape[1], grid_id=ds.attrs["grid_id"], latent_dim=6,
                                     basis_dim=8, hidden=[16], adversary_hidden=[8]))
    model.set_flux_normalisation(flux.mean(axis=0), float(flux.std()))
    model_dir = model.save_pretrained(out / "model")
    lat = encode_dataset(model, ds)
    lat = add_projections(lat, ("pca",))
    return model_dir, data, save_latents(lat, out / "synth.latents.nc")
