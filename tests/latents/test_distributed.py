"""Encoding on a dask cluster (`twinviz embed --scheduler distributed`): a real LocalCluster of
worker processes gives the latents and reconstruction errors of the local encoding."""
import numpy as np
import pytest
import xarray as xr

from twinviz.cli import main as cli
from twinviz.latents.ood import star_recon_mse
from twinviz.latents import encode_dataset
from twinviz.latents.distributed import cluster_client, encode_on_cluster
from twinviz.model import FaderNetwork
from twinviz.spectra.dataset import open_spectra, save_spectra
from twinviz.testing import make_sample, survey_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("dist"), n_pairs=50)


@pytest.fixture(scope="module")
def client():
    with cluster_client(workers=2) as c:  # two worker processes: what `--workers 2` starts
        yield c


def test_the_cli_on_a_running_cluster_writes_the_local_latents(sample, client, tmp_path):
    model_dir, data, _ = sample
    assert len(client.scheduler_info()["workers"]) == 2
    cluster = ["--scheduler-address", client.scheduler.address]
    for scheduler, extra in (("local", []), ("distributed", cluster)):
        assert cli(["embed", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / f"{scheduler}.nc"),
                    "--projections", "pca", "--chunk", "32", "--scheduler", scheduler, *extra]) == 0
    local, dist = (xr.load_dataset(tmp_path / f"{s}.nc") for s in ("local", "distributed"))
    np.testing.assert_allclose(dist["z"].values, local["z"].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist["recon_mse"].values, local["recon_mse"].values, rtol=1e-4)
    np.testing.assert_array_equal(dist["star"].values, local["star"].values)
    assert set(dist.variables) == set(local.variables) and dist.attrs["model"] == local.attrs["model"]


def test_masked_survey_stars_encode_alike_on_workers(sample, client, tmp_path):
    model_dir = sample[0]
    model = FaderNetwork.from_pretrained(model_dir)
    ds = survey_sample(n_stars=70, masked=0.1)
    assert ds["flux"].shape[1] == model.config.n_pixels and bool(ds["mask"].values.any())
    lazy = open_spectra(save_spectra(ds, tmp_path / "survey.zarr"))
    done = []
    latents, recon = encode_on_cluster(model_dir, lazy, client, chunk=16, batch_size=8,
                                       progress=lambda n, total: done.append((n, total)))
    local = encode_dataset(model, lazy, chunk=16, batch_size=8)
    np.testing.assert_allclose(latents["z"].values, local["z"].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recon, star_recon_mse(model, lazy, local["z"].values, chunk=16, batch_size=8),
                               rtol=1e-4)
    assert done[-1] == (70, 70) and len(done) == 5  # one report per chunk of 16 stars
    np.testing.assert_array_equal(latents["star"].values, ds["star"].values)


def test_nan_flux_is_caught_in_the_block_that_holds_it_locally_and_on_workers(sample, client, tmp_path):
    """embed no longer reads the whole file to check it: each encoded block is checked."""
    from twinviz.spectra.dataset import DatasetError, load_spectra

    model_dir, data, _ = sample
    ds = load_spectra(data)
    flux = ds["flux"].values.copy()
    flux[37, 100] = np.nan
    bad = save_spectra(ds.assign(flux=(("star", "wavelength"), flux)), tmp_path / "bad.zarr", validate_first=False)
    lazy = open_spectra(bad, validate=False)
    model = FaderNetwork.from_pretrained(model_dir)
    with pytest.raises(DatasetError, match=r"bad\.zarr: flux: has 1 NaN/inf values outside the mask in stars 32–47 "
                                           r"\(first in star index 37\)\. Fix: "):
        encode_dataset(model, lazy, chunk=16)
    with pytest.raises(DatasetError, match=r"first in star index 37"):
        encode_on_cluster(model_dir, lazy, client, chunk=16)
    assert cli(["embed", "--model", str(model_dir), "--data", str(bad), "--projections", "", "--chunk", "16"]) != 0
