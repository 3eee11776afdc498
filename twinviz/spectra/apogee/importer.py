"""Stream APOGEE aspcapStar/apStar files into one twinviz dataset, with an import report.

:func:`import_apogee` reads the files one at a time, applies the mask rules and the labels
policy, moves each spectrum onto the chosen APOGEE grid by pixel selection (no interpolation),
and writes ``.zarr`` output in chunks of stars (bounded memory: one chunk in RAM) or ``.nc``
output collected in memory (about 9 bytes per pixel: 65 MB per 1000 stars on the default grid).
The output is written under a temporary name and moved into place only when complete; the
report goes to ``<out>.import.json`` (and a short ``<out>.import.md``).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twinviz.atomic import temporary_sibling, write_json_atomic
from twinviz.spectra.dataset import DatasetError, file_format, make_spectra, open_spectra, save_spectra
from twinviz.spectra.grid import DEFAULT_GRID, GRID_NAMES, get_grid
from twinviz.spectra.apogee import FITS_INSTALL_HINT, ApogeeFileError
from twinviz.spectra.apogee.continuum import CONTINUUM_DEFAULTS, normalise
from twinviz.spectra.apogee.fits import read_apogee_file, require_astropy
from twinviz.spectra.apogee.labels import file_elements, labels_from_file, read_catalogue, read_groups

__all__ = ["DEFAULT_PIXMASK_BITS", "IMPORTER_VERSION", "MASKED_FLUX_ERR", "PIXMASK_BITS", "ImportOptions",
           "import_apogee"]

IMPORTER_VERSION = "1"
# APOGEE_PIXMASK bit numbers (SDSS data model) and the default set that marks a pixel bad.
PIXMASK_BITS = {"BADPIX": 0, "CRPIX": 1, "SATPIX": 2, "UNFIXABLE": 3, "BADDARK": 4, "BADFLAT": 5, "BADERR": 6,
                "NOSKY": 7, "LITTROW_GHOST": 8, "PERSIST_HIGH": 9, "PERSIST_MED": 10, "PERSIST_LOW": 11,
                "SIG_SKYLINE": 12, "SIG_TELLURIC": 13, "NOT_ENOUGH_PSF": 14}
DEFAULT_PIXMASK_BITS = ("BADPIX", "CRPIX", "SATPIX", "UNFIXABLE", "BADDARK", "BADFLAT", "BADERR", "NOSKY",
                        "PERSIST_HIGH", "SIG_SKYLINE")
MASKED_FLUX_ERR = 100.0  # flux_err placeholder of masked pixels (their flux is set to 1)


@dataclass
class ImportOptions:
    """Settings of one import (the command-line options of ``twinviz import apogee``).

    grid : an APOGEE grid name;  max_err : pixels with a normalised 1-σ error above this are
    masked (default 0.1, i.e. S/N < 10 in that pixel);  pixmask_bits : APOGEE_PIXMASK bit
    names that mask an apStar pixel;  labels : "param" (calibrated) or "fparam" (raw fit, opt-in);
    catalogue, groups : optional label catalogue and group CSV;  chunk_stars : stars per zarr
    chunk;  strict : abort on the first bad file or star;  overwrite : replace an existing output.
    """

    grid: str = DEFAULT_GRID
    max_err: float = 0.1
    pixmask_bits: tuple = DEFAULT_PIXMASK_BITS
    labels: str = "param"
    catalogue: str | None = None
    groups: str | None = None
    chunk_stars: int = 1024
    strict: bool = False
    overwrite: bool = False
    progress: bool = True


def _fail(where, field_, problem, fix):
    raise DatasetError(f"{where}: {field_}: {problem}. Fix: {fix}")


def _check_options(out: Path, opts: ImportOptions) -> None:
    file_format(out)  # .nc or .zarr, else a clear error
    if out.exists() and not opts.overwrite:
        _fail(out, "output", "already exists", "pass --overwrite to replace it, or choose another --out")
    key = str(opts.grid).lower()
    try:
        grid = get_grid(key)
    except ValueError:
        grid = None
    if grid is None or grid.pixels is None:
        _fail("--grid", opts.grid, f"is not an APOGEE grid (known: {', '.join(GRID_NAMES)})",
              "choose one of those; twinviz selects apStar pixels and never interpolates")
    unknown = [b for b in opts.pixmask_bits if b not in PIXMASK_BITS]
    if unknown:
        _fail("--pixmask-bits", ",".join(unknown), "unknown APOGEE_PIXMASK bit name",
              f"use names from: {', '.join(PIXMASK_BITS)}")
    if opts.labels not in ("param", "fparam"):
        _fail("--labels", opts.labels, "unknown labels source", "use 'param' or 'fparam'")
    if not opts.max_err > 0:
        _fail("--max-err", opts.max_err, "must be positive", "give a normalised-flux error cap such as 0.1")


def find_files(paths) -> tuple[list[Path], list[dict]]:
    """Expand files and folders (searched recursively for ``*.fits``) into a sorted file list:
    aspcapStar files first (they win over an apStar file of the same star), then apStar, then
    the rest. Returns ``(files, problems)``."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.fits") if q.is_file())
            if not found:
                problems.append({"file": str(p), "reason": f"{p}: folder: has no *.fits files. Fix: point at "
                                 "the folder holding the aspcapStar/apStar files"})
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append({"file": str(p), "reason": f"{p}: file: does not exist. Fix: check the path"})
    rank = {"aspcapStar": 0, "apStar": 1}
    unique = sorted(set(files), key=lambda q: (rank.get(q.name.split("-")[0], 2), str(q)))
    return unique, problems


