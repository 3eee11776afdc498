"""The spectra dataset format: construction, netCDF/zarr round trips, validation errors."""
import numpy as np
import pytest
import xarray as xr

from twinviz.spectra.dataset import DatasetError, make_spectra, load_spectra, open_spectra, save_spectra, validate
from twinviz.spectra.grid import get_grid


def small_dataset(n_star=6, grid="apogee-aspcap-dr12", **kw):
    rng = np.random.default_rng(0)
    wave = get_grid(grid).wavelength
    flux = (1 - 0.3 * rng.random((n_star, wave.size))).astype(np.float32)
    args = dict(
        group=np.repeat(np.arange(n_star // 2), 2),
        flux_err=np.full_like(flux, 0.02),
        mask=rng.random(flux.shape) < 0.01,
        fe_h=rng.normal(0, 0.2, n_star), x_fe=rng.normal(0, 0.1, (n_star, 3)), elements=["C", "N", "O"],
        snr=50.0, attrs={"generator": "test", "seed": 3, "linelist_version": "none"},
    )
    args.update(kw)
    return make_spectra(flux, wave, rng.uniform(4000, 5500, n_star), rng.uniform(1, 3.5, n_star), **args)


def test_make_spectra_follows_the_schema():
    ds = small_dataset()
    assert ds["flux"].dims == ("star", "wavelength") and ds["flux"].dtype == np.float32
    assert ds["mask"].dtype == bool and ds["group"].dtype == np.int64
    assert ds["x_fe"].dims == ("star", "element")
    assert ds.attrs["grid_id"] == "apogee-aspcap-dr12" and ds.attrs["twinviz_schema"] == "1"
    assert ds["teff"].attrs["units"] == "K" and ds["wavelength"].attrs["units"] == "Angstrom"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_preserves_everything(tmp_path, suffix):
    ds = small_dataset()
    path = save_spectra(ds, tmp_path / f"spectra{suffix}")
    back = load_spectra(path)
    xr.testing.assert_identical(ds, back)
    assert back.attrs == ds.attrs


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_lazy_open_uses_dask_chunks(tmp_path, suffix):
    path = save_spectra(small_dataset(n_star=10), tmp_path / f"spectra{suffix}")
    lazy = open_spectra(path, chunks={"star": 4})
    assert lazy["flux"].chunks is not None
    xr.testing.assert_equal(lazy.load(), load_spectra(path))


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "d.zarr"
    save_spectra(small_dataset(n_star=4), path)
    save_spectra(small_dataset(n_star=8), path)
    assert load_spectra(path).sizes["star"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def test_failed_save_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "d.nc"
    save_spectra(small_dataset(n_star=4), path)
    bad = small_dataset(n_star=4)
    bad["teff"][0] = -5
    with pytest.raises(DatasetError):
        save_spectra(bad, path)
    assert load_spectra(path).sizes["star"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc"]


def _expect(ds, *words, source="file.nc"):
    with pytest.raises(DatasetError) as info:
        validate(ds, source=source)
    msg = str(info.value)
    assert source in msg and "Fix:" in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_variable_is_named():
    _expect(small_dataset().drop_vars("teff"), "teff", "missing")


def test_wrong_dims_are_named():
    ds = small_dataset()
    _expect(ds.assign(flux=ds["flux"].T), "flux", "dims")


def test_non_increasing_wavelength_is_rejected():
    ds = small_dataset()
    wave = ds["wavelength"].values.copy()
    wave[10], wave[11] = wave[11], wave[10]
    _expect(ds.assign_coords(wavelength=wave), "wavelength", "strictly increasing", "pixel 10")


def test_mismatched_grid_is_rejected():
    ds = small_dataset()
    with pytest.raises(DatasetError, match="apogee-aspcap-dr17"):
        validate(ds, source="x.nc", grid="apogee-aspcap-dr17")
    ds.attrs["grid_id"] = "apogee-aspcap-dr17"
    _expect(ds, "grid_id")


def test_nan_flux_outside_mask_is_rejected_but_masked_nan_is_fine():
    ds = small_dataset(mask=np.zeros((6, 7214), bool))
    ds["flux"][2, 5] = np.nan
    _expect(ds, "flux", "NaN", "star index 2")
    ds["mask"][2, 5] = True
    validate(ds)


@pytest.mark.parametrize("field, value", [("teff", 100.0), ("teff", np.nan), ("logg", 9.0)])
def test_non_physical_labels_are_rejected(field, value):
    ds = small_dataset()
    ds[field][1] = value
    _expect(ds, field, "non-physical")


def test_duplicated_star_ids_are_rejected():
    ds = small_dataset().assign_coords(star=[0, 1, 2, 2, 4, 5])
    _expect(ds, "star", "duplicated", "[2]")


def test_empty_data_is_rejected():
    _expect(small_dataset().isel(star=slice(0, 0)), "flux", "empty")


def test_missing_and_unreadable_files_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_spectra(tmp_path / "nope.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file")
    with pytest.raises(DatasetError, match="junk.nc.*cannot be read"):
        load_spectra(junk)
    with pytest.raises(DatasetError, match="unknown format"):
        load_spectra(junk.rename(tmp_path / "junk.txt"))


def test_validation_error_on_open_names_the_file(tmp_path):
    ds = small_dataset()
    ds["logg"][0] = 12
    path = tmp_path / "bad.nc"
    save_spectra(ds, path, validate_first=False)
    with pytest.raises(DatasetError, match=r"bad\.nc: logg"):
        load_spectra(path)
