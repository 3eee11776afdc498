"""Regimes (populations, low-d chemistry) and nuisances of the built-in synthesizer (issue 10)."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import twinviz.spectra.synth as synth_module
from twinviz.spectra import atmosphere as atm
from twinviz.spectra.labels import ALPHA_ELEMENTS
from twinviz.spectra.linelist import FIELDS, load_linelist
from twinviz.spectra.nuisances import (CHIP_EDGE_PIXELS, CHIPS, PERSISTENCE_FRACTION, PERSISTENCE_RANGE_A,
                                       PRESETS, SKY_HELIO_KMS, SKY_MASK_HALF_KMS, Nuisances, draw_nuisances,
                                       sky_lines)
from twinviz.spectra.synth import C_KMS, ELEMENTS, PIXEL_KMS, Synthesizer, draw_labels
from twinviz.spectra.simulation import simulate


def _digest(ds) -> str:
    h = hashlib.sha256()
    for key in ("flux", "teff", "logg", "fe_h", "x_fe", "group"):
        a = np.ascontiguousarray(ds[key].values)
        h.update(key.encode()); h.update(a.dtype.str.encode()); h.update(a.tobytes())
    if "flux_err" in ds:
        h.update(ds["flux_err"].values.tobytes())
    return h.hexdigest()


# Computed with the code of main at 7d53c9e, before populations and nuisances existed.
PINNED = [
    (dict(seed=0), "a7d7f31ecacdf335529d682fab0c023783ab1a674205700ce96731b3eca8465f"),
    (dict(seed=7, snr=50), "779f0b867b24646b2f01a58040ccf690bf6847e7f77d76b1ac5382d32abca068"),
    (dict(seed=3, chemistry="galactic", snr=100), "df2d934125cb3771145d9d07b2dedafcf7fb1ef416f548f7dedd13a01ec04708"),
]


@pytest.mark.parametrize("options,digest", PINNED, ids=["noiseless", "snr50", "galactic-snr100"])
def test_default_output_is_bit_for_bit_what_it_was(options, digest):
    ds = simulate(4, **options)
    assert _digest(ds) == digest
    assert "mask" not in ds
    assert ds.attrs["population"] == "giants" and ds.attrs["nuisance_preset"] == "none"


@pytest.fixture(scope="module")
def synth():
    return Synthesizer("apogee-aspcap-dr12")


# ------------------------------------------------------------------ populations
def test_dwarf_labels_lie_in_the_dwarf_box_and_follow_the_main_sequence():
    lab = draw_labels(2000, population="dwarfs", seed=3)
    assert 4400 <= lab["teff"].min() and lab["teff"].max() <= 6800
    assert 4.0 <= lab["logg"].min() and lab["logg"].max() <= 5.0
    assert lab["dwarf"].all()
    cool, hot = lab["logg"][lab["teff"] < 5000], lab["logg"][lab["teff"] > 6200]
    assert cool.mean() - hot.mean() > 0.15  # hotter dwarfs have lower gravity on the main sequence


def test_mixed_population_keeps_the_giants_and_chemistry_of_the_same_seed():
    giants = draw_labels(500, population="giants", seed=9)
    mixed = draw_labels(500, population="mixed", seed=9)
    dwarf = mixed["dwarf"]
    assert 0.4 < dwarf.mean() < 0.6
    np.testing.assert_array_equal(mixed["teff"][~dwarf], giants["teff"][~dwarf])
    np.testing.assert_array_equal(mixed["x_fe"], giants["x_fe"])
    assert mixed["logg"][dwarf].min() >= 4.0 and mixed["logg"][~dwarf].max() <= 3.5


def _metal_depth(synth, flux):
    """Mean line depth away from the Brackett lines (which do strengthen in hotter stars)."""
    h = synth.lines["wavelength"][synth.lines["species"] == "H"]
    far = np.min(np.abs(synth.wavelength[:, None] - h[None, :]), axis=1) > 40.0
    return float(np.mean(1.0 - flux[far]))


def test_hotter_dwarfs_have_weaker_metal_lines(synth):
    # all lines bar hydrogen, G to F dwarfs (K dwarfs: flat, see docs/synth.md)
    teff = np.array([5000.0, 5800.0, 6400.0, 6800.0])
    flux = synth.batch(teff, np.full(4, 4.4), np.zeros(4), np.zeros((4, len(ELEMENTS))))
    depth = [_metal_depth(synth, f) for f in flux]
    assert np.all(np.diff(depth) < 0), depth
    assert depth[-1] < 0.6 * depth[0]


def test_hotter_dwarfs_have_weaker_low_excitation_fe_lines(synth):
    ll = synth.lines
    fe = ll["wavelength"][(ll["species"] == "Fe") & (ll["chi"] < 5.0)]
    px = np.unique([np.argmin(np.abs(synth.wavelength - w)) for w in fe])
    teff = np.array([4800.0, 5400.0, 6000.0, 6600.0])
    flux = synth.batch(teff, np.full(4, 4.4), np.zeros(4), np.zeros((4, len(ELEMENTS))))
    depth = (1.0 - flux[:, px]).mean(axis=1)
    assert np.all(np.diff(depth) < 0), depth
    assert depth[-1] < 0.4 * depth[0]


def test_dwarf_spectra_are_finite_and_in_zero_one_over_the_whole_box(synth):
    t, g, fe = np.meshgrid([4400.0, 5500.0, 6100.0, 6800.0], [4.0, 4.5, 5.0], [-1.0, 0.0, 0.5])
    n = t.size
    x = np.tile([-0.3, 0.0, 0.5], n // 3 + 1)[:n, None] * np.ones((1, len(ELEMENTS)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow or NaN on the way
        flux = synth.batch(t.ravel(), g.ravel(), fe.ravel(), x)
    assert np.all(np.isfinite(flux)) and flux.min() > 0.0 and flux.max() <= 1.0
    # not saturated garbage: a solar F dwarf's deepest lines keep some flux, and it has no more
    # nearly black pixels than a 5500 K dwarf (whose physics is the giants', unchanged)
    f_dwarf, g_dwarf = synth.spectrum(6600, 4.3, 0.0), synth.spectrum(5500, 4.5, 0.0)
    assert f_dwarf.min() > 0.01
    assert np.sum(f_dwarf < 0.1) <= np.sum(g_dwarf < 0.1) <= 5


def test_atmosphere_is_sane_over_the_dwarf_range():
    teff = np.array([4400.0, 5000.0, 5800.0, 6800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        state = atm.chemistry_state(teff, np.full(4, 4.5), np.zeros(4), np.zeros((4, len(ELEMENTS))))
        neutral_fe = atm.log_stage_fraction(teff, state["log_pe"], atm.IONISATION_EV["Fe"], 1)
    assert np.all(np.diff(state["log_pe"]) > 0)  # metals ionise: more electrons when hotter
    assert np.all(np.diff(neutral_fe) < 0) and np.all(neutral_fe <= 0)  # Fe I fraction falls, ≤ 1
    co_share = 10 ** (state["log_molecule"]["CO"] - (atm.SOLAR_A["C"] - 12))
    assert co_share[0] > 0.5 and co_share[-1] < 0.05  # CO dissociates in F dwarfs
    # the excitation softening leaves every Teff ≤ 5500 K untouched
    assert atm.excitation_theta(5000.0) == atm.theta(5000.0)
    assert atm.excitation_theta(6800.0) > atm.theta(6800.0)


# ------------------------------------------------------------------ low-d chemistry
def test_low_d_chemistry_varies_only_fe_and_one_alpha():
    lab = draw_labels(400, chemistry="low-d", seed=5)
    x = lab["x_fe"]
    is_alpha = np.isin(np.array(ELEMENTS), ALPHA_ELEMENTS)
    np.testing.assert_array_equal(x[:, ~is_alpha], 0.0)
    np.testing.assert_array_equal(x[:, is_alpha], np.repeat(x[:, [ELEMENTS.index("Mg")]], is_alpha.sum(), axis=1))
    assert x[:, is_alpha].std() > 0.03  # α does vary
    # one row per group: (Fe/H, all [X/Fe]) spans exactly two dimensions
    per_group = np.column_stack([lab["fe_h"], x])[::2]
    assert np.linalg.matrix_rank(per_group - per_group.mean(axis=0), tol=1e-9) == 2


def test_low_d_twins_share_labels_and_the_stored_x_fe_is_what_was_synthesized(synth):
    ds = simulate(3, seed=4, chemistry="low-d")
    x = ds["x_fe"].values
    np.testing.assert_array_equal(x[0], x[1])
    lab = draw_labels(3, chemistry="low-d", seed=4)
    np.testing.assert_array_equal(x, lab["x_fe"].astype(np.float32))
    again = synth.batch(ds["teff"].values, ds["logg"].values, ds["fe_h"].values, x)
    np.testing.assert_allclose(again, ds["flux"].values, atol=2e-4)  # labels stored as float32


# ------------------------------------------------------------------ nuisances
@pytest.fixture(scope="module")
def one_line():
    """A synthesizer whose line list holds one moderately strong, isolated Fe I line (at
    ≈ 16 000 Å), and its rest wavelength; hydrogen lines are kept but made negligible."""
    ll = load_linelist()
    fe = np.flatnonzero((ll["species"] == "Fe") & (np.abs(ll["wavelength"] - 16000.0) < 60.0))[0]
    keep = ll["species"] == "H"
    keep[fe] = True
    lines = {k: ll[k][keep] for k in FIELDS}
    lines["loggf"] = np.where(lines["species"] == "H", -99.0, lines["loggf"] + 1.5)
    lines.update(version="one-line", seed=0)
    original = synth_module.load_linelist
    synth_module.load_linelist = lambda path=None: lines
    try:
        return Synthesizer("apogee-apstar"), float(ll["wavelength"][fe])
    finally:
        synth_module.load_linelist = original


def _window(s, wavelength, half=25):
    """±half pixels around a wavelength: the line's whole profile, without the float32
    round-off (≈ 1e-7 a pixel) of thousands of continuum pixels."""
    i = int(np.argmin(np.abs(s.wavelength - wavelength)))
    return slice(i - half, i + half + 1)


def _centroid_kms(flux, window):
    depth = 1.0 - flux[window].astype(np.float64)
    return float(np.sum(depth * np.arange(depth.size)) / np.sum(depth)) * PIXEL_KMS


@pytest.mark.parametrize("rv", [0.1, 0.4, -2.5])
def test_rv_residual_moves_a_line_centroid_by_rv(one_line, rv):
    s, line = one_line
    rest = s.spectrum(4600, 2.4, 0.0)
    assert 0.05 < 1.0 - rest.min() < 0.9
    moved = s.spectrum(4600, 2.4, 0.0, rv=rv)
    window = _window(s, line)
    assert _centroid_kms(moved, window) - _centroid_kms(rest, window) == pytest.approx(rv, rel=0.01, abs=0.003)


def test_rv_residual_equals_synthesis_from_a_doppler_shifted_line_list(synth):
    rv = 1.7
    ll = load_linelist()
    ll["wavelength"] = ll["wavelength"] * np.sqrt((1 + rv / C_KMS) / (1 - rv / C_KMS))
    original = synth_module.load_linelist
    synth_module.load_linelist = lambda path=None: ll
    try:
        shifted_lines = Synthesizer("apogee-aspcap-dr12")
    finally:
        synth_module.load_linelist = original
    expected = shifted_lines.spectrum(4700, 2.2, -0.2)
    got = synth.spectrum(4700, 2.2, -0.2, rv=rv)
    rest = synth.spectrum(4700, 2.2, -0.2)
    inner = np.ones(got.size, bool); inner[:5] = inner[-5:] = False  # the grid's outer ends
    assert np.abs(got - expected)[inner].max() < 2e-3
    assert np.abs(rest - expected)[inner].max() > 10 * np.abs(got - expected)[inner].max()


def test_broadening_lowers_depth_and_conserves_equivalent_width(one_line):
    s, line = one_line
    flux = [s.spectrum(4600, 2.4, 0.0, vbroad=v) for v in (0.0, 4.0, 8.0, 12.0)]
    depth = [1.0 - f.min() for f in flux]
    window = _window(s, line)
    ew = [float(np.sum(1.0 - f[window].astype(np.float64))) for f in flux]
    assert np.all(np.diff(depth) < 0)
    assert depth[-1] < 0.75 * depth[0]
    np.testing.assert_allclose(ew, ew[0], rtol=2e-3)
    np.testing.assert_allclose(flux[0], s.spectrum(4600, 2.4, 0.0), atol=1e-6)  # ζ = 0: no broadening


def test_broadening_conserves_total_absorption_of_a_full_spectrum(synth):
    sharp = synth.spectrum(4500, 2.5, 0.0)
    broad = synth.spectrum(4500, 2.5, 0.0, vbroad=8.0)
    assert (1 - broad).max() < (1 - sharp).max() - 0.05
    assert np.sum(1 - broad, dtype=np.float64) == pytest.approx(np.sum(1 - sharp, dtype=np.float64), rel=2e-3)


def test_microturbulence_strengthens_saturated_lines(synth):
    low, high = (synth.spectrum(4500, 2.5, 0.0, vmicro=v) for v in (1.0, 2.5))
    default = synth.spectrum(4500, 2.5, 0.0)
    assert np.sum(1 - high, dtype=np.float64) > 1.05 * np.sum(1 - low, dtype=np.float64)  # curve of growth
    xi = atm.microturbulence(2.5)
    np.testing.assert_allclose(synth.spectrum(4500, 2.5, 0.0, vmicro=xi), default, atol=1e-6)


def test_nuisances_are_drawn_per_star_from_their_own_streams():
    logg = np.repeat(np.linspace(1.0, 3.5, 100), 2)
    all_on = draw_nuisances(200, PRESETS["realistic"], seed=3, logg=logg)
    rv_only = draw_nuisances(200, Nuisances(rv_scatter=0.3), seed=3, logg=logg)
    np.testing.assert_array_equal(all_on["rv"], rv_only["rv"])  # one nuisance does not move another
    assert rv_only["vbroad"] is None and rv_only["continuum"] is None
    for key in ("vmicro", "vbroad", "rv"):  # twins (consecutive rows) get different values
        assert np.all(all_on[key][0::2] != all_on[key][1::2])
    assert np.std(all_on["vmicro"] - atm.microturbulence(logg)) == pytest.approx(0.25, rel=0.2)
    assert np.std(all_on["rv"]) == pytest.approx(0.3, rel=0.2)
    assert 0.0 <= all_on["vbroad"].min() and all_on["vbroad"].max() <= 8.0


def test_continuum_error_is_smooth_multiplicative_per_chip_with_the_stated_amplitude():
    frac = 0.01
    clean = simulate(100, seed=6)
    off = simulate(100, seed=6, nuisances=Nuisances(continuum_error=frac))
    ratio = (off["flux"] / clean["flux"]).values.astype(np.float64)
    p = np.rint((np.log10(clean["wavelength"].values) - 4.179) / 6e-6)
    for lo, hi in CHIPS:
        on = (p >= lo) & (p < hi)
        x = 2 * (p[on] - lo) / (hi - 1 - lo) - 1
        coef = np.polynomial.legendre.legfit(x, ratio[:, on].T, 2)
        fit = np.polynomial.legendre.legval(x, coef)  # (stars, pixels)
        # multiplicative: a quadratic through deep lines and continuum alike, to float32 precision
        assert np.abs(ratio[:, on] - fit).max() < 1e-5
    rms = np.sqrt(np.mean((ratio - 1.0) ** 2))
    assert rms == pytest.approx(frac, rel=0.2)
    assert 0.99 < np.mean(np.abs(ratio - 1) < 5 * frac)


def test_masks_are_set_where_promised():
    ds = simulate(200, seed=8, snr=100, nuisances=Nuisances(masks=True))
    mask, w = ds["mask"].values, ds["wavelength"].values
    p = np.rint((np.log10(w) - 4.179) / 6e-6).astype(int)
    for lo, hi in CHIPS:  # the ends of each chip on this grid, for every star
        on = np.flatnonzero((p >= lo) & (p < hi))
        assert on.size > 1000
        assert mask[:, on[:CHIP_EDGE_PIXELS]].all() and mask[:, on[-CHIP_EDGE_PIXELS:]].all()
    # every sky line that falls on the grid masks ≥ 1 pixel of each star, within the RV window
    sky = sky_lines()
    reach = (SKY_HELIO_KMS + SKY_MASK_HALF_KMS) / C_KMS
    on_grid = [lam for lam in sky if np.min(np.abs(np.log(w / lam))) < 1e-5]
    assert len(on_grid) > 40
    for lam in on_grid:
        near = np.abs(np.log(w / lam)) <= reach * 1.01
        assert mask[:, near].any(axis=1).all()
    # persistence: the blue band is masked for about PERSISTENCE_FRACTION of the stars
    band = (w >= PERSISTENCE_RANGE_A[0]) & (w <= PERSISTENCE_RANGE_A[1])
    hit = mask[:, band].all(axis=1)
    assert abs(hit.mean() - PERSISTENCE_FRACTION) < 0.1
    assert 0.03 < mask[~hit].mean() < 0.12  # sky + edges: a few per cent of pixels
    # masked pixels carry finite placeholders; the rest keep their noise level
    assert np.all(ds["flux"].values[mask] == 1.0) and np.all(ds["flux_err"].values[mask] == 1.0)
    np.testing.assert_allclose(ds["flux_err"].values[~mask], 0.01)


def test_realistic_preset_is_reproducible_from_its_seed():
    a = simulate(3, seed=21, snr=70, population="mixed", chemistry="low-d", nuisances="realistic")
    b = simulate(3, seed=21, snr=70, population="mixed", chemistry="low-d", nuisances="realistic")
    xr.testing.assert_identical(a, b)
    c = simulate(3, seed=22, snr=70, population="mixed", chemistry="low-d", nuisances="realistic")
    assert not np.array_equal(a["flux"].values, c["flux"].values)
    plain = simulate(3, seed=21, snr=70, population="mixed", chemistry="low-d")
    np.testing.assert_array_equal(a["teff"].values, plain["teff"].values)  # nuisances leave labels alone
    assert not np.array_equal(a["flux"].values, plain["flux"].values)


def test_nuisance_spectra_are_the_same_alone_and_in_a_batch(synth):
    lab = draw_labels(3, seed=2)
    kw = dict(vmicro=[1.5, 2.0, 1.1, 1.7, 2.2, 1.9], vbroad=[0, 3, 6, 1, 8, 2.5], rv=[0.2, -0.3, 0, 0.1, 0.4, -0.1])
    flux = synth.batch(lab["teff"], lab["logg"], lab["fe_h"], lab["x_fe"], **kw)
    i = 4
    one = synth.spectrum(lab["teff"][i], lab["logg"][i], lab["fe_h"][i], lab["x_fe"][i],
                         **{k: v[i] for k, v in kw.items()})
    np.testing.assert_allclose(one, flux[i], atol=1e-6)
    assert flux.max() <= 1.0 and flux.min() > 0.0


def test_simulate_cli_records_every_regime_option(tmp_path):
    from twinviz.spectra.dataset import load_spectra

    out = tmp_path / "hard.nc"
    result = subprocess.run(
        [sys.executable, "-m", "twinviz", "simulate", "--pairs", "4", "--seed", "5", "--snr", "80",
         "--population", "dwarfs", "--chemistry", "low-d", "--preset", "realistic", "--rv-scatter", "0.5",
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ds = load_spectra(out)
    attrs = ds.attrs
    assert attrs["population"] == "dwarfs" and attrs["chemistry"] == "low-d"
    assert attrs["nuisance_preset"] == "custom"  # realistic with an override
    assert float(attrs["nuisance_rv_scatter"]) == 0.5 and float(attrs["nuisance_vbroad"]) == 8.0
    assert float(attrs["nuisance_vmicro_scatter"]) == 0.25 and float(attrs["nuisance_continuum_error"]) == 0.0075
    assert int(attrs["nuisance_masks"]) == 1 and "mask" in ds
    assert ds["logg"].values.min() >= 4.0


def test_masks_on_the_full_apstar_grid_cover_the_chip_gaps():
    from twinviz.spectra.grid import get_grid
    from twinviz.spectra.nuisances import mask_pixels

    w = get_grid("apogee-apstar").wavelength
    mask = mask_pixels(w, 5, seed=1)
    p = np.arange(w.size)
    in_chip = np.zeros(w.size, bool)
    for lo, hi in CHIPS:
        in_chip |= (p >= lo) & (p < hi)
    assert (~in_chip).sum() > 500 and mask[:, ~in_chip].all()
    assert mask[:, in_chip].mean() < 0.3