def spectrum_on_grid(spec, grid, opts: ImportOptions):
    """Normalise (apStar), mask and select the grid's pixels of one spectrum.

    Returns float32 flux, float32 flux_err and bool mask on ``grid`` (masked pixels carry flux 1
    and flux_err :data:`MASKED_FLUX_ERR`).
    """
    flux, err = spec.flux, spec.flux_err
    bad = ~np.isfinite(flux) | (flux <= 0) | ~np.isfinite(err) | (err <= 0)
    if spec.kind == "apStar":
        bits = sum(1 << PIXMASK_BITS[b] for b in opts.pixmask_bits)
        bad |= (spec.pixmask & bits) != 0
        flux, err, no_cont = normalise(flux, err, bad)
        bad |= no_cont
    pix = grid.pixels
    f, e, m = flux[pix].astype(np.float32), err[pix].astype(np.float32), bad[pix]
    with np.errstate(invalid="ignore"):
        m = m | ~np.isfinite(f) | ~(e <= opts.max_err)
    f[m], e[m] = 1.0, MASKED_FLUX_ERR
    return f, e, m


class _Batch:
    """Spectra and labels of up to ``chunk_stars`` stars, turned into a dataset on flush."""

    def __init__(self, elements):
        self.elements = tuple(elements)
        self.clear()

    def clear(self):
        self.ids, self.flux, self.err, self.mask = [], [], [], []
        self.teff, self.logg, self.fe_h, self.x_fe, self.snr, self.group = [], [], [], [], [], []

    def add(self, sid, f, e, m, lab, snr, group):
        self.ids.append(sid), self.flux.append(f), self.err.append(e), self.mask.append(m)
        self.teff.append(lab.teff), self.logg.append(lab.logg), self.fe_h.append(lab.fe_h)
        self.x_fe.append([lab.x_fe.get(el, np.nan) for el in self.elements])
        self.snr.append(snr), self.group.append(group)

    def dataset(self, grid, attrs):
        x_fe = np.asarray(self.x_fe, dtype=np.float32).reshape(len(self.ids), len(self.elements))
        return make_spectra(np.stack(self.flux), grid.wavelength, self.teff, self.logg, group=self.group,
                            flux_err=np.stack(self.err), mask=np.stack(self.mask), fe_h=self.fe_h,
                            x_fe=x_fe if self.elements else None, elements=self.elements or None,
                            snr=self.snr, star=np.asarray(self.ids, dtype=str), attrs=attrs)


