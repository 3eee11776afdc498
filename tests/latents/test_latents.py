"""Encoding datasets into latents (streamed), 2-D projections, and the embed/twins commands."""
import json

import numpy as np
import pytest

from twinviz.latents import default_latents_path, encode_dataset, load_latents, save_latents
from twinviz.testing import untrained_model
from twinviz.model import encode_arrays
from twinviz.latents.projection import add_projections, pca_projection
from twinviz.spectra.dataset import DatasetError, make_spectra, open_spectra, save_spectra


def small_dataset(n_groups=40, n_pixels=30, seed=0):
    rng = np.random.default_rng(seed)
    n = 2 * n_groups
    flux = (0.8 + 0.05 * rng.standard_normal((n, n_pixels))).astype(np.float32)
    wave = 15200.0 + 0.2 * np.arange(n_pixels)
    return make_spectra(flux, wave, rng.uniform(4000, 5500, n), rng.uniform(1, 3.5, n),
                        group=np.repeat(np.arange(n_groups), 2), fe_h=rng.normal(0, 0.2, n),
                        x_fe=rng.normal(0, 0.1, (n, 2)), elements=["Mg", "Si"], star=np.arange(n) * 10 + 7)


def tiny_model(ds, latent_dim=3, seed=0):
    return untrained_model(ds, latent_dim=latent_dim, hidden=12, seed=seed)


def test_encoding_in_chunks_equals_encoding_at_once():
    ds = small_dataset()
    model = tiny_model(ds)
    at_once = encode_arrays(model, ds["flux"].values, ds["teff"].values, ds["logg"].values, batch_size=10_000)
    chunked = encode_dataset(model, ds, batch_size=4, chunk=7)
    np.testing.assert_allclose(chunked["z"].values, at_once, rtol=1e-5, atol=1e-6)


def test_encoding_streams_from_a_lazily_opened_file(tmp_path):
    ds = small_dataset()
    path = save_spectra(ds, tmp_path / "spectra.nc")
    lazy = open_spectra(path, chunks={})
    assert lazy["flux"].chunks is not None  # dask-backed: read chunk by chunk
    model = tiny_model(ds)
    np.testing.assert_allclose(encode_dataset(model, lazy, chunk=16)["z"].values,
                               encode_dataset(model, ds, chunk=1000)["z"].values, rtol=1e-5, atol=1e-6)


def test_latents_carry_star_ids_and_labels():
    ds = small_dataset()
    latents = encode_dataset(tiny_model(ds), ds)
    assert latents["z"].dims == ("star", "latent") and latents["z"].dtype == np.float32
    np.testing.assert_array_equal(latents["star"].values, ds["star"].values)
    for name in ("teff", "logg", "group", "fe_h", "x_fe"):
        np.testing.assert_array_equal(latents[name].values, ds[name].values)
    assert list(latents["element"].values) == ["Mg", "Si"]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_latents_round_trip(tmp_path, suffix):
    ds = small_dataset()
    latents = add_projections(encode_dataset(tiny_model(ds), ds), ("pca",))
    path = save_latents(latents, tmp_path / f"val.latents{suffix}")
    back = load_latents(path)
    np.testing.assert_array_equal(back["z"].values, latents["z"].values)
    np.testing.assert_array_equal(back["pca"].values, latents["pca"].values)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is gone


def test_open_latents_rejects_a_spectra_file(tmp_path):
    path = save_spectra(small_dataset(), tmp_path / "spectra.nc")
    with pytest.raises(DatasetError, match="no latent variable z"):
        load_latents(path)


def test_default_latents_path_sits_beside_the_data():
    assert default_latents_path("/d/val.nc").as_posix() == "/d/val.latents.nc"
    assert default_latents_path("/d/big.zarr").as_posix() == "/d/big.latents.nc"


def test_pca_projection_orders_components_and_is_sign_stable():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 4)) * np.array([5.0, 2.0, 0.5, 0.1])
    coords, comps, ratio = pca_projection(z)
    assert coords.shape == (500, 2) and ratio[0] > ratio[1]
    assert abs(comps[0, 0]) > 0.99 and abs(comps[1, 1]) > 0.99
    np.testing.assert_allclose(pca_projection(-z)[0], -coords, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(coords.var(axis=0), [25, 4], rtol=0.2)


def test_pca_of_one_dimensional_latents_pads_the_second_axis():
    coords, _, _ = pca_projection(np.arange(10.0)[:, None])
    assert coords.shape == (10, 2) and np.all(coords[:, 1] == 0)


def test_umap_projection_is_seeded_and_stored_with_its_parameters():
    # UMAP compiles with numba on first use (slow): one test, small data.
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(0, 0.1, (60, 3)), rng.normal(5, 0.1, (60, 3))]).astype(np.float32)
    ds = small_dataset(n_groups=60, n_pixels=5)
    latents = encode_dataset(tiny_model(ds), ds)
    latents["z"] = (("star", "latent"), z)
    a = add_projections(latents, ("umap",), n_neighbors=10, seed=3)
    b = add_projections(latents, ("umap",), n_neighbors=10, seed=3)
    np.testing.assert_array_equal(a["umap"].values, b["umap"].values)
    assert a["umap"].attrs["n_neighbors"] == 10 and a["umap"].attrs["metric"] == "manhattan"
    u = a["umap"].values
    # The two well-separated clusters stay apart in the map.
    gap = np.linalg.norm(u[:60].mean(0) - u[60:].mean(0))
    assert gap > 3 * max(u[:60].std(0).max(), u[60:].std(0).max())


def test_twinviz_embed_then_twins(tmp_path, capsys):
    from twinviz.cli import main

    ds = small_dataset()
    data = save_spectra(ds, tmp_path / "val.nc")
    tiny_model(ds).save_pretrained(tmp_path / "run" / "model")
    assert main(["embed", "--model", str(tmp_path / "run"), "--data", str(data), "--projections", "pca",
                 "--chunk", "16"]) == 0
    latents = load_latents(tmp_path / "val.latents.nc")
    assert latents.sizes == {"star": 80, "latent": 3, "axis": 2, "element": 2}
    assert "pca" in latents and "umap" not in latents
    capsys.readouterr()
    assert main(["twins", "--latents", str(tmp_path / "val.latents.nc"), "--star", "17", "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["star"] == 17 and len(out["twins"]) == 5
    assert out["true_twin"]["star"] in (7, 27) and out["true_twin"]["twin_rank"] >= 1
    assert 17 not in [t["star"] for t in out["twins"]]
    distances = [t["distance"] for t in out["twins"]]
    assert distances == sorted(distances)
    assert main(["twins", "--model", str(tmp_path / "run"), "--data", str(data), "--star", "17", "-k", "3"]) == 0
    assert "rank" in capsys.readouterr().out


def test_twinviz_twins_names_an_unknown_star(tmp_path, capsys):
    from twinviz.cli import main

    ds = small_dataset()
    path = save_latents(encode_dataset(tiny_model(ds), ds), tmp_path / "l.nc")
    assert main(["twins", "--latents", str(path), "--star", "3"]) == 2
    assert "no star with id 3" in capsys.readouterr().err
