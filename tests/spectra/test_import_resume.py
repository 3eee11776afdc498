"""A killed `twinviz import apogee` (a real child process, SIGKILL mid-import) continues with
--resume where it stopped: the same stars in the same order with the same pixels as an import
that was never interrupted — nothing duplicated, nothing lost."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twinviz.cli import main as cli
from twinviz.spectra.apogee.standins import make_dr17_folder
from twinviz.spectra.dataset import open_spectra
from twinviz.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
N_FILES, CHUNK = 400, 16


def _copies(tmp_path) -> tuple[Path, Path]:
    """``N_FILES`` DR17 apStar stand-ins (8 synthesized stars, each copy with its own APOGEE_ID
    written over OBJID) and a catalogue row for each."""
    made = make_dr17_folder(tmp_path / "made", n_clusters=2, sizes=(3, 3), field_fraction=0.25, aspcap_every=0)
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted(made.folder.glob("apStar-*.fits"))
    rows = []
    for i in range(N_FILES):
        src = sources[i % len(sources)]
        old = src.name[len("apStar-dr17-"):-5]
        new = f"2M{i:08d}+{i:07d}"
        data = src.read_bytes().replace(old.encode(), new.encode())
        (folder / f"apStar-dr17-{new}.fits").write_bytes(data)
        rows.append(f"{new},{4300 + i % 900},{2.0 + (i % 10) / 10}\n")
    cat = tmp_path / "labels.csv"
    cat.write_text("APOGEE_ID,TEFF,LOGG\n" + "".join(rows))
    return folder, cat


def _args(folder, cat, out):
    return ["import", "apogee", str(folder), "--out", str(out), "--catalogue", str(cat), "--chunk-stars", str(CHUNK),
            "--no-progress"]


def test_a_killed_import_resumes_where_it_stopped(tmp_path, capsys):
    folder, cat = _copies(tmp_path)
    ref = tmp_path / "ref.zarr"
    assert cli(_args(folder, cat, ref)) == 0
    out = tmp_path / "run.zarr"
    partial, journal = tmp_path / "run.zarr.partial", tmp_path / "run.zarr.import.journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "twinviz", *_args(folder, cat, out)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 4, timeout=120, interval=0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert partial.exists() and not out.exists()
    lines = journal.read_text().splitlines()
    done = json.loads(lines[-1])
    assert 3 * CHUNK <= done["stars"] < N_FILES  # killed mid-import, after at least three chunks
    # the process died right after appending a chunk but before journalling it: drop the last
    # journal line, so the store holds CHUNK stars more than the journal vouches for
    journal.write_text("\n".join(lines[:-1]) + "\n")
    import zarr

    assert zarr.open_group(str(partial), mode="r", zarr_format=2)["flux"].shape[0] >= done["stars"]
    # without --resume: refused, with the fix
    assert cli(_args(folder, cat, out)) == 2
    assert "interrupted" in capsys.readouterr().err
    # other options than the killed run: refused
    assert cli(_args(folder, cat, out) + ["--resume", "--max-err", "0.2"]) == 2
    assert "other input files or options" in capsys.readouterr().err
    assert cli(_args(folder, cat, out) + ["--resume"]) == 0
    assert "(resumed)" in capsys.readouterr().out
    a, b = open_spectra(out), open_spectra(ref)
    assert list(a.star.values) == list(b.star.values) and a.sizes["star"] == N_FILES
    assert len(set(a.star.values)) == N_FILES
    for name in ("flux", "flux_err", "mask", "teff", "logg", "snr"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    rep = json.loads(Path(str(out) + ".import.json").read_text())
    assert rep["imported"] == N_FILES and [s["apogee_id"] for s in rep["stars"]] == list(b.star.values)
    assert not partial.exists() and not journal.exists()


def test_resume_needs_zarr_and_keeps_an_existing_output_safe(tmp_path, capsys):
    assert cli(["import", "apogee", str(tmp_path), "--out", str(tmp_path / "x.nc"), "--resume"]) == 2
    assert "--resume: resumable imports write .zarr output" in capsys.readouterr().err


@pytest.mark.parametrize("journal_text", ["", "not json\n"])
def test_a_damaged_journal_is_refused_with_the_fix(tmp_path, capsys, journal_text):
    folder, cat = tmp_path / "in", tmp_path / "c.csv"
    folder.mkdir()
    made = make_dr17_folder(tmp_path / "made", n_clusters=1, sizes=(2, 2), aspcap_every=0)
    for p in made.folder.glob("*.fits"):
        (folder / p.name).write_bytes(p.read_bytes())
    cat.write_text("APOGEE_ID,TEFF,LOGG\n" + "".join(f"{s['apogee_id']},4500,2.5\n" for s in made.stars))
    out = tmp_path / "d.zarr"
    (tmp_path / "d.zarr.import.journal").write_text(journal_text)
    assert cli(_args(folder, cat, out) + ["--resume"]) == 2
    assert "is not a twinviz import journal" in capsys.readouterr().err
    assert cli(_args(folder, cat, out) + ["--overwrite"]) == 0 and open_spectra(out).sizes["star"] == len(made.stars)
