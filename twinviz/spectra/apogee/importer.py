"""Stream APOGEE aspcapStar/apStar/apVisit files into one twinviz dataset, with an import report.

:func:`import_apogee` reads the files one at a time, applies the mask rules and the labels
policy, moves each spectrum onto the chosen APOGEE grid by pixel selection (no interpolation;
apVisit files are first resampled onto the apStar grid, :mod:`.visit`), and writes ``.zarr``
output in chunks of stars (bounded memory: one chunk in RAM; resumable, :mod:`.store`) or
``.nc`` output collected in memory (about 9 bytes per pixel: 65 MB per 1000 stars on the
default grid). The output is moved into place only when complete; the report goes to
``<out>.import.json`` (and a short ``<out>.import.md``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twinviz.atomic import write_json_atomic, write_text_atomic
from twinviz.spectra.dataset import DatasetError, file_format, make_spectra
from twinviz.spectra.grid import DEFAULT_GRID, GRID_NAMES, get_grid
from twinviz.spectra.apogee import FITS_INSTALL_HINT, ApogeeFileError
from twinviz.spectra.apogee.bits import (ASPCAPFLAG, DEFAULT_ASPCAPFLAG_BAD, DEFAULT_PIXMASK_BITS,
                                         DEFAULT_STARFLAG_BAD, PIXMASK, STARFLAG, mask_value)
from twinviz.spectra.apogee.catalogue import read_catalogue
from twinviz.spectra.apogee.continuum import CONTINUUM_DEFAULTS
from twinviz.spectra.apogee.fits import require_astropy
from twinviz.spectra.apogee.labels import file_elements, labels_from_file
from twinviz.spectra.apogee.members import read_members
from twinviz.spectra.apogee.prepare import MASKED_FLUX_ERR, prepared_files, spectrum_on_grid
from twinviz.spectra.apogee.store import Journal, MemorySink, ZarrSink, partial_paths

__all__ = ["DEFAULT_PIXMASK_BITS", "IMPORTER_VERSION", "MASKED_FLUX_ERR", "PIXMASK_BITS", "ImportOptions",
           "import_apogee", "spectrum_on_grid"]

IMPORTER_VERSION = "2"
PIXMASK_BITS = PIXMASK  # APOGEE_PIXMASK bit numbers (DR17 names, .bits)


@dataclass
class ImportOptions:
    """Settings of one import (the command-line options of ``twinviz import apogee``).

    grid : an APOGEE grid name;  max_err : pixels with a normalised 1-σ error above this are
    masked (default 0.1, i.e. S/N < 10 in that pixel);  pixmask_bits : APOGEE_PIXMASK bit
    names that mask an apStar pixel;  labels : "param" (calibrated) or "fparam" (raw fit, opt-in);
    catalogue, groups : optional label catalogue and membership table;  min_membership,
    membership_column : membership cut (:mod:`.members`);  aspcapflag_bad, starflag_bad : catalogue
    bit names that drop a star (:mod:`.bits`);  chunk_stars : stars per zarr chunk;  workers : processes
    that read and normalise files (:mod:`.prepare`; results are taken in file order);  strict : abort
    on the first bad file or star;  overwrite : replace an existing output;  resume : continue an
    interrupted zarr import (:mod:`.store`).
    """

    grid: str = DEFAULT_GRID
    max_err: float = 0.1
    pixmask_bits: tuple = DEFAULT_PIXMASK_BITS
    labels: str = "param"
    catalogue: str | None = None
    groups: str | None = None
    min_membership: float | None = None
    membership_column: str | None = None
    aspcapflag_bad: tuple = DEFAULT_ASPCAPFLAG_BAD
    starflag_bad: tuple = DEFAULT_STARFLAG_BAD
    chunk_stars: int = 1024
    workers: int = 1
    strict: bool = False
    overwrite: bool = False
    resume: bool = False
    progress: bool = True


def _fail(where, field_, problem, fix):
    raise DatasetError(f"{where}: {field_}: {problem}. Fix: {fix}")


def _check_options(out: Path, opts: ImportOptions) -> None:
    fmt = file_format(out)  # .nc or .zarr, else a clear error
    if opts.resume and fmt != "zarr":
        _fail(out, "--resume", "resumable imports write .zarr output", "use --out NAME.zarr")
    partial, journal = partial_paths(out)
    if (partial.exists() or journal.exists()) and not (opts.resume or opts.overwrite):
        _fail(out, "output", f"an earlier import into it was interrupted ({journal.name} is left)",
              "pass --resume to continue it where it stopped, or --overwrite to start again")
    if out.exists() and not (opts.overwrite or (opts.resume and journal.exists())):
        _fail(out, "output", "already exists", "pass --overwrite to replace it, or choose another --out")
    key = str(opts.grid).lower()
    try:
        grid = get_grid(key)
    except ValueError:
        grid = None
    if grid is None or grid.pixels is None:
        _fail("--grid", opts.grid, f"is not an APOGEE grid (known: {', '.join(GRID_NAMES)})",
              "choose one of those; twinviz selects apStar pixels and never interpolates")
    mask_value(opts.pixmask_bits, PIXMASK, "--pixmask-bits")
    mask_value(opts.aspcapflag_bad, ASPCAPFLAG, "--aspcapflag-bad")
    mask_value(opts.starflag_bad, STARFLAG, "--starflag-bad")
    if opts.labels not in ("param", "fparam"):
        _fail("--labels", opts.labels, "unknown labels source", "use 'param' or 'fparam'")
    if not (isinstance(opts.workers, int) and opts.workers >= 1):
        _fail("--workers", opts.workers, "must be a whole number ≥ 1", "give 1 (read in this process) or more")
    if not opts.max_err > 0:
        _fail("--max-err", opts.max_err, "must be positive", "give a normalised-flux error cap such as 0.1")


def find_files(paths) -> tuple[list[Path], list[dict]]:
    """Expand files and folders (searched recursively for ``*.fits``) into a sorted file list:
    aspcapStar files first (they win over an apStar file of the same star), then apStar, then
    apVisit (one visit: used only for a star without a combined spectrum), then the rest. Returns ``(files, problems)``."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.fits") if q.is_file())
            if not found:
                problems.append({"file": str(p), "reason": f"{p}: folder: has no *.fits files. Fix: point at "
                                 "the folder holding the aspcapStar/apStar/apVisit files"})
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append({"file": str(p), "reason": f"{p}: file: does not exist. Fix: check the path"})
    rank = {"aspcapStar": 0, "apStar": 1, "asStar": 1, "apVisit": 2, "asVisit": 2}
    unique = sorted(set(files), key=lambda q: (rank.get(q.name.split("-")[0], 2), str(q)))
    return unique, problems


