"""Speed of `twinviz import apogee` against a plain astropy loop over the same files.

Writes ``--files N`` copies of the six aspcapStar files in tests/data/apogee into a temporary
folder; each copy gets its own APOGEE_ID (written into the table's 18-byte APOGEE_ID field, all
other bytes unchanged) so that the importer imports every copy instead of skipping duplicates.
Labels come from ``--labels fparam`` so that the M dwarfs without calibrated labels count too.

Each measurement runs in a fresh child process, so peak RSS (ru_maxrss) is that of the one task:

* ``twinviz import``: ``twinviz import apogee DIR --out stars.zarr --labels fparam``;
* ``astropy getdata``: ``for f in files: astropy.io.fits.getdata(f, 1); getdata(f, 2); getdata(f, 4)``
  (flux, error and the per-star table, i.e. what the importer reads, and nothing else).

Usage: python benchmarks/bench_import.py --files 2000
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
DATA = ROOT / "tests" / "data" / "apogee"

_TASKS = {
    "twinviz import": """
import resource, sys, time
from twinviz.spectra.apogee.importer import ImportOptions, import_apogee
t = time.perf_counter()
rep = import_apogee([sys.argv[1]], sys.argv[2], ImportOptions(labels="fparam", progress=False))
dt = time.perf_counter() - t
print(dt, rep["imported"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""",
    "astropy getdata": """
import resource, sys, time, pathlib
from astropy.io import fits
files = sorted(pathlib.Path(sys.argv[1]).glob("*.fits"))
t = time.perf_counter()
for f in files:
    fits.getdata(f, 1); fits.getdata(f, 2); fits.getdata(f, 4)
dt = time.perf_counter() - t
print(dt, len(files), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""",
}


def make_files(folder: Path, n: int) -> None:
    """``n`` aspcapStar copies, each with a distinct APOGEE_ID written into the 18-byte field."""
    sources = sorted(DATA.glob("aspcapStar-*.fits"))
    for i in range(n):
        src = sources[i % len(sources)]
        data = bytearray(src.read_bytes())
        old = src.name.split("-", 3)[3][:-5].encode()
        new = f"2M{i:08d}+{i % 10_000_000:07d}".encode()[: len(old)].ljust(len(old))
        at = data.rfind(old)  # the table's APOGEE_ID (the last occurrence; headers come first)
        data[at:at + len(old)] = new
        (folder / f"aspcapStar-r6-l30e.2-{new.decode()}.fits").write_bytes(bytes(data))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="number of aspcapStar files")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        src = tmp / "in"
        src.mkdir()
        make_files(src, args.files)
        rows = []
        for name, code in _TASKS.items():
            out = tmp / "stars.zarr"
            done = subprocess.run([sys.executable, "-c", code, str(src), str(out)], capture_output=True, text=True,
                                  cwd=ROOT, check=True)
            seconds, count, rss_kb = done.stdout.split()[-3:]
            rows.append((name, int(count), float(seconds), int(rss_kb) / 1024))
        print(f"{'task':<18} {'files':>6} {'seconds':>8} {'files/s':>8} {'peak RSS MB':>12}")
        for name, count, seconds, rss in rows:
            print(f"{name:<18} {count:>6} {seconds:>8.2f} {count / seconds:>8.0f} {rss:>12.0f}")
        print(json.dumps({name: {"files": c, "seconds": round(s, 3), "files_per_s": round(c / s, 1),
                                 "peak_rss_mb": round(r)} for name, c, s, r in rows}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