class _ZarrSink:
    """Append chunks of stars to a temporary zarr store; move it into place at the end."""

    def __init__(self, out: Path, chunk: int):
        self.out, self.chunk, self.tmp, self.n = out, chunk, temporary_sibling(out), 0
        self.attrs = {}

    def write(self, ds):
        ds = ds.copy()
        if self.n == 0:
            self.attrs = dict(ds.attrs)  # twinviz_schema, grid_id: appends would overwrite them
            enc = {v: {"chunks": (self.chunk,) + ds[v].shape[1:]} for v in ds.data_vars}
            ds.to_zarr(self.tmp, mode="w", zarr_format=2, consolidated=False, encoding=enc)
        else:
            ds = ds.drop_vars([c for c in ("wavelength", "element") if c in ds.coords])
            ds.attrs = {}
            ds.to_zarr(self.tmp, append_dim="star", zarr_format=2, consolidated=False)
        self.n += ds.sizes["star"]

    def finish(self, attrs) -> Path:
        import zarr

        group = zarr.open_group(str(self.tmp), mode="r+", zarr_format=2)
        group.attrs.update({k: v for k, v in {**self.attrs, **attrs}.items() if v is not None})
        zarr.consolidate_metadata(str(self.tmp), zarr_format=2)
        open_spectra(self.tmp, chunks={"star": self.chunk})  # validate before it goes in place
        if self.out.exists():
            old = temporary_sibling(self.out, "old")
            os.replace(self.out, old)
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            os.replace(self.tmp, self.out)
        return self.out

    def abort(self):
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


class _MemorySink:
    """Collect all chunks in memory, then write one netCDF file atomically."""

    def __init__(self, out: Path):
        self.out, self.parts, self.n = out, [], 0

    def write(self, ds):
        self.parts.append(ds)
        self.n += ds.sizes["star"]

    def finish(self, attrs) -> Path:
        import xarray as xr

        ds = self.parts[0] if len(self.parts) == 1 else xr.concat(self.parts, dim="star", data_vars="minimal",
                                                                   coords="minimal", compat="override")
        ds.attrs.update({k: v for k, v in attrs.items() if v is not None})
        if self.out.exists() and self.out.is_dir():
            shutil.rmtree(self.out)
        return save_spectra(ds, self.out)

    def abort(self):
        self.parts = []