class _Batch:
    """Spectra and labels of up to ``chunk_stars`` stars, turned into a dataset on flush."""

    def __init__(self, elements):
        self.elements = tuple(elements)
        self.clear()

    def clear(self):
        self.ids, self.flux, self.err, self.mask = [], [], [], []
        self.teff, self.logg, self.fe_h, self.x_fe, self.snr, self.group = [], [], [], [], [], []
        self.teff_err, self.logg_err = [], []

    def add(self, sid, f, e, m, lab, snr, group):
        self.ids.append(sid), self.flux.append(f), self.err.append(e), self.mask.append(m)
        self.teff.append(lab.teff), self.logg.append(lab.logg), self.fe_h.append(lab.fe_h)
        self.teff_err.append(lab.teff_err), self.logg_err.append(lab.logg_err)
        self.x_fe.append([lab.x_fe.get(el, np.nan) for el in self.elements])
        self.snr.append(snr), self.group.append(group)

    def dataset(self, grid, attrs):
        x_fe = np.asarray(self.x_fe, dtype=np.float32).reshape(len(self.ids), len(self.elements))
        ds = make_spectra(np.stack(self.flux), grid.wavelength, self.teff, self.logg, group=self.group,
                          flux_err=np.stack(self.err), mask=np.stack(self.mask), fe_h=self.fe_h,
                          x_fe=x_fe if self.elements else None, elements=self.elements or None,
                          snr=self.snr, star=np.asarray(self.ids, dtype=str), attrs=attrs)
        for name, values, unit in (("teff_err", self.teff_err, "K"), ("logg_err", self.logg_err, "dex")):
            ds[name] = ("star", np.asarray(values, dtype=np.float32))
            ds[name].attrs.update(units=unit, description=f"1-sigma uncertainty of {name[:4]} (catalogue; NaN unknown)")
        return ds


def _source_attrs(state: dict) -> dict:
    """Provenance of the imported stars: ``generator`` (human-readable) and ``source`` (the
    survey release, ``apogee-dr17``, that a model's training data can be compared with)."""
    return {"generator": f"APOGEE {'+'.join(sorted(state['releases']))} {'/'.join(sorted(state['kinds']))}",
            "source": "+".join(sorted(state["sources"]))}


