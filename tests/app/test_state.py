"""Shared data are loaded once; each session keeps its own selection."""
import pytest

from twinviz.app.state import AppDataError, ExplorerState

from twinviz.app.loading import load_app_data


def test_app_data_is_loaded_once_per_paths(sample_paths):
    assert load_app_data(*sample_paths) is load_app_data(*sample_paths)


def test_sessions_keep_their_own_selection(app_data):
    a, b = ExplorerState(app_data), ExplorerState(app_data)
    a.star = 5
    assert b.star == 0 and a.data is b.data


def test_selecting_a_star_resets_the_sliders_to_its_labels(state):
    state.star = 7
    assert state.teff == pytest.approx(float(state.data.teff[7]), abs=1e-3)
    assert state.logg == pytest.approx(float(state.data.logg[7]), abs=1e-3)


def test_a_batched_update_keeps_url_slider_values(state):
    state.param.update(star=9, teff=4321.0, logg=1.5)
    assert (state.star, state.teff, state.logg) == (9, 4321.0, 1.5)


def test_star_ids_are_looked_up_and_unknown_ids_explained(state):
    state.select_star_id("1010")
    assert state.star == 10
    with pytest.raises(AppDataError, match="no star with id '99999'"):
        state.select_star_id("99999")


def test_compared_twin_defaults_to_the_true_twin(state):
    state.star = 4
    assert state.compared_twin() == 5  # pairs are stored next to each other in the sample
    state.twin = 11
    assert state.compared_twin() == 11


@pytest.mark.parametrize("kind", ["model", "data"])
def test_bad_paths_give_readable_errors(sample_paths, tmp_path, kind):
    model, data, _ = sample_paths
    args = {"model": tmp_path / "nope", "data": data} if kind == "model" else {"model": model, "data": tmp_path / "x.nc"}
    with pytest.raises(AppDataError) as err:
        load_app_data(**args)
    assert f"--{kind}" in str(err.value) and "Fix" in str(err.value)


def test_latents_are_computed_and_cached_when_not_given(sample_paths, tmp_path, monkeypatch):
    import shutil

    model, data, _ = sample_paths
    local = tmp_path / "copy.nc"
    shutil.copy(data, local)
    monkeypatch.setattr("twinviz.latents.projection.add_projections",
                        lambda lat, umap=True, **kw: lat.assign(pca=(("star", "axis"), lat["z"].values[:, :2])),
                        raising=False)
    first = load_app_data(model, local)
    assert list(tmp_path.glob("copy.latents-*.nc")), "latents cached beside the data"
    assert first.z.shape == (120, 8) and "pca" in first.projections


def test_the_star_summary_says_unknown_for_a_missing_fe_h(sample_paths):
    import dataclasses

    import numpy as np

    from twinviz.app.controls import StarPicker
    from twinviz.app.loading import load_app_data
    from twinviz.app.state import ExplorerState

    data = load_app_data(*sample_paths)
    fe_h = data.fe_h.copy()
    fe_h[3] = np.nan  # an imported star without [Fe/H]
    state = ExplorerState(dataclasses.replace(data, fe_h=fe_h))
    picker = StarPicker(state)
    state.star = 3
    assert "[Fe/H] unknown" in picker.summary.object and "nan" not in picker.summary.object
    state.star = 4
    assert f"[Fe/H] **{fe_h[4]:+.2f}**" in picker.summary.object


def test_a_model_with_a_twin_metric_ranks_twins_on_it(sample_paths, tmp_path):
    """The app ranks neighbours (and picks the true twin) on z in the model's twin metric."""
    import shutil

    import numpy as np

    from twinviz.model import FaderNetwork
    from twinviz.twins.index import TwinIndex
    from twinviz.twins.metric import fit_twin_metric

    model_dir, data_path, _ = sample_paths
    with_metric = tmp_path / "model"
    shutil.copytree(model_dir, with_metric)
    model = FaderNetwork.from_pretrained(with_metric)
    plain = load_app_data(model_dir, data_path)
    metric = fit_twin_metric(plain.z, plain.group).with_dims(2)  # a deliberately different space
    metric.info["weights_sha256"] = model.weights_sha256
    metric.save(with_metric)

    data = load_app_data(with_metric, data_path)
    assert data.z_twin.shape == (data.n_stars, 2)
    np.testing.assert_array_equal(data.z, plain.z)  # the decoder still gets z itself
    positions, distances = data.neighbours(3, 5)
    expected, _ = TwinIndex(metric.project(plain.z)).search(3, 5)
    np.testing.assert_array_equal(positions, expected)
    assert not np.array_equal(positions, plain.neighbours(3, 5)[0])
