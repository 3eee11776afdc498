"""`twinviz import apogee`: values against a direct astropy read of real APOGEE files, the labels
policy, masks, catalogues and groups, both output formats, and every kind of bad input."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits  # the optional extra twinviz[fits]; the test extra installs it

from twinviz.cli import main as cli
from twinviz.spectra.apogee.continuum import normalise
from twinviz.spectra.apogee.importer import DEFAULT_PIXMASK_BITS, MASKED_FLUX_ERR, PIXMASK_BITS
from twinviz.spectra.dataset import load_spectra, open_spectra, validate
from twinviz.spectra.grid import get_grid

DATA = Path(__file__).resolve().parents[1] / "data" / "apogee"
ROOT = Path(__file__).resolve().parents[2]
STAR = "2M05392474+4038437"  # present as aspcapStar and apStar
NO_PARAM = {"2M00452143+1634446", "2M12241699+2453335"}  # PARAM = -9999 (M dwarfs)


def aspcap_files():
    return sorted(DATA.glob("aspcapStar-*.fits"))


def aspcap_path(sid):
    return next(p for p in aspcap_files() if sid in p.name)


def table_row(path):
    return fits.getdata(path, 4)[0]


def run(*argv):
    return cli(["import", "apogee", *map(str, argv), "--no-progress"])


def report_of(out):
    return json.loads(Path(str(out) + ".import.json").read_text())


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "stars.nc"
    assert run(*aspcap_files(), "--out", out) == 0
    return out, load_spectra(out)


def test_flux_and_errors_equal_hdu1_hdu2_at_the_grid_pixels(imported):
    _, ds = imported
    pix = get_grid("apogee-aspcap-dr12").pixels
    for sid in ds.star.values:
        flux = fits.getdata(aspcap_path(sid), 1)[pix]
        err = fits.getdata(aspcap_path(sid), 2)[pix]
        mask = ds.mask.sel(star=sid).values
        good = ~mask
        np.testing.assert_array_equal(ds.flux.sel(star=sid).values[good], flux[good])
        np.testing.assert_array_equal(ds.flux_err.sel(star=sid).values[good], err[good])
        # mask rules: zero flux and errors above the cap are masked, and carry finite placeholders
        assert mask[flux == 0].all() and (flux == 0).any()
        assert mask[err > 0.1].all()
        assert not mask[(flux > 0) & (err > 0) & (err <= 0.1)].any()
        assert np.all(ds.flux.sel(star=sid).values[mask] == 1.0)
        assert np.all(ds.flux_err.sel(star=sid).values[mask] == MASKED_FLUX_ERR)


def test_labels_equal_param_and_minus_9999_stars_are_skipped_with_reason(imported):
    out, ds = imported
    assert set(ds.star.values) == {p.name.split("-", 3)[3][:-5] for p in aspcap_files()} - NO_PARAM
    for sid in ds.star.values:
        row = table_row(aspcap_path(sid))
        assert ds.teff.sel(star=sid).item() == pytest.approx(row["PARAM"][0], rel=1e-6)
        assert ds.logg.sel(star=sid).item() == pytest.approx(row["PARAM"][1], rel=1e-6)
        assert ds.snr.sel(star=sid).item() == pytest.approx(row["SNR"], rel=1e-6)
        x_h = row["X_H"]
        assert ds.fe_h.sel(star=sid).item() == pytest.approx(x_h[17], abs=1e-6)  # Fe: X_M ≈ 0 there
        assert ds.x_fe.sel(star=sid, element="Mg").item() == pytest.approx(x_h[5] - x_h[17], abs=1e-5)
    report = report_of(out)
    skipped = {s["apogee_id"]: s["reason"] for s in report["skipped_stars"]}
    assert set(skipped) == NO_PARAM
    assert all("-9999" in r and "--labels fparam" in r for r in skipped.values())
    assert report["imported"] == ds.sizes["star"] and ds.attrs["label_source"].startswith("aspcapStar PARAM")
    assert ds.attrs["labels_fparam"] == 0 and "aspcapStar" in ds.attrs["generator"]


def test_fparam_opt_in_imports_the_m_dwarfs_and_records_it(tmp_path):
    out = tmp_path / "f.nc"
    assert run(DATA, "--out", out, "--labels", "fparam") == 0
    ds = load_spectra(out)
    assert NO_PARAM <= set(ds.star.values)
    for sid in NO_PARAM:
        row = table_row(aspcap_path(sid))
        assert ds.teff.sel(star=sid).item() == pytest.approx(row["FPARAM"][0], rel=1e-6)
        assert ds.logg.sel(star=sid).item() == pytest.approx(row["FPARAM"][1], rel=1e-6)
    assert ds.attrs["labels_fparam"] == 1 and "FPARAM" in ds.attrs["label_source"]


def test_catalogue_csv_overrides_and_missing_star_is_reported(tmp_path):
    cat = tmp_path / "labels.csv"
    cat.write_text("APOGEE_ID,TEFF,LOGG,FE_H,MG_FE\n"
                   f"{STAR},3100,4.8,-0.2,0.05\n2M13564148+4342587,3200,4.7,-0.1,\n"
                   "2M00452143+1634446,3000,5.0,,\n")
    out = tmp_path / "c.nc"
    assert run(*aspcap_files(), "--out", out, "--catalogue", cat) == 0
    ds = load_spectra(out)
    assert set(ds.star.values) == {STAR, "2M13564148+4342587", "2M00452143+1634446"}
    assert ds.teff.sel(star=STAR).item() == 3100 and ds.logg.sel(star=STAR).item() == pytest.approx(4.8)
    assert ds.fe_h.sel(star=STAR).item() == pytest.approx(-0.2)
    assert list(ds.element.values) == ["Mg"] and ds.x_fe.sel(star=STAR, element="Mg").item() == pytest.approx(0.05)
    assert np.isnan(ds.x_fe.sel(star="2M13564148+4342587", element="Mg").item())
    reasons = {s["apogee_id"]: s["reason"] for s in report_of(out)["skipped_stars"]}
    assert set(reasons) == {"2M12241699+2453335", "2M17334253-1654573", "2M19535443+4424541"}
    assert all("not in the catalogue" in r and str(cat) in r for r in reasons.values())


def test_allstar_fits_catalogue(tmp_path):
    cat = tmp_path / "allStar.fits"
    cols = [fits.Column("APOGEE_ID", "18A", array=[STAR, "2M13564148+4342587"]),
            fits.Column("TEFF", "E", array=[3300.0, -9999.0]), fits.Column("LOGG", "E", array=[4.9, -9999.0]),
            fits.Column("FE_H", "E", array=[0.1, 0.0]), fits.Column("ASPCAPFLAG", "J", array=[0, 0])]
    fits.BinTableHDU.from_columns(cols).writeto(cat)
    out = tmp_path / "a.nc"
    assert run(aspcap_path(STAR), aspcap_path("2M13564148"), "--out", out, "--catalogue", cat) == 0
    ds = load_spectra(out)
    assert list(ds.star.values) == [STAR] and ds.teff.item() == pytest.approx(3300)
    assert "−9999" in report_of(out)["skipped_stars"][0]["reason"]


def test_groups_csv_fills_group_and_stores_the_mapping(tmp_path):
    groups = tmp_path / "members.csv"
    groups.write_text(f"APOGEE_ID,group\n{STAR},M67\n2M13564148+4342587,M67\n2M17334253-1654573,Pleiades\n")
    out = tmp_path / "g.nc"
    assert run(*aspcap_files(), "--out", out, "--groups", groups) == 0
    ds = load_spectra(out)
    mapping = json.loads(ds.attrs["group_names"])
    assert mapping == {"M67": 0, "Pleiades": 1}
    assert ds.group.sel(star=STAR).item() == 0 == ds.group.sel(star="2M13564148+4342587").item()
    assert ds.group.sel(star="2M17334253-1654573").item() == 1
    assert ds.group.sel(star="2M19535443+4424541").item() == -1


def test_zarr_output_streams_in_chunks_and_matches_netcdf(tmp_path, imported):
    out = tmp_path / "stars.zarr"
    assert run(*aspcap_files(), "--out", out, "--chunk-stars", "3") == 0
    ds = open_spectra(out, chunks={"star": 3})
    validate(ds)
    _, ref = imported
    assert list(ds.star.values) == list(ref.star.values)
    np.testing.assert_array_equal(ds.flux.values, ref.flux.values)
    np.testing.assert_array_equal(ds.mask.values, ref.mask.values)
    assert ds.attrs["grid_id"] == "apogee-aspcap-dr12" and ds.flux.data.chunks[0][0] == 3


def test_apstar_is_normalised_close_to_aspcap_and_pixmask_bits_are_masked(tmp_path):
    out = tmp_path / "ap.nc"
    apstar = DATA / f"apStar-r6-{STAR}.fits"
    assert run(apstar, "--out", out, "--catalogue", _one_row_csv(tmp_path)) == 0
    ds = load_spectra(out)
    pix = get_grid().pixels
    pixmask = fits.getdata(apstar, 3)[0].astype(np.int32)[pix]
    bits = sum(1 << PIXMASK_BITS[b] for b in DEFAULT_PIXMASK_BITS)
    mask = ds.mask.values[0]
    assert mask[(pixmask & bits) != 0].all()
    # closeness to ASPCAP's normalisation of the same star, over pixels good in both
    asp = fits.getdata(aspcap_path(STAR), 1)[pix]
    asp_err = fits.getdata(aspcap_path(STAR), 2)[pix]
    both = ~mask & (asp > 0) & (asp_err <= 0.1)
    diff = ds.flux.values[0][both] - asp[both]
    assert both.sum() > 5000
    # measured (docs/real-data.md): median |Δ| 0.0097, p95 |Δ| 0.027
    assert np.median(np.abs(diff)) < 0.015 and np.percentile(np.abs(diff), 95) < 0.04


def _one_row_csv(tmp_path):
    cat = tmp_path / "one.csv"
    cat.write_text(f"APOGEE_ID,TEFF,LOGG\n{STAR},3000,4.9\n")
    return cat


def test_continuum_recovers_a_known_polynomial_continuum():
    rng = np.random.default_rng(1)
    x = np.arange(8575)
    cont = 1000 + 0.05 * x - 4e-6 * x**2
    lines = 1 - 0.4 * (rng.random(8575) < 0.2) * rng.random(8575)
    flux = cont * lines * (1 + 0.003 * rng.standard_normal(8575))
    norm, _, none = normalise(flux, cont * 0.003, np.zeros(8575, bool))
    assert not none.any()
    cont_pixels = lines == 1
    assert abs(np.median(norm[cont_pixels]) - 1) < 0.01


# ----------------------------------------------------------------- bad inputs


def _copy_good(tmp_path, n=2):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in [aspcap_path(STAR), aspcap_path("2M13564148")][:n]:
        shutil.copy(p, folder / p.name)
    return folder


def _bad_file_case(tmp_path, make_bad, capsys):
    folder = _copy_good(tmp_path)
    bad = make_bad(folder)
    out = tmp_path / "o.nc"
    assert run(folder, "--out", out) == 0
    assert load_spectra(out).sizes["star"] == 2  # the rest of the import is unaffected
    row = next(r for r in report_of(out)["skipped_files"] if r["file"] == str(bad))
    err = capsys.readouterr().err
    assert str(bad) in err and "Fix:" in row["reason"]
    strict = tmp_path / "strict.nc"
    assert run(folder, "--out", strict, "--strict") == 2  # strict: abort, nothing written
    assert not strict.exists() and not Path(str(strict) + ".import.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    return row["reason"]


def test_non_apogee_fits_file(tmp_path, capsys):
    def make(folder):
        path = folder / "image.fits"
        fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4), np.float32))]).writeto(path)
        return path
    reason = _bad_file_case(tmp_path, make, capsys)
    assert "is not an APOGEE product this importer knows (found 1 HDUs" in reason
    assert "expected one of: aspcapStar" in reason and "apVisit" in reason


def _truncated_copy(folder):
    src = aspcap_path("2M17334253")
    (folder / src.name).write_bytes(src.read_bytes()[: 60000])
    return folder / src.name


def _text_named_fits(folder):
    (folder / "notes.fits").write_text("this is not FITS\n")
    return folder / "notes.fits"


@pytest.mark.parametrize("make, expected", [(_truncated_copy, "is truncated"),
                                            (_text_named_fits, "cannot be read as FITS")])
def test_truncated_or_text_file_named_fits(tmp_path, capsys, make, expected):
    assert expected in _bad_file_case(tmp_path, make, capsys)


def test_spectrum_on_another_grid(tmp_path, capsys):
    def make(folder):
        src = aspcap_path("2M19535443")
        path = folder / src.name
        with fits.open(src) as hdul:
            for i in (1, 2, 3):
                hdul[i].data = hdul[i].data[:8000]
                hdul[i].header["CRVAL1"] = 4.18
            hdul.writeto(path, output_verify="silentfix")
        return path
    reason = _bad_file_case(tmp_path, make, capsys)
    assert "another wavelength grid" in reason and "CRVAL1=4.18" in reason and "NAXIS1=8000" in reason


def test_same_apogee_id_twice_keeps_the_first(tmp_path):
    folder = _copy_good(tmp_path, n=1)
    shutil.copy(aspcap_path(STAR), folder / "copy-of-star.fits")
    out = tmp_path / "d.nc"
    assert run(folder, "--out", out) == 0
    assert list(load_spectra(out).star.values) == [STAR]
    reason = report_of(out)["skipped_stars"][0]["reason"]
    assert "duplicate APOGEE_ID" in reason and aspcap_path(STAR).name in reason


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "e.nc"
    assert run(empty, "--out", out) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "no *.fits files" in err and "Fix:" in err
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "x.nc"
    out.write_text("keep me")
    assert run(aspcap_path(STAR), "--out", out) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert run(aspcap_path(STAR), "--out", out, "--overwrite") == 0
    assert load_spectra(out).sizes["star"] == 1


def test_unknown_grid_is_refused(tmp_path, capsys):
    assert run(aspcap_path(STAR), "--out", tmp_path / "g.nc", "--grid", "lamost") == 2
    assert "--grid: lamost: is not an APOGEE grid" in capsys.readouterr().err


def test_dr17_and_apstar_grids_select_the_right_pixels(tmp_path):
    for name in ("apogee-aspcap-dr17", "apogee-apstar"):
        out = tmp_path / f"{name}.nc"
        assert run(aspcap_path(STAR), "--out", out, "--grid", name) == 0
        ds = load_spectra(out)
        grid = get_grid(name)
        flux = fits.getdata(aspcap_path(STAR), 1)[grid.pixels]
        good = ~ds.mask.values[0]
        assert ds.sizes["wavelength"] == grid.n_pixels
        np.testing.assert_array_equal(ds.flux.values[0][good], flux[good])


def test_child_process_and_missing_astropy_hint(tmp_path):
    out = tmp_path / "p.zarr"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "twinviz", "import", "apogee", str(DATA), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported 4 stars from 7 files" in done.stdout and "skipped:" in done.stderr
    assert load_spectra(out).sizes["star"] == 4
    # astropy hidden: the command names the extra to install
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "astropy").mkdir()
    (blocker / "astropy" / "__init__.py").write_text("raise ImportError('astropy hidden for the test')\n")
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(ROOT)])
    done = subprocess.run([sys.executable, "-m", "twinviz", "import", "apogee", str(DATA), "--out",
                           str(tmp_path / "n.nc")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 2 and 'pip install "twinviz[fits]"' in done.stderr


def test_numpy_fits_reader_equals_astropy_reader():
    from dataclasses import fields

    from twinviz.spectra.apogee.fits import read_apogee_file

    for path in sorted(DATA.glob("*.fits")):
        fast, slow = read_apogee_file(path), read_apogee_file(path, engine="astropy")
        for f in fields(fast):
            a, b = getattr(fast, f.name), getattr(slow, f.name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (path.name, f.name)
            else:
                assert a == b or (a != a and b != b), (path.name, f.name)
