"""Speed and memory of `twinviz import apogee` on DR17-sized folders, streamed to zarr.

Builds folders of DR17-shaped stand-in files (:mod:`twinviz.spectra.apogee.standins`: 8
synthesized stars per product, each copy with its own APOGEE_ID written over the id bytes, all
other bytes unchanged) and a CSV catalogue with a row per id, then imports each folder to
``.zarr`` in a fresh child process and reports seconds, files/s and peak RSS (the child's own
and its worker processes'):

* ``aspcapStar DR17``: 7514-px aspcapStar files (~90 kB each; no continuum to fit);
* ``apStar DR17``: 11-HDU apStar files with an int64 PIXMASK (~1 MB each, the size of the real
  DR17 file; the continuum is fitted per chip);

each with ``--workers 1`` and ``--workers 2``, and at two folder sizes, so that the peak RSS at
the larger size shows whether memory stays bounded. ``--astropy-baseline`` adds a plain loop of
``astropy.io.fits.getdata`` over HDUs 1–3 of the apStar files, for scale.

Usage: python benchmarks/bench_import.py --files 3000 --small 1500
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_IMPORT = """
import resource, sys, time
from twinviz.spectra.apogee.importer import ImportOptions, import_apogee
t = time.perf_counter()
rep = import_apogee([sys.argv[1]], sys.argv[2], ImportOptions(catalogue=sys.argv[3], workers=int(sys.argv[4]),
                                                          progress=False, grid="apogee-aspcap-dr17"))
dt = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(dt, rep["imported"], own, kids)
"""
_ASTROPY = """
import resource, sys, time, pathlib
from astropy.io import fits
files = sorted(pathlib.Path(sys.argv[1]).glob("*.fits"))
t = time.perf_counter()
for f in files:
    fits.getdata(f, 1); fits.getdata(f, 2); fits.getdata(f, 3)
dt = time.perf_counter() - t
print(dt, len(files), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0)
"""


def make_folder(root: Path, kind: str, n: int) -> tuple[Path, Path]:
    """``n`` DR17 stand-ins of ``kind`` ("aspcapStar" or "apStar") and a catalogue for them."""
    from twinviz.spectra.apogee.standins import make_dr17_folder

    made = make_dr17_folder(root / f"templates-{kind}", n_clusters=2, sizes=(3, 3), field_fraction=0.25,
                            aspcap_every=1 if kind == "aspcapStar" else 0)
    sources = sorted(made.folder.glob(f"{kind}-*.fits"))
    folder = root / f"{kind}-{n}"
    folder.mkdir()
    rows = []
    for i in range(n):
        src = sources[i % len(sources)]
        old = src.name[len(f"{kind}-dr17-"):-5]
        new = f"2M{i:08d}+{i:07d}"
        (folder / f"{kind}-dr17-{new}.fits").write_bytes(src.read_bytes().replace(old.encode(), new.encode()))
        rows.append(f"{new},{4300 + i % 900},{2.0 + (i % 10) / 10}\n")
    cat = root / f"labels-{kind}-{n}.csv"
    cat.write_text("APOGEE_ID,TEFF,LOGG\n" + "".join(rows))
    return folder, cat


def _child(code: str, *args) -> tuple[float, int, float]:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    seconds, count, own_kb, kids_kb = done.stdout.split()[-4:]
    return float(seconds), int(count), max(int(own_kb), int(kids_kb)) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000, help="files per folder (the larger size)")
    parser.add_argument("--small", type=int, default=1500, help="the smaller folder size (both above one 1024-star chunk: equal peak RSS means memory is bounded)")
    parser.add_argument("--astropy-baseline", action="store_true", help="also time astropy getdata on apStar files")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    rows = []
    try:
        for kind in ("aspcapStar", "apStar"):
            for n in (args.small, args.files):
                folder, cat = make_folder(tmp, kind, n)
                for workers in (1, 2):
                    out = tmp / f"{kind}-{n}-{workers}.zarr"
                    seconds, count, rss = _child(_IMPORT, folder, out, cat, workers)
                    rows.append((f"{kind} DR17 -> zarr", workers, count, seconds, rss))
                    shutil.rmtree(out, ignore_errors=True)
                if kind == "apStar" and n == args.files and args.astropy_baseline:
                    seconds, count, rss = _child(_ASTROPY, folder)
                    rows.append(("astropy getdata 1-3", 1, count, seconds, rss))
                shutil.rmtree(folder, ignore_errors=True)
        print(f"{'task':<24} {'workers':>7} {'files':>6} {'seconds':>8} {'files/s':>8} {'peak RSS MB':>12}")
        for name, workers, count, seconds, rss in rows:
            print(f"{name:<24} {workers:>7} {count:>6} {seconds:>8.2f} {count / seconds:>8.0f} {rss:>12.0f}")
        print(json.dumps([{"task": name, "workers": w, "files": c, "seconds": round(s, 3),
                           "files_per_s": round(c / s, 1), "peak_rss_mb": round(r)} for name, w, c, s, r in rows]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
