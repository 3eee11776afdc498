"""The real-data workflow of docs/real-data.md, run as a user would, end to end:

a folder of DR17 files — the **real** DR17 apStar file (tests/data/apogee-dr17) plus DR17-shaped
**synthetic stand-ins** for bulk (twinviz.spectra.apogee.standins: open-cluster members and field
giants from the built-in synthesizer, written as apStar/aspcapStar DR17 files) — and a DR17
allStar-shaped catalogue →
``twinviz import apogee`` (cluster members as groups, with a membership cut) →
``twinviz train`` on those spectra (no twins used in training; tiny settings) →
``twinviz fit-metric`` with cluster members as the few known twins →
``twinviz twins``.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from twinviz.cli import main as cli
from twinviz.spectra.apogee.standins import make_dr17_folder
from twinviz.spectra.dataset import load_spectra

SHARED = Path(__file__).resolve().parents[1] / "data" / "apogee-dr17"
REAL = SHARED / "apStar-dr17-2M19485057+5005279.fits"
REAL_ID = "2M19485057+5005279"
TINY = ["--epochs", "3", "--batch-size", "16", "--latent-dim", "4", "--basis-dim", "8", "--hidden", "16",
        "--adversary-hidden", "16", "--warmup-steps", "0", "--num-threads", "1", "--checkpoint-every", "0",
        "--log-every", "1", "--no-progress"]


@pytest.mark.skipif(not REAL.exists(), reason=f"the real DR17 apStar file is not at {SHARED}")
def test_dr17_folder_to_twins(tmp_path, capsys):
    # the real star's catalogue row: no ASPCAP labels ship with it, so Teff/logg are the RV fit's
    # (RV_TEFF, RV_LOGG in its primary header), with generous errors — a stand-in for its allStar row
    head = fits.getheader(REAL, 0)
    real_row = {"APOGEE_ID": REAL_ID, "TEFF": float(head["RV_TEFF"]), "TEFF_ERR": 150.0,
                "LOGG": float(head["RV_LOGG"]), "LOGG_ERR": 0.3, "FE_H": float(head["RV_FEH"])}
    made = make_dr17_folder(tmp_path / "survey", n_clusters=6, sizes=(4, 5), field_fraction=0.3, seed=3,
                            extra_rows=[real_row])
    shutil.copy(REAL, made.folder / REAL.name)
    clusters = sorted({s["cluster"] for s in made.stars if s["cluster"]})
    fit_clusters, val_clusters = clusters[:4], clusters[4:]
    table = made.members.read_text().splitlines()
    split = {}
    for name, keep in (("fit", fit_clusters), ("val", val_clusters)):
        split[name] = tmp_path / f"members-{name}.csv"
        split[name].write_text("\n".join([table[0]] + [r for r in table[1:] if r.split(",")[1] in keep]) + "\n")
    val_ids = {s["apogee_id"] for s in made.stars if s["cluster"] in val_clusters}
    val_files = [p for p in made.folder.glob("*.fits") if any(i in p.name for i in val_ids)]
    train_files = [p for p in made.folder.glob("*.fits") if p not in val_files]

    # 1. import: training stars (with the fit clusters' members as groups) and validation clusters
    train, val = tmp_path / "train.nc", tmp_path / "val.nc"
    base = ["import", "apogee", "--catalogue", str(made.catalogue), "--min-membership", "0.5", "--no-progress"]
    assert cli(base[:2] + [str(p) for p in train_files] + base[2:] + ["--groups", str(split["fit"]),
                                                                       "--out", str(train)]) == 0
    printed = capsys.readouterr()
    assert cli(base[:2] + [str(p) for p in val_files] + base[2:] + ["--groups", str(split["val"]),
                                                                     "--out", str(val)]) == 0
    capsys.readouterr()
    ds = load_spectra(train)
    assert REAL_ID in ds.star.values and ds.sizes["star"] == len(train_files)
    assert "apogee-dr17 1 stars" in printed.out and "more than one source" in printed.err
    assert "members per cluster (membership >= 0.5)" in printed.out
    report = json.loads(Path(str(train) + ".import.json").read_text())
    assert set(report["members"]) == set(fit_clusters)
    assert all(c["imported"] == c["listed"] - c["below_min_membership"] >= 4 for c in report["members"].values())
    assert report["sources"] == {"apogee-dr17": 1, "synthetic-standin:apogee-dr17": len(train_files) - 1}
    assert float(ds.teff_err.sel(star=REAL_ID)) == 150.0 and np.isfinite(ds.logg_err.values).all()
    assert json.loads(ds.attrs["group_names"]) == {c: i for i, c in enumerate(fit_clusters)}

    # 2. train on the imported spectra: no twins used (twin term off; no twin metric yet)
    run = tmp_path / "runs" / "dr17"
    assert cli(["train", "--data", str(train), "--val", str(val), "--out", str(run), "--twin-metric", "off",
                *TINY]) == 0
    out = capsys.readouterr().out
    assert "done:" in out and (run / "model").is_dir()
    assert not (run / "model" / "twin_metric.json").exists()

    # 3. the few known twins (cluster members) teach the twin metric; the validation clusters choose it
    assert cli(["fit-metric", "--model", str(run), "--data", str(train), "--val", str(val)]) == 0
    fitted = capsys.readouterr().out
    assert "twin metric:" in fitted and "validation rank 1" in fitted
    assert (run / "model" / "twin_metric.json").exists()

    # 4. twins of a cluster member (ranked in the twin metric), and of the real star
    member = next(s["apogee_id"] for s in made.stars if s["cluster"] == fit_clusters[0]
                  and int(ds.group.sel(star=s["apogee_id"])) >= 0)
    assert cli(["twins", "--model", str(run), "--data", str(train), "--star", member, "-k", "3", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["query"]["star"] == member and len(listed["twins"]) == 3
    assert "twin metric" in listed["ranked_on"] and listed["true_twin"]["twin_rank"] >= 1
    assert all(t["star"] != member for t in listed["twins"])
    assert cli(["twins", "--model", str(run), "--data", str(train), "--star", REAL_ID, "-k", "3"]) == 0
    real = capsys.readouterr().out
    assert f"star {REAL_ID}: Teff {head['RV_TEFF']:.0f} K" in real and "out of distribution:" in real