def import_apogee(paths, out, options: ImportOptions | None = None) -> dict:
    """Import APOGEE files and folders into ``out`` (``.nc`` or ``.zarr``); return the report.

    One bad file or star is skipped with its reason (``options.strict`` aborts instead, with
    nothing written). Raises :class:`~twinviz.DatasetError` for unusable options, an existing
    output without ``overwrite``, or when no star could be imported. A ``.zarr`` import that was
    killed continues where it stopped with ``options.resume`` (:mod:`.store`).
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
              "give aspcapStar/apStar/apVisit files or folders that contain them")
    if opts.strict and problems:
        raise DatasetError(problems[0]["reason"])
    catalogue = read_catalogue(opts.catalogue, opts.aspcapflag_bad, opts.starflag_bad) if opts.catalogue else None
    members = read_members(opts.groups, opts.min_membership, opts.membership_column) if opts.groups else None
    group_ids = members.ids if members else {}
    elements = catalogue.elements if catalogue else file_elements()
    label_source = (f"catalogue {Path(catalogue.path).name}" if catalogue else
                    "aspcapStar FPARAM (uncalibrated FERRE fit, opt-in)" if opts.labels == "fparam"
                    else "aspcapStar PARAM (calibrated ASPCAP)")
    zarr_out = file_format(out) == "zarr"
    sink = ZarrSink(out, opts.chunk_stars) if zarr_out else MemorySink(out)
    journal = Journal(partial_paths(out)[1]) if zarr_out else None
    job = {k: v for k, v in asdict(opts).items()  # what decides the output (workers do not)
           if k not in ("overwrite", "resume", "progress", "strict", "workers")}
    state = {"done": 0, "imported": [], "skipped": [], "problems": problems, "kinds": set(), "releases": set(),
             "sources": set()}
    if zarr_out and opts.resume and journal.path.exists():
        if not sink.tmp.exists() and out.exists():  # killed after the output went in place
            journal.remove()
            return json.loads(out.with_name(out.name + ".import.json").read_text())
        for entry in journal.replay([str(f) for f in files], job, out):
            state["done"] = entry["files_done"]
            for key in ("imported", "skipped", "problems"):
                state[key] += entry[key]
            for key in ("kinds", "releases", "sources"):
                state[key] |= set(entry[key])
        sink.truncate(len(state["imported"]))
    elif zarr_out:
        sink.abort()
        journal.start([str(f) for f in files], job)
    seen = {row["apogee_id"]: row["file"] for row in state["imported"]}
    batch, attrs = _Batch(elements), {}
    imported, skipped = state["imported"], state["skipped"]
    marks = {key: len(state[key]) for key in ("imported", "skipped", "problems")}

    def flush(files_done):
        if batch.ids:
            sink.write(batch.dataset(grid, attrs))
            batch.clear()
        if journal is not None:  # what this chunk adds to the report, once its stars are stored
            entry = {"files_done": files_done, "stars": sink.n}
            for key in ("imported", "skipped", "problems"):
                entry[key], marks[key] = state[key][marks[key]:], len(state[key])
            entry.update({key: sorted(state[key]) for key in ("kinds", "releases", "sources")})
            journal.append(entry)

    def skip(path, sid, reason):
        if opts.strict:
            raise DatasetError(f"{path}: {reason}" if not str(reason).startswith(str(path)) else reason)
        skipped.append({"file": str(path), "apogee_id": sid, "reason": reason})

    try:
        todo = list(enumerate(files))[state["done"]:]
        bar = tqdm(total=len(todo), desc="import apogee", unit="file", disable=not opts.progress, leave=False)
        for k, path, result in prepared_files(todo, opts, block=opts.chunk_stars):
            _import_one(path, result, opts, catalogue, group_ids, seen, state, batch, skip)
            bar.update(1)
            if len(batch.ids) >= opts.chunk_stars:
                flush(k + 1)
        bar.close()
        flush(len(files))
        if not imported:
            reasons = [p["reason"] for p in problems] + [s["reason"] for s in skipped]
            _fail(out, "output", f"no star could be imported from {len(files)} file(s) (first reason: "
                  f"{reasons[0] if reasons else 'none'})", "see the reasons above and fix the inputs")
        attrs = {
            **_source_attrs(state),
            "generator_version": f"twinviz {__version__} apogee importer {IMPORTER_VERSION}",
            "source_files": len(files), "stars_imported": len(imported), "stars_skipped": len(skipped) + len(problems),
            "label_source": label_source, "labels_fparam": int(opts.labels == "fparam" and catalogue is None),
            "max_err": opts.max_err, "pixmask_bits": ",".join(opts.pixmask_bits),
            "masked_flux_err": MASKED_FLUX_ERR,
            "continuum": "apStar/apVisit: per-chip Chebyshev, asymmetric sigma clip " + json.dumps(CONTINUUM_DEFAULTS),
            "group_names": json.dumps(members.names) if members and members.names else None,
            "min_membership": opts.min_membership,
        }
        written = sink.finish(attrs)
    except BaseException as exc:  # interrupted or out of resources: a zarr import stays resumable
        if not zarr_out or not isinstance(exc, (KeyboardInterrupt, OSError, MemoryError)):
            sink.abort()
            if journal is not None:
                journal.remove()
        raise
    sources = {}
    for row in imported:
        sources[row["source"]] = sources.get(row["source"], 0) + 1
    report = {
        "output": str(written), "sources": sources, "imported": len(imported), "skipped": len(skipped) + len(problems),
        "files": len(files), "elapsed_s": round(time.perf_counter() - start, 3), "resumed": bool(opts.resume),
        "skipped_files": problems, "skipped_stars": skipped,
        "catalogue_duplicates": catalogue.duplicates if catalogue else [],
        "catalogue_cuts": catalogue.stats if catalogue else {},
        "members": members.summary(seen) if members else {},
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()},
        "attrs": {k: v for k, v in attrs.items() if v is not None}, "stars": imported,
    }
    write_report(out, report)
    if journal is not None:
        journal.remove()
    return report


def _import_one(path, result, opts, catalogue, group_ids, seen, state, batch, skip) -> None:
    """Add the star of one prepared file to ``batch``, or record why not."""
    if isinstance(result, str):  # the file could not be read: its reason
        if opts.strict:
            raise DatasetError(result)
        state["problems"].append({"file": str(path), "reason": result})
        return
    spec, f, e, m = result
    sid = spec.apogee_id
    if sid in seen:
        skip(path, sid, f"duplicate APOGEE_ID {sid} (already imported from {seen[sid]}). Fix: keep one file "
             "per star; aspcapStar files are preferred over apStar, apStar over apVisit")
        return
    if catalogue is not None:
        lab = catalogue.rows.get(sid)
        if lab is None:
            skip(path, sid, f"APOGEE_ID {sid} is not in the catalogue {catalogue.path}. Fix: add a row "
                 "for it, or drop the file")
            return
        if isinstance(lab, str):
            skip(path, sid, lab)
            return
    else:
        lab, reason = labels_from_file(spec, opts.labels)
        if lab is None:
            skip(path, sid, reason)
            return
    if m.all():
        skip(path, sid, "every pixel is masked. Fix: check the file, or raise --max-err")
        return
    seen[sid] = str(path)
    for key, value in (("kinds", spec.kind), ("releases", spec.release), ("sources", spec.source)):
        state[key].add(value)
    batch.add(sid, f, e, m, lab, spec.snr, group_ids.get(sid, -1))
    row = {"apogee_id": sid, "file": str(path), "kind": spec.kind, "source": spec.source,
           "masked_fraction": round(float(m.mean()), 4)}
    if spec.note:
        row["note"] = spec.note
    state["imported"].append(row)


def write_report(out: Path, report: dict) -> None:
    """``<out>.import.json`` (full) and ``<out>.import.md`` (summary), both written atomically."""
    out = Path(out)
    write_json_atomic(out.with_name(out.name + ".import.json"), report)
    lines = [f"# Import report: {out.name}", "",
             f"Imported {report['imported']} stars from {report['files']} files; skipped {report['skipped']}.",
             f"Labels: {report['attrs'].get('label_source')}. Source: {report['attrs'].get('source')}.", ""]
    if report.get("members"):
        lines += ["| cluster | listed | below --min-membership | imported |", "|---|---|---|---|"]
        lines += [f"| {name} | {c['listed']} | {c['below_min_membership']} | {c['imported']} |"
                  for name, c in report["members"].items()] + [""]
    rows = report["skipped_files"] + report["skipped_stars"]
    if rows:
        lines += ["| file | APOGEE_ID | reason |", "|---|---|---|"]
        lines += [f"| {Path(r['file']).name} | {r.get('apogee_id', '')} | {r['reason'].replace('|', '/')} |"
                  for r in rows]
    write_text_atomic(out.with_name(out.name + ".import.md"), "\n".join(lines) + "\n")
