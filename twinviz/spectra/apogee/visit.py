"""One APOGEE visit (``apVisit-<apred>-<plate>-<mjd>-<fiber>.fits``) moved onto the apStar grid.

An apVisit file holds a single visit in the observed frame: HDU 1 flux, 2 error (both
10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹), 3 APOGEE_PIXMASK (int16), 4 the vacuum wavelength of every pixel (Å);
each is 3 chips × 4096 pixels, wavelength *decreasing* along a chip. HDUs 5–8 are sky and
telluric, 9–10 wavelength and LSF coefficients, and HDU 11 a one-row table with APOGEE_ID,
SNR, STARFLAG and the visit's radial velocities (VREL, VHELIO, BC).

What :func:`resample_visit` does (twinviz's own code):

1. **Rest frame.** λ_rest = λ_obs / (1 + VREL/c): VREL is the star's velocity relative to the
   observer at that visit (VHELIO = VREL + BC), the shift the apStar combination also removes.
2. **Resample by pixel overlap** onto the apStar grid (log10 λ = 4.179 + 6·10⁻⁶ i). Each visit
   pixel spans the interval between the midpoints to its neighbours (in log λ); each apStar
   pixel gets the overlap-weighted mean of the visit pixels it overlaps, f_j = Σ w_ij f_i / Σ w_ij
   (w_ij = overlap length). This conserves flux density and never extrapolates.
3. **Errors**: f_j is a linear combination of independent pixels, so σ_j² = Σ w_ij² σ_i² / (Σ w_ij)²
   exactly. Neighbouring apStar pixels share visit pixels, so their errors are correlated; the
   covariance is not stored (σ_j alone understates the noise of a sum over pixels by up to ~√2).
4. **Masks**: the PIXMASK of an apStar pixel is the bitwise OR of the masks of every visit pixel
   that overlaps it; an apStar pixel not fully covered by one chip (chip gaps and ends), or
   overlapping a visit pixel with non-finite flux or error ≤ 0, gets flux 0 and error 0, which
   the importer masks.

The spectrum is then continuum-normalised and masked like an apStar spectrum. A visit has the
S/N of one visit: where the star has an apStar file (all its visits combined), import that.
"""
from __future__ import annotations

import numpy as np

from twinviz.spectra.grid import APSTAR_NPIX, DLOG10_LAMBDA, LOG10_LAMBDA0
from twinviz.spectra.apogee import ApogeeFileError

__all__ = ["C_KM_S", "resample_visit", "visit_vrel"]

C_KM_S = 299_792.458
_MAX_VREL = 2000.0  # km/s: anything larger is not a stellar radial velocity


def _edges(logw: np.ndarray) -> np.ndarray:
    """Pixel edges (n+1) from ascending pixel centres (n): midpoints, ends extended by half a step."""
    mid = 0.5 * (logw[1:] + logw[:-1])
    return np.concatenate(([logw[0] - (mid[0] - logw[0])], mid, [logw[-1] + (logw[-1] - mid[-1])]))


def _chip_onto_grid(logw, flux, err, mask, out_edges):
    """Overlap-rebin one chip (ascending ``logw``) onto the output pixels; returns the output
    pixel indices covered and their flux, error, mask and validity."""
    edges = _edges(logw)
    lo, hi = edges[0], edges[-1]
    first = int(np.searchsorted(out_edges, lo, side="left"))  # first output left edge ≥ lo
    last = int(np.searchsorted(out_edges, hi, side="right")) - 1  # last output right edge ≤ hi
    j = np.arange(first, last)  # output pixels with both edges inside the chip
    if j.size == 0:
        return j, np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0, bool)
    a, b = out_edges[j], out_edges[j + 1]
    width_in = np.diff(edges)
    k_max = int(np.ceil(DLOG10_LAMBDA / width_in.min())) + 2
    i0 = np.searchsorted(edges, a, side="right") - 1
    sw = np.zeros(j.size)
    swf = np.zeros(j.size)
    sw2v = np.zeros(j.size)
    m = np.zeros(j.size, np.int64)
    valid = np.ones(j.size, bool)
    good_in = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    for k in range(k_max):
        i = np.clip(i0 + k, 0, logw.size - 1)
        w = np.minimum(edges[i + 1], b) - np.maximum(edges[i], a)
        w = np.where((i0 + k < logw.size) & (w > 0), w, 0.0)
        hit = w > 0
        f_i = np.where(good_in[i], flux[i], 0.0)
        e_i = np.where(good_in[i], err[i], 0.0)
        sw += w
        swf += w * f_i
        sw2v += w * w * e_i * e_i
        m |= np.where(hit, mask[i], 0)
        valid &= ~hit | good_in[i]
    covered = np.abs(sw - (b - a)) <= 1e-9 * (b - a)
    valid &= covered & (sw > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(valid, swf / sw, 0.0)
        e = np.where(valid, np.sqrt(sw2v) / sw, 0.0)
    return j, f, e, m, valid


def resample_visit(wave_obs, flux, err, mask, vrel_km_s: float):
    """Shift one visit to the rest frame and resample it onto the 8575-pixel apStar grid.

    Parameters
    ----------
    wave_obs, flux, err, mask : (n_chip, n_pix) observed vacuum wavelength (Å), flux, 1-σ error
        and APOGEE_PIXMASK of every pixel (any order along a chip)
    vrel_km_s : the visit's radial velocity relative to the observer (km/s)

    Returns ``(flux, err, pixmask)`` on the apStar grid: float64, float64, int64; pixels not
    covered (or touching an unusable visit pixel) have flux 0 and error 0.
    """
    wave_obs = np.atleast_2d(np.asarray(wave_obs, np.float64))
    flux, err = np.atleast_2d(np.asarray(flux, np.float64)), np.atleast_2d(np.asarray(err, np.float64))
    mask = np.atleast_2d(np.asarray(mask)).astype(np.int64)
    out_edges = LOG10_LAMBDA0 + DLOG10_LAMBDA * (np.arange(APSTAR_NPIX + 1) - 0.5)
    f_out, e_out = np.zeros(APSTAR_NPIX), np.zeros(APSTAR_NPIX)
    m_out = np.zeros(APSTAR_NPIX, np.int64)
    shift = np.log10(1.0 + vrel_km_s / C_KM_S)
    for c in range(wave_obs.shape[0]):
        logw = np.log10(wave_obs[c]) - shift
        order = np.argsort(logw)
        j, f, e, m, valid = _chip_onto_grid(logw[order], flux[c][order], err[c][order], mask[c][order], out_edges)
        f_out[j], e_out[j], m_out[j] = f, e, m
    return f_out, e_out, m_out


def visit_vrel(path, table, head) -> float:
    """The visit's VREL (km/s) from its table (HDU 11), else the VRAD header keyword; refuses
    a missing or unphysical value, naming the product to import instead."""
    cols = {c.upper(): c for c in table.columns.names} if table is not None else {}
    value = table.field(cols["VREL"])[0] if "VREL" in cols else head.get("VRAD")
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v) or abs(v) > _MAX_VREL:
        raise ApogeeFileError(path, "HDU11 VREL", f"has no usable radial velocity ({value!r}), so the visit "
                              "cannot be moved to the rest frame",
                              "import this star's apStar file (its visits combined in the rest frame) instead")
    return v
