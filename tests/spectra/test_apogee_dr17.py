"""DR17 products: the real DR17 apStar and apVisit files (tests/data/apogee-dr17), DR17-shaped aspcapStar and
allStar stand-ins written here, the apVisit rest-frame resampling, membership tables, and the
refusal of products and releases the importer does not know."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from twinviz.cli import main as cli
from twinviz.spectra.apogee.bits import DEFAULT_PIXMASK_BITS, PIXMASK, mask_value
from twinviz.spectra.apogee.fits import read_apogee_file
from twinviz.spectra.apogee.standins import write_allstar, write_aspcapstar_dr17
from twinviz.spectra.apogee.visit import C_KM_S, resample_visit
from twinviz.spectra.dataset import load_spectra
from twinviz.spectra.grid import DLOG10_LAMBDA, LOG10_LAMBDA0, apstar_wavelength, get_grid

SHARED = Path(__file__).resolve().parents[1] / "data" / "apogee-dr17"
APSTAR = SHARED / "apStar-dr17-2M19485057+5005279.fits"
APVISIT = SHARED / "apVisit-r13-9518-57729-104.fits"
REAL_ID, VISIT_ID = "2M19485057+5005279", "2M00242666+5341178"
DR12 = Path(__file__).resolve().parents[1] / "data" / "apogee"
needs_real_dr17 = pytest.mark.skipif(not APSTAR.exists() or not APVISIT.exists(),
                                  reason=f"the real DR17 files are not at {SHARED}")


def run(*argv):
    return cli(["import", "apogee", *map(str, argv), "--no-progress"])


def report_of(out):
    return json.loads(Path(str(out) + ".import.json").read_text())


def one_row_csv(tmp_path, *ids, teff=4800.0, logg=2.5):
    cat = tmp_path / "labels.csv"
    cat.write_text("APOGEE_ID,TEFF,LOGG\n" + "".join(f"{i},{teff},{logg}\n" for i in ids))
    return cat


# ------------------------------------------------------------------ the real DR17 apStar file


@needs_real_dr17
def test_real_dr17_apstar_reads_the_combined_row_and_its_64_bit_mask():
    spec = read_apogee_file(APSTAR)
    with fits.open(APSTAR) as hdul:
        assert len(hdul) == 11 and hdul[3].data.dtype.kind == "i" and hdul[3].data.dtype.itemsize == 8
        np.testing.assert_array_equal(spec.flux, hdul[1].data[0].astype(np.float32))
        np.testing.assert_array_equal(spec.flux_err, hdul[2].data[0].astype(np.float32))
        np.testing.assert_array_equal(spec.pixmask, hdul[3].data[0])
    assert (spec.kind, spec.apogee_id, spec.release, spec.source) == ("apStar", REAL_ID, "dr17", "apogee-dr17")
    assert spec.pixmask.dtype == np.int64 and spec.snr == pytest.approx(137.49, abs=0.01)
    for engine_path in (APSTAR, APVISIT):  # numpy reader == astropy reader on both real files
        fast, slow = read_apogee_file(engine_path), read_apogee_file(engine_path, engine="astropy")
        for name in ("flux", "flux_err", "pixmask"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert (fast.apogee_id, fast.source, fast.snr) == (slow.apogee_id, slow.source, slow.snr)


@needs_real_dr17
def test_real_dr17_apstar_imports_normalised_with_named_dr17_mask_bits(tmp_path):
    out = tmp_path / "real.nc"
    assert run(APSTAR, "--out", out, "--catalogue", one_row_csv(tmp_path, REAL_ID, teff=5226, logg=4.5)) == 0
    ds = load_spectra(out)
    assert list(ds.star.values) == [REAL_ID] and ds.attrs["source"] == "apogee-dr17"
    pix = get_grid().pixels
    raw_mask = fits.getdata(APSTAR, 3)[0][pix]
    raw_flux = fits.getdata(APSTAR, 1)[0][pix]
    mask = ds.mask.values[0]
    default = mask_value(DEFAULT_PIXMASK_BITS, PIXMASK, "test")
    assert mask[(raw_mask & default) != 0].all() and mask[raw_flux <= 0].all()
    good = ds.flux.values[0][~mask]
    assert mask.mean() < 0.2 and 0.9 < np.median(good) < 1.05  # most pixels usable; continuum-normalised
    # a DR17 bit by name: SIG_TELLURIC (13) is not masked by default; asking for it masks those pixels
    tell = (raw_mask >> PIXMASK["SIG_TELLURIC"] & 1) == 1
    assert tell.sum() > 100 and not mask[tell].all()
    out2 = tmp_path / "tell.nc"
    assert run(APSTAR, "--out", out2, "--catalogue", one_row_csv(tmp_path, REAL_ID, teff=5226, logg=4.5),
               "--pixmask-bits", "SIG_TELLURIC") == 0
    assert load_spectra(out2).mask.values[0][tell].all()


def test_unknown_bit_names_are_refused(tmp_path, capsys):
    assert run(DR12, "--out", tmp_path / "x.nc", "--pixmask-bits", "BADPIX,SHINY") == 2
    err = capsys.readouterr().err
    assert "--pixmask-bits: SHINY: unknown bit name" in err and "FERRE_MASK" in err
    assert run(DR12, "--out", tmp_path / "x.nc", "--aspcapflag-bad", "STAR_BAD,WOBBLY") == 2
    assert "--aspcapflag-bad: WOBBLY: unknown bit name" in capsys.readouterr().err


# --------------------------------------------------------------- releases and products refused


@needs_real_dr17
def test_unknown_release_and_a_name_that_contradicts_the_layout_are_refused(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(APSTAR, folder / f"apStar-dr19-{REAL_ID}.fits")
    shutil.copy(DR12 / "apStar-r6-2M05392474+4038437.fits", folder / "apStar-dr17-2M05392474+4038437.fits")
    shutil.copy(APSTAR, folder / f"apStar-dr17-{REAL_ID}.fits")
    out = tmp_path / "o.nc"
    cat = one_row_csv(tmp_path, REAL_ID, "2M05392474+4038437")
    assert run(folder, "--out", out, "--catalogue", cat) == 0
    reasons = {Path(r["file"]).name: r["reason"] for r in report_of(out)["skipped_files"]}
    assert "dr19 (apStar, the DR17 layout) is not a release this importer knows" in reasons[
        f"apStar-dr19-{REAL_ID}.fits"]
    mismatch = reasons["apStar-dr17-2M05392474+4038437.fits"]
    assert "the name says dr17 but the file has the DR12–DR16 layout (an int16 PIXMASK" in mismatch
    assert all("Fix:" in r for r in reasons.values())
    assert list(load_spectra(out).star.values) == [REAL_ID]
    assert run(folder, "--out", tmp_path / "s.nc", "--catalogue", cat, "--strict") == 2  # a message, no traceback
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------ DR17 aspcapStar stand-ins


def test_dr17_aspcapstar_on_7514_pixels_lands_on_every_grid_exactly(tmp_path):
    rng = np.random.default_rng(3)
    norm = 1 - 0.3 * rng.random(8575) * (rng.random(8575) < 0.2)
    folder = tmp_path / "in"
    folder.mkdir()
    path = write_aspcapstar_dr17(folder / "aspcapStar-dr17-2M01234567+0123456.fits", "2M01234567+0123456", norm,
                                 200.0, rng, 4700.0, 2.4)
    stored = fits.getdata(path, 1)
    assert stored.shape == (7514,)
    dr17 = get_grid("apogee-aspcap-dr17")
    for grid in ("apogee-aspcap-dr17", "apogee-aspcap-dr12", "apogee-apstar"):
        out = tmp_path / f"{grid}.nc"
        assert run(folder, "--out", out, "--grid", grid) == 0
        ds = load_spectra(out)
        target = get_grid(grid)
        full = np.zeros(8575, np.float32)
        full[dr17.pixels] = stored
        mask = ds.mask.values[0]
        np.testing.assert_array_equal(ds.flux.values[0][~mask], full[target.pixels][~mask])
        outside = ~np.isin(target.pixels, dr17.pixels)
        assert mask[outside].all() and not mask[~outside].any()  # S/N 200: every stored pixel is good
        assert ds.teff.item() == pytest.approx(4700) and ds.attrs["source"] == "synthetic-standin:apogee-dr17"


# ------------------------------------------------------------------------- apVisit resampling


def _analytic(logw):
    """A rest-frame test spectrum: a sloped continuum with three Gaussian lines (in log λ)."""
    lam = 10 ** logw
    cont = 800 * (lam / 16000) ** -2
    lines = sum(d * np.exp(-0.5 * ((lam - c) / 0.4) ** 2) for c, d in ((15300, 0.5), (16000, 0.4), (16700, 0.3)))
    return cont * (1 - lines)


def _visit_wavelengths():
    """Three chips × 4096 observed wavelengths, decreasing along each chip as in apVisit files."""
    chips = ((16955, 16470), (16436, 15855), (15810, 15140))
    x = np.linspace(0, 1, 4096)
    return np.stack([a + (b - a) * x - 3 * x * (1 - x) for a, b in chips])


def test_apvisit_resampling_shifts_to_rest_conserves_flux_and_propagates_errors_and_masks():
    vrel = 80.0
    wave = _visit_wavelengths()
    rest = np.log10(wave) - np.log10(1 + vrel / C_KM_S)
    flux = _analytic(rest)
    err = np.full(wave.shape, 5.0)
    mask = np.zeros(wave.shape, np.int16)
    f, e, m = resample_visit(wave, flux, err, mask, vrel)
    covered = f > 0
    assert 7500 < covered.sum() < 8575
    truth = _analytic(LOG10_LAMBDA0 + DLOG10_LAMBDA * np.arange(8575))
    rel = np.abs(f[covered] / truth[covered] - 1)
    assert np.median(rel) < 2e-4 and rel.max() < 0.03  # max: line cores, averaged over a pixel
    # the line at 16000 Å lies at its rest pixel (not shifted by 80 km/s ≈ 25 px)
    i0 = int(round((np.log10(16000) - LOG10_LAMBDA0) / DLOG10_LAMBDA))
    window = slice(i0 - 40, i0 + 41)
    assert abs(int(np.argmin(f[window] / truth[window].max())) - 40) <= 1
    # errors: the propagated σ matches the scatter of 300 noisy resamplings within 6 %
    rng = np.random.default_rng(0)
    draws = np.stack([resample_visit(wave, flux + rng.normal(0, 5.0, wave.shape), err, mask, vrel)[0]
                      for _ in range(300)])
    ratio = draws[:, covered].std(axis=0) / e[covered]
    assert abs(np.median(ratio) - 1) < 0.06 and 0.5 < np.median(e[covered]) / 5.0 < 1.0
    # masks: one flagged visit pixel flags exactly the apStar pixels it overlaps
    mask[1, 2000] = 1 << PIXMASK["CRPIX"]
    _, _, m2 = resample_visit(wave, flux, err, mask, vrel)
    hit = np.flatnonzero(m2)
    assert 1 <= hit.size <= 2 and np.all(np.diff(hit) == 1)
    lam = np.log10(wave[1, 1999:2002]) - np.log10(1 + vrel / C_KM_S)
    lo, hi = 0.5 * (lam[0] + lam[1]), 0.5 * (lam[1] + lam[2])
    centres = LOG10_LAMBDA0 + DLOG10_LAMBDA * hit
    assert np.all((centres + DLOG10_LAMBDA / 2 > min(lo, hi)) & (centres - DLOG10_LAMBDA / 2 < max(lo, hi)))
    # an unusable visit pixel (NaN) empties the apStar pixels it touches
    flux[1, 2000] = np.nan
    f3, e3, _ = resample_visit(wave, flux, err, np.zeros_like(mask), vrel)
    assert np.array_equal(np.flatnonzero((f3 == 0) & covered), hit) and np.all(e3[hit] == 0)


@needs_real_dr17
def test_real_apvisit_is_moved_to_the_rest_frame_and_imported(tmp_path):
    spec = read_apogee_file(APVISIT)
    with fits.open(APVISIT) as hdul:
        vrel = float(hdul[11].data["VREL"][0])
        unshifted, _, _ = resample_visit(hdul[4].data, hdul[1].data, hdul[2].data, hdul[3].data, 0.0)
    assert spec.kind == "apVisit" and spec.apogee_id == VISIT_ID and vrel == pytest.approx(-67.472, abs=1e-3)
    # the shift in apStar pixels: |v|/c/ln10/6e-6 = 16.3; features move redward for a negative VREL
    def lines_only(f):  # the middle chip, divided by its 101-pixel running mean: lines, no continuum
        seg = f[3700:6000].astype(np.float64)
        return seg / np.convolve(seg, np.ones(101) / 101, mode="same") - 1

    a, b = lines_only(spec.flux), lines_only(unshifted)
    assert (spec.flux[3700:6000] > 0).all() and (unshifted[3700:6000] > 0).all()
    lags = np.arange(-30, 31)
    corr = [np.sum(a[60:-60] * np.roll(b, lag)[60:-60]) for lag in lags]
    assert lags[int(np.argmax(corr))] == round(-vrel / C_KM_S / np.log(10) / DLOG10_LAMBDA) == 16
    out = tmp_path / "visit.nc"
    assert run(APVISIT, "--out", out, "--catalogue", one_row_csv(tmp_path, VISIT_ID)) == 0
    ds = load_spectra(out)
    row = report_of(out)["stars"][0]
    assert row["kind"] == "apVisit" and "VREL=-67.472 km/s" in row["note"] and ds.attrs["source"] == "apogee-r13"
    mask = ds.mask.values[0]
    assert mask.mean() < 0.25 and 0.9 < np.median(ds.flux.values[0][~mask]) < 1.05
    assert np.all(np.isfinite(ds.flux_err.values[0][~mask])) and (apstar_wavelength()[get_grid().pixels] > 0).all()


# ------------------------------------------------------------------- the DR17 allStar catalogue


def _dr17_folder(tmp_path, n=6):
    rng = np.random.default_rng(5)
    folder = tmp_path / "in"
    folder.mkdir()
    ids = [f"2M0000000{i}+000000{i}" for i in range(n)]
    for sid in ids:
        norm = 1 - 0.3 * rng.random(8575) * (rng.random(8575) < 0.2)
        write_aspcapstar_dr17(folder / f"aspcapStar-dr17-{sid}.fits", sid, norm, 200.0, rng, 4500.0, 2.0)
    return folder, ids


def test_allstar_dr17_quality_cuts_duplicates_errors_and_flagged_abundances(tmp_path):
    folder, ids = _dr17_folder(tmp_path)
    gridedge = 1 << 0  # ELEMFLAG GRIDEDGE_BAD
    rows = [
        {"APOGEE_ID": ids[0], "TEFF": 4000.0, "LOGG": 1.0, "EXTRATARG": 1 << 4},  # non-primary duplicate, first
        {"APOGEE_ID": ids[0], "TEFF": 4510.0, "TEFF_ERR": 35.0, "LOGG": 2.1, "LOGG_ERR": 0.06, "FE_H": -0.2,
         "MG_FE": 0.1, "SI_FE": 0.2, "SI_FE_FLAG": gridedge},
        {"APOGEE_ID": ids[1], "TEFF": 4600.0, "LOGG": 2.2, "ASPCAPFLAG": 1 << 23},  # STAR_BAD
        {"APOGEE_ID": ids[2], "TEFF": 4700.0, "LOGG": 2.3, "ASPCAPFLAG": 1 << 40},  # PROBLEM_TARGET: kept by default
        {"APOGEE_ID": ids[3], "TEFF": 4800.0, "LOGG": 2.4, "STARFLAG": 1 << 0},  # BAD_PIXELS
        {"APOGEE_ID": ids[4], "TEFF": 4900.0, "LOGG": 2.5, "ASPCAPFLAG": 1 << 36},  # FERRE_FAIL (a 64-bit bit)
        {"APOGEE_ID": ids[5], "TEFF": float("nan"), "LOGG": 2.5},
    ]
    cat = write_allstar(tmp_path / "allStar-dr17.fits", rows, ("MG", "SI"))
    out = tmp_path / "c.nc"
    assert run(folder, "--out", out, "--catalogue", cat) == 0
    ds = load_spectra(out)
    assert sorted(ds.star.values) == sorted([ids[0], ids[2]])
    s = ds.sel(star=ids[0])
    assert float(s.teff) == pytest.approx(4510) and float(s.teff_err) == pytest.approx(35)
    assert float(s.logg_err) == pytest.approx(0.06) and float(s.fe_h) == pytest.approx(-0.2)
    assert float(s.x_fe.sel(element="Mg")) == pytest.approx(0.1) and np.isnan(float(s.x_fe.sel(element="Si")))
    assert np.isnan(float(ds.sel(star=ids[2]).teff_err))
    rep = report_of(out)
    reasons = {r["apogee_id"]: r["reason"] for r in rep["skipped_stars"]}
    assert "ASPCAPFLAG:STAR_BAD" in reasons[ids[1]] and "STARFLAG:BAD_PIXELS" in reasons[ids[3]]
    assert "ASPCAPFLAG:FERRE_FAIL" in reasons[ids[4]] and "missing" in reasons[ids[5]]
    cuts = rep["catalogue_cuts"]
    assert cuts["extratarg_duplicate_rows"] == 1 and cuts["abundances_flagged"] == {"Si": 1}
    # the same catalogue as CSV gives the same stars; a named bit tightens the cut
    csv = tmp_path / "allStar.csv"
    keys = ["APOGEE_ID", "TEFF", "TEFF_ERR", "LOGG", "LOGG_ERR", "FE_H", "MG_FE", "SI_FE", "SI_FE_FLAG",
            "ASPCAPFLAG", "STARFLAG", "EXTRATARG"]
    csv.write_text(",".join(keys) + "\n" + "".join(",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows))
    out2 = tmp_path / "csv.nc"
    assert run(folder, "--out", out2, "--catalogue", csv, "--aspcapflag-bad", "STAR_BAD,FERRE_FAIL,PROBLEM_TARGET") == 0
    ds2 = load_spectra(out2)
    assert list(ds2.star.values) == [ids[0]] and float(ds2.teff_err.item()) == pytest.approx(35)
    assert "ASPCAPFLAG:PROBLEM_TARGET" in {r["apogee_id"]: r["reason"] for r in report_of(out2)["skipped_stars"]}[ids[2]]


# ----------------------------------------------------------------------- cluster memberships


def test_membership_table_with_probabilities_and_a_cut(tmp_path, capsys):
    folder, ids = _dr17_folder(tmp_path)
    table = tmp_path / "members.csv"
    table.write_text("APOGEE_ID,CLUSTER,membership\n"
                     f"{ids[0]},NGC 2682,0.95\n{ids[1]},NGC 2682,0.80\n{ids[2]},NGC 2682,0.30\n"
                     f"{ids[3]},NGC 6791,0.99\n{ids[4]},NGC 6791,0.60\n{ids[2]},NGC 6791,0.20\n"
                     "2M99999999+9999999,NGC 6791,0.99\n")
    out = tmp_path / "m.nc"
    assert run(folder, "--out", out, "--groups", table, "--min-membership", "0.5") == 0
    printed = capsys.readouterr().out
    ds = load_spectra(out)
    assert json.loads(ds.attrs["group_names"]) == {"NGC 2682": 0, "NGC 6791": 1}
    assert [int(ds.group.sel(star=i)) for i in ids] == [0, 0, -1, 1, 1, -1]
    members = report_of(out)["members"]
    assert members == {"NGC 2682": {"listed": 3, "below_min_membership": 1, "imported": 2},
                       "NGC 6791": {"listed": 4, "below_min_membership": 1, "imported": 2}}
    assert "NGC 2682 2 imported of 3 listed, 1 below the cut" in printed
    assert "| NGC 6791 | 4 | 1 | 2 |" in Path(str(out) + ".import.md").read_text()
    # without a cut, ids[2] is listed in two clusters: refused with the fix
    assert run(folder, "--out", tmp_path / "n.nc", "--groups", table) == 2
    err = capsys.readouterr().err
    assert f"lists {ids[2]} in two groups (NGC 2682, NGC 6791)" in err and "--min-membership" in err
    bad = tmp_path / "bad.csv"
    bad.write_text(f"APOGEE_ID,group,membership\n{ids[0]},A,95\n")
    assert run(folder, "--out", tmp_path / "b.nc", "--groups", bad) == 2
    assert "row 2: '95' is not a probability between 0 and 1" in capsys.readouterr().err
    plain = tmp_path / "plain.csv"
    plain.write_text(f"APOGEE_ID,group\n{ids[0]},A\n")
    assert run(folder, "--out", tmp_path / "p.nc", "--groups", plain, "--min-membership", "0.5") == 2
    assert "needs a probability column" in capsys.readouterr().err


def test_workers_give_the_same_dataset_as_one_process(tmp_path):
    from twinviz.spectra.apogee.standins import make_dr17_folder
    from twinviz.spectra.dataset import open_spectra

    made = make_dr17_folder(tmp_path / "s", n_clusters=2, sizes=(3, 3), field_fraction=0.25, aspcap_every=2)
    (made.folder / "notes.fits").write_text("not FITS\n")  # a bad file keeps its place in the report
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.zarr"
        assert run(made.folder, "--out", out, "--catalogue", made.catalogue, "--groups", made.members,
                   "--min-membership", "0.5", "--chunk-stars", "3", "--workers", workers) == 0
        outs.append(out)
    a, b = open_spectra(outs[0]), open_spectra(outs[1])
    assert list(a.star.values) == list(b.star.values) and a.sizes["star"] == len(made.stars)
    for name in ("flux", "flux_err", "mask", "teff", "logg", "group", "teff_err"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    ra, rb = report_of(outs[0]), report_of(outs[1])
    for key in ("stars", "skipped_files", "skipped_stars", "members", "sources"):
        assert ra[key] == rb[key], key
    assert len(ra["skipped_files"]) == 1 and "cannot be read as FITS" in ra["skipped_files"][0]["reason"]


def test_grid_keywords_may_sit_in_the_primary_header_only(tmp_path):
    src = DR12 / "aspcapStar-r6-l30e.2-2M05392474+4038437.fits"
    ok, shifted = tmp_path / "ok" / src.name, tmp_path / "bad" / src.name
    for path, crval in ((ok, 4.179), (shifted, 4.18)):
        path.parent.mkdir()
        with fits.open(src) as hdul:
            for i in (1, 2):
                del hdul[i].header["CRVAL1"], hdul[i].header["CDELT1"]
            hdul[0].header["CRVAL1"], hdul[0].header["CDELT1"] = crval, 6e-6
            hdul.writeto(path, output_verify="silentfix")
    spec = read_apogee_file(ok)
    np.testing.assert_array_equal(spec.flux, fits.getdata(src, 1).astype(np.float32))
    with pytest.raises(Exception, match="HDU1 CRVAL1/CDELT1/NAXIS1: spectrum is on another wavelength grid "
                                        r"\(CRVAL1=4.18"):
        read_apogee_file(shifted)


@needs_real_dr17
def test_a_damaged_apvisit_is_refused_with_the_product_to_use(tmp_path):
    bad_table, no_rv = tmp_path / "apVisit-r13-1-2-3.fits", tmp_path / "apVisit-r13-1-2-4.fits"
    with fits.open(APVISIT) as hdul:
        hdul[11] = fits.ImageHDU(np.zeros(3))
        hdul.writeto(bad_table, output_verify="silentfix")
    with fits.open(APVISIT) as hdul:
        hdul[11].data["VREL"][0] = np.nan
        hdul[0].header["VRAD"] = "unknown"
        hdul.writeto(no_rv, output_verify="silentfix")
    flat = tmp_path / "apVisit-r13-1-2-5.fits"
    with fits.open(APVISIT) as hdul:
        hdul[4].data[1, 100] = hdul[4].data[1, 99]
        hdul.writeto(flat, output_verify="silentfix")
    with pytest.raises(Exception, match="HDU11: is not the visit table"):
        read_apogee_file(bad_table)
    with pytest.raises(Exception, match=r"HDU4 \(wavelength\): has non-finite, non-positive or non-monotonic"):
        read_apogee_file(flat)
    with pytest.raises(Exception, match="HDU11 VREL: has no usable radial velocity .* Fix: import this star's "
                                        "apStar file"):
        read_apogee_file(no_rv)
