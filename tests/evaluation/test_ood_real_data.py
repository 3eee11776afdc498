"""Real APOGEE stars through the pipeline: `twinviz import apogee` (run as a child process) on the
repository's DR12 files, then `embed`, `twins` and `evaluate` with the bundled demo model (same
7214-px ASPCAP grid). Values are checked against a direct FITS read and an independent encoding,
not only that the commands ran. Also the out-of-distribution criteria on their own."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from astropy.io import fits  # the optional extra twinviz[fits]; the test extra installs it

from twinviz.latents.ood import RECON_FACTOR, OODCriteria, read_validation_stats
from twinviz.latents import load_latents
from twinviz.model import FaderNetwork
from twinviz.spectra.dataset import load_spectra
from twinviz.spectra.grid import get_grid

ROOT = Path(__file__).resolve().parents[2]
APOGEE = ROOT / "tests" / "data" / "apogee"
DEMO_MODEL = ROOT / "data" / "demo" / "model"
STAR = "2M05392474+4038437"


def twinviz(*argv, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "twinviz", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"twinviz {' '.join(map(str, argv))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """stars.nc imported from the real files (FPARAM labels: all six aspcapStar stars), and its
    latents from the demo model."""
    d = tmp_path_factory.mktemp("real")
    out = twinviz("import", "apogee", APOGEE, "--out", d / "stars.nc", "--labels", "fparam", "--no-progress", cwd=d)
    assert "imported 6 stars" in out.stdout + out.stderr
    emb = twinviz("embed", "--model", DEMO_MODEL, "--data", d / "stars.nc", "--out", d / "stars.latents.nc",
                  "--projections", "pca", cwd=d)
    return d, load_spectra(d / "stars.nc"), load_latents(d / "stars.latents.nc"), emb.stderr


def _direct(path):
    """Flux, error, good-pixel mask and (Teff, logg) of an aspcapStar file read with astropy."""
    pix = get_grid("apogee-aspcap-dr12").pixels
    flux = fits.getdata(path, 1)[pix].astype(np.float32)
    err = fits.getdata(path, 2)[pix].astype(np.float32)
    row = fits.getdata(path, 4)[0]
    good = np.isfinite(flux) & (flux > 0) & np.isfinite(err) & (err > 0) & (err <= 0.1)
    return flux, err, good, float(row["FPARAM"][0]), float(row["FPARAM"][1])


def test_demo_model_has_validation_stats_of_its_own_weights():
    doc, why = read_validation_stats(DEMO_MODEL)
    assert why == "", why
    assert doc["recon_mse"]["n_stars"] == 2000 and 0 < doc["recon_mse"]["p99"] < 1e-3


def test_embed_stores_recon_mse_and_flags_equal_to_an_independent_computation(real):
    import torch

    d, ds, lat, stderr = real
    assert list(lat["star"].values) == list(ds["star"].values)
    assert lat["star"].dtype.kind == "U" and STAR in lat["star"].values
    model = FaderNetwork.from_pretrained(DEMO_MODEL)
    p99 = read_validation_stats(DEMO_MODEL)[0]["recon_mse"]["p99"]
    (t0, t1), (g0, g1) = model.config.teff_range, model.config.logg_range
    assert lat.attrs["ood_recon_p99"] == pytest.approx(p99) and lat.attrs["ood_recon_factor"] == RECON_FACTOR
    for path in sorted(APOGEE.glob("aspcapStar-*.fits")):
        sid = path.stem.split("-", 3)[3]
        flux, _, good, teff, logg = _direct(path)
        with torch.inference_mode():
            t, g = torch.tensor([teff]), torch.tensor([logg])
            z = model.encode(torch.from_numpy(np.where(good, flux, 1.0)[None]), t, g, torch.from_numpy(~good[None]))
            recon = model.decode(z, t, g)[0].numpy()
        mse = float(np.mean((recon[good].astype(np.float64) - flux[good]) ** 2))
        row = lat.sel(star=sid)
        assert row["recon_mse"].item() == pytest.approx(mse, rel=1e-4)
        out_labels = not (t0 <= teff <= t1 and g0 <= logg <= g1)
        assert bool(row["ood_labels"].item()) == out_labels
        assert bool(row["ood_recon"].item()) == (mse > RECON_FACTOR * p99)
        assert bool(row["ood"].item()) == (out_labels or mse > RECON_FACTOR * p99)
    # these are M dwarfs and giants far from the demo's synthetic red giants: all flagged
    assert lat["ood"].values.all()
    assert "6 of 6 stars out of distribution" in stderr


def test_twins_prints_the_flag_with_its_numbers_for_an_apogee_id(real):
    d, ds, lat, _ = real
    out = twinviz("twins", "--latents", d / "stars.latents.nc", "--star", STAR, "-k", "3", cwd=d).stdout
    teff = float(lat["teff"].sel(star=STAR))
    recon = float(lat["recon_mse"].sel(star=STAR))
    p99 = lat.attrs["ood_recon_p99"]
    assert f"star {STAR}: Teff {teff:.0f} K" in out
    assert f"out of distribution: YES — Teff {teff:.0f} K outside the training range 4000–5500 K" in out
    assert f"recon MSE {recon:.3g} > {RECON_FACTOR:g} × validation p99 {p99:.3g}" in out
    assert "not to be trusted" in out
    assert sum(line.count("OOD: ") for line in out.splitlines()) == 3  # every neighbour row is flagged
    # the synthetic demo model on real APOGEE stars: said in the summary, and its twin metric
    # (learned on synthetic twins) is not applied — raw z, with the reason
    assert "WARNING — domain: the model was trained on twinviz.synth spectra and these stars are APOGEE" in out
    assert "ranked on: raw z: the twin metric was learned on twinviz.synth twins and these stars are APOGEE" in out
    assert load_latents(d / "stars.latents.nc")["ood_domain"].values.all()
    js = json.loads(twinviz("twins", "--latents", d / "stars.latents.nc", "--star", STAR, "-k", "2", "--json",
                            cwd=d).stdout)
    assert js["query"]["star"] == STAR and js["query"]["ood"]["flag"] and js["query"]["ood"]["labels"]
    assert js["query"]["ood"]["recon_mse"] == pytest.approx(recon, rel=1e-6)
    assert all(t["ood"]["flag"] for t in js["twins"]) and "validation p99" in js["ood_criteria"]


def test_a_model_without_validation_stats_flags_on_the_label_range_only_and_says_so(real, tmp_path):
    d, ds, _, _ = real
    bare = tmp_path / "bare-model"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(DEMO_MODEL / name, bare / name)
    twinviz("embed", "--model", bare, "--data", d / "stars.nc", "--out", tmp_path / "lat.nc", "--projections", "",
            cwd=tmp_path)
    lat = load_latents(tmp_path / "lat.nc")
    assert lat.attrs["ood_basis"].startswith("label range only")
    assert not lat["ood_recon"].values.any()  # no distribution to compare with
    assert (lat["ood"].values == lat["ood_labels"].values).all()
    out = twinviz("twins", "--latents", tmp_path / "lat.nc", "--star", STAR, "-k", "1", cwd=tmp_path).stdout
    assert "label range only: the model has no validation stats (validation_stats.json)" in out


def test_evaluate_without_groups_reports_mse_only_and_says_ranks_are_absent(real, tmp_path):
    d, ds, lat, _ = real
    out = twinviz("evaluate", "--model", DEMO_MODEL, "--data", d / "stars.nc", "--out", tmp_path / "eval",
                  cwd=d).stdout
    assert "Twin ranks (Table 1): absent" in out and "undefined, not zero" in out
    assert "WARNING — domain: the model was trained on twinviz.synth spectra and these stars are APOGEE" in out
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_with_twin"] == 0 and report["ranks"].startswith("absent")
    (fader,) = report["methods"]
    assert fader["rank1"] is None and fader["within_1"] is None and fader["swapped_mse"] is None
    # the reported MSE pools the per-star MSEs that embed stored, weighted by good pixels
    n_good = (~ds["mask"].values).sum(axis=1)
    pooled = float(np.sum(lat["recon_mse"].values.astype(np.float64) * n_good) / n_good.sum())
    assert fader["mse"] == pytest.approx(pooled, rel=1e-4)
    assert not (tmp_path / "eval" / "rank_curve.png").exists() and not (tmp_path / "eval" / "ranks.nc").exists()


def test_ood_criteria_flags_and_descriptions():
    c = OODCriteria((4000.0, 5500.0), (1.0, 3.5), recon_p99=1e-5)
    f = c.flags([4500, 3500, 4500, 4500, math.nan], [2.0, 2.0, 4.0, 2.0, 2.0], [1e-6, 1e-6, 1e-6, 5e-5, 1e-6])
    assert f["ood_labels"].tolist() == [False, True, True, False, True]
    assert f["ood_recon"].tolist() == [False, False, False, True, False]
    assert f["ood"].tolist() == [False, True, True, True, True]
    assert c.describe(4500, 2.0, 2.9e-5) == ""  # below 3 × p99
    assert c.describe(3500, 2.0, 1e-6) == "Teff 3500 K outside the training range 4000–5500 K"
    assert c.describe(4500, 2.0, 5e-5) == "recon MSE 5e-05 > 3 × validation p99 1e-05 (5 × p99)"
    assert c.short(3500, 4.0, 5e-5) == "⚠ Teff 3500 K < 4000, logg 4.00 > 3.50, recon 5× p99"
    labels_only = OODCriteria((4000.0, 5500.0), (1.0, 3.5), missing="the model has no validation stats")
    assert not labels_only.flags([4500], [2.0], [1.0])["ood"][0]
    assert labels_only.describe(3500, 2.0, 1.0).endswith("label range only: the model has no validation stats")
    assert labels_only.short(3500, 2.0, 1.0) == "⚠ Teff 3500 K < 4000 (labels only)"
    assert OODCriteria.from_attrs(c.to_attrs()) == c and OODCriteria.from_attrs(labels_only.to_attrs()) == labels_only
