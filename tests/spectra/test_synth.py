"""The built-in synthesizer: the physical behaviours docs/synth.md describes, determinism, the CLI."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from twinviz.spectra import atmosphere as atm
from twinviz.spectra.linelist import FIELDS, LINELIST_PATH, LINELIST_SEED, build_linelist, load_linelist
from twinviz.spectra.synth import ELEMENTS, LINELIST_VERSION, Synthesizer, draw_labels
from twinviz.spectra.simulation import simulate


@pytest.fixture(scope="module")
def synth():
    return Synthesizer("apogee-aspcap-dr12")


@pytest.fixture(scope="module")
def lines(synth):
    """The stored line list restricted to lines whose centres fall on the grid (not in chip gaps)."""
    ll = load_linelist()
    nearest = np.searchsorted(synth.wavelength, ll["wavelength"]).clip(1, synth.wavelength.size - 1)
    gap = np.minimum(np.abs(synth.wavelength[nearest] - ll["wavelength"]),
                     np.abs(synth.wavelength[nearest - 1] - ll["wavelength"]))
    return {k: ll[k][gap < 0.3] for k in FIELDS}


def _pixel_of(synth, wavelength):
    return int(np.argmin(np.abs(synth.wavelength - wavelength)))


def test_public_api_constants():
    assert ELEMENTS == ("C", "N", "O", "Na", "Mg", "Al", "Si", "P", "S", "K", "Ca", "Ti", "V", "Cr",
                        "Mn", "Co", "Ni")
    assert LINELIST_VERSION == "twinviz-ll-1"


def test_noiseless_flux_is_in_zero_one(synth):
    labels = draw_labels(40, seed=3)
    corners = np.array([[4000, 1.0], [4000, 3.5], [5500, 1.0], [5500, 3.5]], dtype=float)
    teff = np.concatenate([labels["teff"], corners[:, 0]])
    logg = np.concatenate([labels["logg"], corners[:, 1]])
    fe_h = np.concatenate([labels["fe_h"], [-1.0, 0.5, 0.5, -1.0]])
    x_fe = np.concatenate([labels["x_fe"], np.full((4, len(ELEMENTS)), 0.4)])
    flux = synth.batch(teff, logg, fe_h, x_fe)
    assert flux.dtype == np.float32 and flux.shape == (teff.size, synth.wavelength.size)
    assert np.all(np.isfinite(flux)) and flux.min() > 0.0 and flux.max() <= 1.0
    assert flux.min() < 0.5  # and it does have real lines


def test_raising_one_element_deepens_its_lines_and_leaves_far_pixels_unchanged(synth, lines):
    base = synth.spectrum(4600, 2.4, -0.1, {"Mg": 0.0})
    richer = synth.spectrum(4600, 2.4, -0.1, {"Mg": 0.3})
    mg = lines["wavelength"][lines["species"] == "Mg"]
    distance = np.min(np.abs(synth.wavelength[:, None] - mg[None, :]), axis=1)  # Å to nearest Mg line
    assert np.all(richer <= base + 1e-6)  # nothing gets shallower
    near = [_pixel_of(synth, w) for w in mg]
    assert np.mean(base[near] - richer[near]) > 0.02  # Mg lines clearly deepen
    assert np.mean(base[near] - richer[near] > 0) > 0.8  # all but the faintest, float32-invisible ones
    far = distance > 30.0  # beyond the longest damping wing (21 Å) plus the LSF
    assert far.sum() > 1000
    np.testing.assert_array_equal(richer[far], base[far])


def _isolated_line(synth, lines, species, chi_range):
    """The strongest line of ``species`` with χ in chi_range and no comparable line within 1 Å."""
    state = atm.chemistry_state([4500.0], [2.5], [0.0], np.zeros((1, len(ELEMENTS))))
    strength = atm.log_line_strength(state, [4500.0], lines["species"], lines["ion"], lines["loggf"],
                                     lines["chi"])[0]
    best = None
    for i in np.flatnonzero((lines["species"] == species) & (lines["ion"] == 1)
                            & (lines["chi"] > chi_range[0]) & (lines["chi"] < chi_range[1])):
        close = np.abs(lines["wavelength"] - lines["wavelength"][i]) < 1.0
        close[i] = False
        if np.all(strength[close] < strength[i] - 1.0) and (best is None or strength[i] > strength[best]):
            best = i
    assert best is not None
    return lines["wavelength"][best]


def test_teff_change_alters_low_and_high_excitation_lines_by_different_factors(synth, lines):
    low = _pixel_of(synth, _isolated_line(synth, lines, "Fe", (2.0, 4.0)))
    high = _pixel_of(synth, _isolated_line(synth, lines, "Fe", (5.8, 7.0)))
    cool = 1.0 - synth.spectrum(4200, 2.0, 0.0)
    warm = 1.0 - synth.spectrum(5200, 2.0, 0.0)  # same chemistry, same gravity
    ratio_low, ratio_high = warm[low] / cool[low], warm[high] / cool[high]
    assert ratio_low < 0.8 * ratio_high  # low-χ lines weaken relative to high-χ lines when hotter
    assert cool[low] > 0.02 and cool[high] > 0.02


def test_identical_labels_give_identical_spectra(synth):
    x = np.linspace(-0.2, 0.2, len(ELEMENTS))
    flux = synth.batch([4700, 4700, 5000], [2.2, 2.2, 3.0], [0.1, 0.1, 0.1], [x, x, x])
    np.testing.assert_array_equal(flux[0], flux[1])
    assert not np.array_equal(flux[0], flux[2])
    np.testing.assert_array_equal(synth.spectrum(4700, 2.2, 0.1, x), synth.spectrum(4700, 2.2, 0.1, x))


def test_spectrum_equals_matching_row_of_batch(synth):
    labels = draw_labels(3, seed=5)
    flux = synth.batch(labels["teff"], labels["logg"], labels["fe_h"], labels["x_fe"])
    as_dict = dict(zip(ELEMENTS, labels["x_fe"][4]))
    np.testing.assert_array_equal(
        synth.spectrum(labels["teff"][4], labels["logg"][4], labels["fe_h"][4], as_dict), flux[4])


def test_concurrent_threads_get_the_same_spectra_as_sequential_calls(synth):
    from concurrent.futures import ThreadPoolExecutor

    teffs = np.linspace(4000, 5500, 8)
    expected = [synth.spectrum(t, 2.0, 0.0) for t in teffs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda t: synth.spectrum(t, 2.0, 0.0), teffs))
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_same_seed_gives_same_dataset():
    a = simulate(3, seed=11, snr=60)
    b = simulate(3, seed=11, snr=60)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(simulate(3, seed=12, snr=60)["flux"].values, a["flux"].values)


def test_noise_has_sigma_one_over_snr_and_flux_err_is_stored():
    clean = simulate(4, seed=2)
    noisy = simulate(4, seed=2, snr=50)
    assert "flux_err" not in clean and float(clean["flux"].max()) <= 1.0
    residual = (noisy["flux"] - clean["flux"]).values
    assert abs(residual.std() - 1 / 50) < 0.002
    np.testing.assert_allclose(noisy["flux_err"].values, 1 / 50)
    assert noisy.attrs["snr"] == 50 and clean.attrs["snr"] == "none"


@pytest.mark.parametrize("chemistry", ["independent", "galactic", "low-d"])
def test_group_members_share_every_chemical_label_and_differ_in_teff_logg(chemistry):
    labels = draw_labels(100, group_size=3, chemistry=chemistry, seed=4)
    assert labels["x_fe"].shape == (300, len(ELEMENTS)) and labels["group"].dtype == np.int64
    for g in range(100):
        members = np.flatnonzero(labels["group"] == g)
        assert members.size == 3
        assert np.all(labels["fe_h"][members] == labels["fe_h"][members[0]])
        assert np.all(labels["x_fe"][members] == labels["x_fe"][members[0]])
        assert np.unique(labels["teff"][members]).size == 3 and np.unique(labels["logg"][members]).size == 3
    assert 4000 <= labels["teff"].min() and labels["teff"].max() <= 5500
    assert 1.0 <= labels["logg"].min() and labels["logg"].max() <= 3.5


def test_galactic_chemistry_is_correlated():
    labels = draw_labels(2000, chemistry="galactic", seed=1)
    x = labels["x_fe"][::2]
    mg, si = x[:, ELEMENTS.index("Mg")], x[:, ELEMENTS.index("Si")]
    assert np.corrcoef(mg, si)[0, 1] > 0.8


def test_stored_linelist_is_rebuilt_exactly_from_its_seed():
    stored = load_linelist(LINELIST_PATH)  # np.load(..., allow_pickle=False) inside
    assert stored["version"] == LINELIST_VERSION and stored["seed"] == LINELIST_SEED
    rebuilt = build_linelist(LINELIST_SEED)
    for key in FIELDS:
        np.testing.assert_array_equal(stored[key], rebuilt[key], err_msg=key)
    species = set(stored["species"].tolist())
    assert set(ELEMENTS) | {"Fe", "CO", "CN", "OH", "H"} <= species


def test_simulate_cli_writes_a_dataset_that_opens(tmp_path):
    from twinviz.spectra.dataset import load_spectra

    out = tmp_path / "twins.nc"
    result = subprocess.run(
        [sys.executable, "-m", "twinviz", "simulate", "--pairs", "5", "--seed", "3", "--snr", "100",
         "--chemistry", "galactic", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ds = load_spectra(out)
    assert ds.sizes["star"] == 10 and ds.sizes["wavelength"] == 7214
    assert ds.attrs["generator"] == "twinviz.synth" and ds.attrs["linelist_version"] == LINELIST_VERSION
    assert ds.attrs["chemistry"] == "galactic" and int(ds.attrs["seed"]) == 3
    assert np.array_equal(ds["group"].values, np.repeat(np.arange(5), 2))


def test_a_pixel_has_the_same_flux_on_every_apogee_grid(synth):
    from twinviz.spectra.grid import get_grid

    full = Synthesizer("apogee-apstar").spectrum(4800, 2.6, -0.2)
    dr17 = Synthesizer("apogee-aspcap-dr17")
    assert dr17.wavelength.size == 7514
    np.testing.assert_allclose(dr17.spectrum(4800, 2.6, -0.2), full[get_grid("apogee-aspcap-dr17").pixels],
                               atol=2e-6)
    np.testing.assert_allclose(synth.spectrum(4800, 2.6, -0.2), full[synth.grid.pixels], atol=2e-6)