def import_apogee(paths, out, options: ImportOptions | None = None) -> dict:
    """Import APOGEE files and folders into ``out`` (``.nc`` or ``.zarr``); return the report.

    One bad file or star is skipped with its reason (``options.strict`` aborts instead, with
    nothing written). Raises :class:`~twinviz.DatasetError` for unusable options, an existing
    output without ``overwrite``, or when no star could be imported.
    """
    from tqdm import tqdm

    from twinviz import __version__

    opts = options or ImportOptions()
    out = Path(out)
    try:
        require_astropy()
    except ImportError:
        _fail("twinviz import apogee", "astropy", "is not installed (it reads the FITS files)",
              FITS_INSTALL_HINT)
    _check_options(out, opts)
    grid = get_grid(opts.grid)
    start = time.perf_counter()
    files, problems = find_files(paths)
    if not files:
        detail = "; ".join(p["reason"] for p in problems) or "no paths given"
        _fail(", ".join(map(str, paths)) or "PATHS", "input", f"no FITS files found ({detail})",
              "give aspcapStar/apStar files or folders that contain them")
    if opts.strict and problems:
        raise DatasetError(problems[0]["reason"])
    catalogue = read_catalogue(opts.catalogue) if opts.catalogue else None
    group_ids, group_names = read_groups(opts.groups) if opts.groups else ({}, {})
    elements = catalogue.elements if catalogue else file_elements()
    label_source = (f"catalogue {Path(catalogue.path).name}" if catalogue else
                    "aspcapStar FPARAM (uncalibrated FERRE fit, opt-in)" if opts.labels == "fparam"
                    else "aspcapStar PARAM (calibrated ASPCAP)")
    sink = _ZarrSink(out, opts.chunk_stars) if file_format(out) == "zarr" else _MemorySink(out)
    batch, seen, imported, skipped, kinds, releases = _Batch(elements), {}, [], [], set(), set()
    attrs = {}

    def flush():
        if batch.ids:
            sink.write(batch.dataset(grid, attrs))
            batch.clear()

    def skip(path, sid, reason):
        if opts.strict:
            raise DatasetError(f"{path}: {reason}" if not str(reason).startswith(str(path)) else reason)
        skipped.append({"file": str(path), "apogee_id": sid, "reason": reason})

    try:
        for path in tqdm(files, desc="import apogee", unit="file", disable=not opts.progress, leave=False):
            try:
                spec = read_apogee_file(path)
            except ApogeeFileError as exc:
                if opts.strict:
                    raise
                problems.append({"file": str(path), "reason": str(exc)})
                continue
            sid = spec.apogee_id
            if sid in seen:
                skip(path, sid, f"duplicate APOGEE_ID {sid} (already imported from {seen[sid]}). Fix: keep "
                     "one file per star; aspcapStar files are preferred over apStar")
                continue
            if catalogue is not None:
                lab = catalogue.rows.get(sid)
                if lab is None:
                    skip(path, sid, f"APOGEE_ID {sid} is not in the catalogue {catalogue.path}. Fix: add a row "
                         "for it, or drop the file")
                    continue
                if isinstance(lab, str):
                    skip(path, sid, lab)
                    continue
            else:
                lab, reason = labels_from_file(spec, opts.labels)
                if lab is None:
                    skip(path, sid, reason)
                    continue
            f, e, m = spectrum_on_grid(spec, grid, opts)
            if m.all():
                skip(path, sid, "every pixel is masked. Fix: check the file, or raise --max-err")
                continue
            seen[sid] = str(path)
            kinds.add(spec.kind)
            releases.add(spec.release)
            batch.add(sid, f, e, m, lab, spec.snr, group_ids.get(sid, -1))
            imported.append({"apogee_id": sid, "file": str(path), "kind": spec.kind,
                             "masked_fraction": round(float(m.mean()), 4)})
            if len(batch.ids) >= opts.chunk_stars:
                flush()
        flush()
        if not imported:
            reasons = [p["reason"] for p in problems] + [s["reason"] for s in skipped]
            _fail(out, "output", f"no star could be imported from {len(files)} file(s) (first reason: "
                  f"{reasons[0] if reasons else 'none'})", "see the reasons above and fix the inputs")
        attrs = {
            "generator": f"APOGEE {'+'.join(sorted(releases))} {'/'.join(sorted(kinds))}",
            "generator_version": f"twinviz {__version__} apogee importer {IMPORTER_VERSION}",
            "source_files": len(files), "stars_imported": len(imported), "stars_skipped": len(skipped) + len(problems),
            "label_source": label_source, "labels_fparam": int(opts.labels == "fparam" and catalogue is None),
            "max_err": opts.max_err, "pixmask_bits": ",".join(opts.pixmask_bits),
            "masked_flux_err": MASKED_FLUX_ERR,
            "continuum": "apStar: per-chip Chebyshev, asymmetric sigma clip " + json.dumps(CONTINUUM_DEFAULTS),
            "group_names": json.dumps(group_names) if group_names else None,
        }
        written = sink.finish(attrs)
    except BaseException:
        sink.abort()
        raise
    report = {
        "output": str(written), "imported": len(imported), "skipped": len(skipped) + len(problems),
        "files": len(files), "elapsed_s": round(time.perf_counter() - start, 3),
        "skipped_files": problems, "skipped_stars": skipped,
        "catalogue_duplicates": catalogue.duplicates if catalogue else [],
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()},
        "attrs": {k: v for k, v in attrs.items() if v is not None}, "stars": imported,
    }
    write_report(out, report)
    return report


def write_report(out: Path, report: dict) -> None:
    """``<out>.import.json`` (full) and ``<out>.import.md`` (summary), both written atomically."""
    out = Path(out)
    write_json_atomic(out.with_name(out.name + ".import.json"), report)
    lines = [f"# Import report: {out.name}", "",
             f"Imported {report['imported']} stars from {report['files']} files; skipped {report['skipped']}.",
             f"Labels: {report['attrs'].get('label_source')}.", ""]
    rows = report["skipped_files"] + report["skipped_stars"]
    if rows:
        lines += ["| file | APOGEE_ID | reason |", "|---|---|---|"]
        lines += [f"| {Path(r['file']).name} | {r.get('apogee_id', '')} | {r['reason'].replace('|', '/')} |"
                  for r in rows]
    md = out.with_name(out.name + ".import.md")
    tmp = temporary_sibling(md)
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, md)
