"""The spectra datasets a data folder offers for training (twinviz.runs.datasets): only valid
spectra, read from their headers, cached, and the form's default (training, validation) pair."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import xarray as xr

from twinviz.runs import RunError, RunManager
from twinviz.runs import datasets as ds_mod
from twinviz.runs.datasets import DatasetInfo, default_pair, spectra_datasets
from twinviz.spectra.dataset import make_spectra, save_spectra
from twinviz.testing import make_sample


def small_spectra(n: int, seed: int, n_pixels: int = 40):
    rng = np.random.default_rng(seed)
    flux = (1 - 0.2 * rng.random((n, n_pixels))).astype(np.float32)
    return make_spectra(flux, 15200.0 + 0.2 * np.arange(n_pixels), rng.uniform(4000, 5500, n),
                        rng.uniform(1, 3.5, n), group=np.arange(n) // 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A data folder as the app leaves it: spectra, the latents cache beside them, a report's
    ranks.nc, a broken file, a hidden one, a zarr store and another grid in a subfolder."""
    root = tmp_path_factory.mktemp("data")
    make_sample(root, n_pairs=10)  # sample.nc, sample.latents.nc and model/
    save_spectra(small_spectra(20, seed=1), root / "train.nc")
    save_spectra(small_spectra(8, seed=2), root / "val.nc")
    save_spectra(small_spectra(8, seed=3), root / "more" / "stars.zarr")
    (root / "more").mkdir(exist_ok=True)
    save_spectra(small_spectra(6, seed=4, n_pixels=30), root / "more" / "val_other_grid.nc")
    (root / "report").mkdir()
    xr.Dataset({"rank": ("star", np.arange(4))}).to_netcdf(root / "report" / "ranks.nc", engine="h5netcdf")
    (root / "broken.nc").write_text("not a netCDF file\n")
    shutil.copy(root / "train.nc", root / ".hidden.nc")
    return root


def test_only_valid_spectra_datasets_are_offered(folder):
    found = spectra_datasets(folder)
    assert [d.path for d in found] == ["more/stars.zarr", "more/val_other_grid.nc", "sample.nc",
                                       "train.nc", "val.nc"]
    sample = next(d for d in found if d.path == "sample.nc")
    assert (sample.n_stars, sample.n_pixels, sample.grid, sample.has_groups) == (20, 7214, "apogee-aspcap-dr12", True)
    assert sample.label == "sample.nc (20 stars)"
    # what is left out, and why (the same one-line messages a launch gives)
    why = ds_mod.dataset_info(folder / "sample.latents.nc")
    assert isinstance(why, str) and "flux: variable is missing" in why and "Fix:" in why
    assert "cannot be read" in ds_mod.dataset_info(folder / "broken.nc")


def test_the_listing_reads_each_file_once_until_it_changes(folder, monkeypatch):
    spectra_datasets(folder)  # fills the cache
    opened = []
    real = ds_mod.inspect_dataset
    monkeypatch.setattr(ds_mod, "inspect_dataset", lambda path, data_dir=None: opened.append(path.name)
                        or real(path, data_dir))
    spectra_datasets(folder)
    assert opened == []  # a stat per file, nothing opened
    later = (folder / "val.nc").stat().st_mtime_ns + 10**9
    os.utime(folder / "val.nc", ns=(later, later))
    spectra_datasets(folder)
    assert opened == ["val.nc"]


def test_the_listing_opens_lazily_without_reading_the_flux(folder, monkeypatch):
    import twinviz.spectra.dataset as dataset

    calls = []
    real = dataset.validate
    monkeypatch.setattr(dataset, "validate", lambda ds, source=None, **kw: calls.append(kw) or real(ds, source, **kw))
    info = ds_mod.inspect_dataset(folder / "train.nc", folder)
    assert isinstance(info, DatasetInfo) and calls == [{"check_values": False}]


def info(path, grid="g1", n_pixels=40):
    return DatasetInfo(path=path, n_stars=10, n_pixels=n_pixels, grid=grid, has_groups=True)


def test_default_pair_prefers_the_explored_dataset_then_training_names():
    demo = [info("demo-1234.nc"), info("demo-1234-copy.nc")]
    assert default_pair(demo, preferred="demo-1234.nc") == ("demo-1234.nc", None)  # no validation file
    files = [info("a.nc"), info("my_train.nc"), info("my_val.nc"), info("val_other.nc", grid="g2", n_pixels=30)]
    assert default_pair(files) == ("my_train.nc", "my_val.nc")
    assert default_pair(files, preferred="a.nc") == ("a.nc", "my_val.nc")
    assert default_pair(files, preferred="missing.nc") == ("my_train.nc", "my_val.nc")
    # validation is never the training file, never another grid, and prefers the same folder
    assert default_pair([info("val.nc")]) == ("val.nc", None)
    assert default_pair([info("train.nc"), info("val.nc", grid="g2")]) == ("train.nc", None)
    nested = [info("x/train.nc"), info("a/val.nc"), info("x/validation.nc")]
    assert default_pair(nested) == ("x/train.nc", "x/validation.nc")
    assert default_pair([]) == (None, None)


def test_a_launch_on_a_latents_cache_or_a_report_is_refused(folder, tmp_path):
    manager = RunManager(tmp_path / "runs", folder)
    for path in ("sample.latents.nc", "report/ranks.nc"):
        with pytest.raises(RunError, match=f"data: '{path}' is not a spectra dataset: .*flux: variable is missing"):
            manager.validate({"data": path, "epochs": 1}, "cpu")
    with pytest.raises(RunError, match="val: .*is not a spectra dataset"):
        manager.validate({"data": "train.nc", "val": "sample.latents.nc"}, "cpu")
    config, _ = manager.validate({"data": "train.nc", "val": "val.nc"}, "cpu")
    assert config.val.endswith("val.nc")
    assert not any(manager.runs_dir.iterdir())


@pytest.mark.parametrize("values, problem", [({"seed": -1}, "seed"), ({"teff_bins": 1}, "teff_bins"),
                                             ({"logg_bins": 1}, "logg_bins")])
def test_one_validation_refuses_the_same_values_on_the_cli_path_and_at_launch(folder, tmp_path, values, problem):
    """TrainConfig.validate (what `twinviz train` runs) and the launch check (the Training tab)
    refuse the same hard bounds: seed=-1 used to pass the first and fail inside numpy."""
    from twinviz.training.config import TrainConfig, TrainConfigError

    with pytest.raises(TrainConfigError, match=problem):
        TrainConfig(data=str(folder / "train.nc"), **values).validate()
    with pytest.raises(RunError, match=problem):
        RunManager(tmp_path / "runs", folder).validate({"data": "train.nc", **values}, "cpu")


def test_validation_data_equal_to_the_training_data_is_refused_on_both_paths(folder, tmp_path):
    from twinviz.training.config import TrainConfig, TrainConfigError

    copy = shutil.copy(folder / "train.nc", tmp_path / "train-copy.nc")  # another name, the same stars
    for val in (folder / "train.nc", copy):
        with pytest.raises(TrainConfigError, match="same data"):
            TrainConfig(data=str(folder / "train.nc"), val=str(val)).validate()
    with pytest.raises(RunError, match="same data"):
        RunManager(tmp_path / "runs", folder).validate({"data": "train.nc", "val": "train.nc"}, "cpu")
