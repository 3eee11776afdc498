"""DR17-shaped stand-in files for tests, benchmarks and the real-data walk-through.

No DR17 aspcapStar or allStar file ships with twinviz, and one real apStar file is not a survey.
These writers build files **in the layout of the SDSS DR17 data model** (the HDUs, dtypes and
column names :mod:`.fits`, :mod:`.catalogue` and :mod:`.members` read) around spectra from the
built-in synthesizer (:mod:`twinviz.spectra.simulation`, open-cluster-like groups on the apStar
grid). They are synthetic: the spectra are the synthesizer's, the continuum a smooth slope with
a per-chip throughput, the noise Gaussian at each star's S/N, the pixel mask random bits. Every
file says so in its primary header (``TWINVIZ = 'synthetic stand-in'``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinviz.spectra.grid import APSTAR_NPIX, DLOG10_LAMBDA, LOG10_LAMBDA0, apstar_wavelength, get_grid
from twinviz.spectra.apogee.bits import PIXMASK
from twinviz.spectra.apogee.fits import require_astropy

__all__ = ["StandIns", "make_dr17_folder", "write_allstar", "write_apstar_dr17", "write_aspcapstar_dr17"]

STANDIN = "synthetic stand-in"
# apStar pixels each chip reaches in the real DR17 file (BMIN…BMAX, GMIN…GMAX, RMIN…RMAX)
_CHIPS = ((202, 3324), (3538, 6130), (6295, 8382))


def _primary(fits, apogee_id: str, snr: float, extra: dict | None = None):
    head = fits.Header()
    for key, value in (("CRVAL1", LOG10_LAMBDA0), ("CDELT1", DLOG10_LAMBDA), ("CRPIX1", 1), ("NWAVE", APSTAR_NPIX),
                       ("OBJID", apogee_id), ("SNR", float(snr)), ("NVISITS", 1), ("STARFLAG", 0),
                       ("TWINVIZ", STANDIN), *(extra or {}).items()):
        head[key] = value
    return fits.PrimaryHDU(header=head)


def _image(fits, data, bunit: str):
    hdu = fits.ImageHDU(data)
    for key, value in (("CRVAL1", LOG10_LAMBDA0), ("CDELT1", DLOG10_LAMBDA), ("CRPIX1", 1),
                       ("CTYPE1", "LOG-LINEAR"), ("BUNIT", bunit)):
        hdu.header[key] = value
    return hdu


def observed_apstar(norm_flux, snr: float, rng, scale: float = 600.0):
    """A normalised spectrum (apStar grid) as apStar stores it: times a continuum, with noise at
    ``snr``, zero outside the chips, and a PIXMASK with random bits. Returns flux, err, mask."""
    wave = apstar_wavelength()
    cont = scale * (wave / 16000.0) ** -3.0
    for lo, hi in _CHIPS:
        x = np.linspace(-1, 1, hi - lo)
        cont[lo:hi] *= 1.0 + 0.08 * x - 0.05 * x * x + rng.normal(0, 0.02)
    err = cont / snr
    flux = np.asarray(norm_flux, np.float64) * cont + rng.normal(0.0, 1.0, APSTAR_NPIX) * err
    mask = np.zeros(APSTAR_NPIX, np.int64)
    for name, rate in (("SIG_SKYLINE", 0.02), ("PERSIST_LOW", 0.03), ("BADPIX", 0.003), ("CRPIX", 0.002),
                       ("SIG_TELLURIC", 0.03)):
        mask[rng.random(APSTAR_NPIX) < rate] |= 1 << PIXMASK[name]
    off = np.ones(APSTAR_NPIX, bool)
    for lo, hi in _CHIPS:
        off[lo:hi] = False
    flux[off], err[off] = 0.0, 0.0
    mask[off] |= 1 << PIXMASK["BADPIX"]
    return flux, err, mask


def write_apstar_dr17(path, apogee_id: str, norm_flux, snr: float, rng, header: dict | None = None) -> Path:
    """An apStar DR17 file: 11 HDUs, rows (combined, visit) of flux/error/int64 PIXMASK."""
    fits = require_astropy()
    flux, err, mask = observed_apstar(norm_flux, snr, rng)
    two = lambda a: np.stack([a, a])  # noqa: E731 - combined row, then the one visit
    sky = np.full((2, APSTAR_NPIX), 50.0)
    visit = fits.BinTableHDU.from_columns([fits.Column("filename", "72A", array=["apVisit-dr17-0-0-0.fits"]),
                                           fits.Column("snr", "D", array=[snr]),
                                           fits.Column("vrel", "D", array=[0.0])])
    hdul = fits.HDUList([_primary(fits, apogee_id, snr, header),
                         _image(fits, two(flux), "Flux (10^-17 erg/s/cm^2/Ang)"),
                         _image(fits, two(err), "Err (10^-17 erg/s/cm^2/Ang)"),
                         _image(fits, two(mask).astype(np.int64), "Pixel bitmask"),
                         _image(fits, sky, "Sky"), _image(fits, sky / 10, "Sky error"),
                         _image(fits, np.ones((2, APSTAR_NPIX)), "Telluric"),
                         _image(fits, np.full((2, APSTAR_NPIX), 0.01), "Telluric error"),
                         fits.ImageHDU(), visit, visit.copy()])
    hdul.writeto(path, overwrite=True)
    return Path(path)


def write_aspcapstar_dr17(path, apogee_id: str, norm_flux, snr: float, rng, teff: float, logg: float) -> Path:
    """An aspcapStar DR17 file: flux, error and best fit on the 7514 pixels of the
    apogee-aspcap-dr17 grid, and the one-row ASPCAP table (APOGEE_ID, SNR, PARAM, FPARAM, PARAMFLAG,
    ASPCAPFLAG)."""
    fits = require_astropy()
    pix = get_grid("apogee-aspcap-dr17").pixels
    err = np.full(pix.size, 1.0 / snr, np.float32)
    flux = (np.asarray(norm_flux, np.float64)[pix] + rng.normal(0, 1.0 / snr, pix.size)).astype(np.float32)
    param = np.array([teff, logg, 0.1, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0])
    table = fits.BinTableHDU.from_columns([
        fits.Column("APOGEE_ID", "18A", array=[apogee_id]), fits.Column("SNR", "E", array=[snr]),
        fits.Column("PARAM", "9E", array=[param]), fits.Column("FPARAM", "9E", array=[param]),
        fits.Column("PARAMFLAG", "9J", array=[np.zeros(9, np.int32)]),
        fits.Column("ASPCAPFLAG", "K", array=[0])])
    hdul = fits.HDUList([_primary(fits, apogee_id, snr), fits.ImageHDU(flux), fits.ImageHDU(err),
                         fits.ImageHDU(np.asarray(norm_flux, np.float32)[pix]), table])
    hdul.writeto(path, overwrite=True)
    return Path(path)


def write_allstar(path, rows: list[dict], elements=("MG", "SI", "NI")) -> Path:
    """A DR17 allStar-shaped catalogue (FITS, HDU 1). ``rows``: dicts with APOGEE_ID, TEFF, LOGG
    and optional TEFF_ERR, LOGG_ERR, FE_H, FE_H_FLAG, <X>_FE, <X>_FE_FLAG, ASPCAPFLAG, STARFLAG,
    EXTRATARG (missing numbers are NaN, missing flags 0)."""
    fits = require_astropy()

    def col(name, fmt, default):
        return fits.Column(name, fmt, array=[r.get(name, default) for r in rows])

    cols = [col("APOGEE_ID", "18A", ""), col("TELESCOPE", "8A", "apo25m"), col("FIELD", "16A", "standin")]
    cols += [col(n, "E", np.nan) for n in ("TEFF", "TEFF_ERR", "LOGG", "LOGG_ERR", "FE_H")]
    cols += [col("FE_H_FLAG", "J", 0)]
    for el in elements:
        cols += [col(f"{el}_FE", "E", np.nan), col(f"{el}_FE_FLAG", "J", 0)]
    cols += [col("ASPCAPFLAG", "K", 0), col("STARFLAG", "K", 0), col("EXTRATARG", "I", 0)]
    fits.BinTableHDU.from_columns(cols).writeto(path, overwrite=True)
    return Path(path)


@dataclass
class StandIns:
    """What :func:`make_dr17_folder` wrote: the spectra folder, the catalogue, the membership
    table, and per star its id, cluster name (None for field stars) and labels."""

    folder: Path
    catalogue: Path
    members: Path
    stars: list


def make_dr17_folder(root, n_clusters: int = 4, sizes=(4, 6), field_fraction: float = 0.3, seed: int = 0,
                     snr: float = 150.0, aspcap_every: int = 4, extra_rows=()) -> StandIns:
    """A survey-like folder of DR17 stand-ins: open-cluster members and field giants
    (:func:`~twinviz.spectra.simulation.simulate` with ``group_sizes``), every ``aspcap_every``-th
    star as an aspcapStar file, the others as apStar files; an allStar catalogue with their labels
    (and label errors), and a membership table with probabilities (members 0.7–1.0, plus one
    field star per cluster listed at probability 0.1 — a non-member the cut must drop).
    ``extra_rows`` are appended to the catalogue (e.g. rows for real files put in the folder)."""
    from twinviz.spectra.simulation import simulate

    root = Path(root)
    folder = root / "spectra"
    folder.mkdir(parents=True, exist_ok=True)
    ds = simulate(n_clusters, seed=seed, grid="apogee-apstar", group_sizes=tuple(sizes),
                  field_fraction=field_fraction)
    rng = np.random.default_rng([seed, 17])
    elements = [e for e in ("Mg", "Si", "Ni") if e in list(ds.element.values)]
    n_clusters_real = int(ds.attrs.get("n_clusters", n_clusters))
    stars, rows, members = [], [], []
    for i in range(ds.sizes["star"]):
        sid = f"2M{19000000 + seed * 10000 + i:08d}+{5000000 + i:07d}"
        group = int(ds.group.values[i])
        cluster = f"SC{group:02d}" if group < n_clusters_real else None
        teff, logg = float(ds.teff.values[i]), float(ds.logg.values[i])
        norm = ds.flux.values[i]
        if aspcap_every and i % aspcap_every == 0:
            write_aspcapstar_dr17(folder / f"aspcapStar-dr17-{sid}.fits", sid, norm, snr, rng, teff, logg)
        else:
            write_apstar_dr17(folder / f"apStar-dr17-{sid}.fits", sid, norm, snr, rng)
        row = {"APOGEE_ID": sid, "TEFF": teff + rng.normal(0, 30), "TEFF_ERR": 30.0,
               "LOGG": logg + rng.normal(0, 0.05), "LOGG_ERR": 0.05, "FE_H": float(ds.fe_h.values[i])}
        for el in elements:
            row[f"{el.upper()}_FE"] = float(ds.x_fe.sel(element=el).values[i])
        rows.append(row)
        if cluster:
            members.append((sid, cluster, round(float(rng.uniform(0.7, 1.0)), 3)))
        stars.append({"apogee_id": sid, "cluster": cluster, "teff": teff, "logg": logg})
    field = [s["apogee_id"] for s in stars if s["cluster"] is None]
    for k, name in enumerate(sorted({m[1] for m in members})):
        if k < len(field):
            members.append((field[k], name, 0.1))
    catalogue = write_allstar(root / "allStar-dr17-standin.fits", rows + list(extra_rows),
                              [e.upper() for e in elements])
    table = root / "members.csv"
    table.write_text("APOGEE_ID,CLUSTER,membership\n" + "".join(f"{a},{c},{p}\n" for a, c, p in members))
    return StandIns(folder, catalogue, table, stars)
