"""The built-in spectral synthesizer: fast, line-list LTE spectra of red giants on the APOGEE grid.

**A controlled testbed, not radiative transfer.** The paper's data came from Turbospectrum with
ATLAS9 model atmospheres. This module replaces that with a physically motivated one-layer
model (see :mod:`twinviz.spectra.atmosphere` and ``docs/synth.md``) that keeps what makes
the twin problem hard — every line responds to chemistry *and* to Teff/logg, non-linearly and
differently from line to line — and runs on a laptop at hundreds of spectra per second. Its
spectra look like APOGEE giants; they are not accurate APOGEE giants. Do not fit real stars
with it.

How a spectrum is made (all vectorised, float32 where it is safe):

1. per star and line: a strength κ (velocity-integrated optical depth, km/s) from abundance,
   Boltzmann excitation, Saha ionisation, molecular equilibrium and the H⁻ continuum; a Doppler
   width b (thermal + microturbulence ξ(logg)) and a damping half width γ (pressure);
2. on a fine grid (4 samples per apStar pixel, uniform in log λ, i.e. in velocity) the optical
   depth τ = Σ κ·φ, with φ a Voigt-like profile: a Gaussian core evaluated per star plus a
   Lorentzian damping wing whose shape is fixed per line and whose amplitude is κγ/π — so all
   lines are added by one sparse matrix product;
3. flux = exp(−τ), then the Gaussian line-spread function (R = 22 500, a fixed kernel in
   log-λ pixels, so a second fixed sparse matrix) sampled at the requested grid's pixels.

Optional, per star (``batch(..., vmicro=, vbroad=, rv=)``; off by default, and then the path
above is untouched): a microturbulence other than ξ(logg), a Gaussian macroturbulence and a
Doppler shift — the last two as one Fourier-space product after the LSF. ``twinviz.spectra.simulation`` adds
populations (giants, dwarfs, mixed), the ``low-d`` chemistry, continuum errors and masks; see
:mod:`twinviz.spectra.nuisances` and ``docs/synth.md`` ("Regimes and nuisances").
"""
from __future__ import annotations

import threading

import numpy as np
import scipy.fft
import scipy.sparse as sp

try:  # the kernel behind ``csr_matrix @ dense``; calling it directly lets us reuse the output
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - private scipy API moved: same result, one allocation more
    def _csr_matvecs(n_row, n_col, n_vecs, indptr, indices, data, x, y):
        y += (sp.csr_matrix((data, indices, indptr), shape=(n_row, n_col))
              @ x.reshape(n_col, n_vecs)).ravel()

from twinviz.spectra import atmosphere as atm
from twinviz.spectra.grid import DEFAULT_GRID, DLOG10_LAMBDA, LOG10_LAMBDA0, RESOLUTION, WavelengthGrid, get_grid
from twinviz.spectra.labels import draw_labels
from twinviz.spectra.linelist import LINELIST_PATH, LINELIST_VERSION, load_linelist
from twinviz.spectra.nuisances import Nuisances

__all__ = ["ELEMENTS", "GENERATOR", "GENERATOR_VERSION", "LINELIST_VERSION", "Nuisances", "Synthesizer",
           "draw_labels", "x_fe_array"]

ELEMENTS = atm.ELEMENTS  # [X/Fe] order of every x_fe array
GENERATOR = "twinviz.synth"
GENERATOR_VERSION = "1.0"  # bump whenever the same labels would give different spectra

C_KMS = 299_792.458
OVERSAMPLE = 4        # fine samples per apStar pixel: b ≥ 1.2 km/s ≈ 1.2 fine samples
CORE_HALF = 12        # Gaussian core half window (fine samples ≈ 12 km/s ≥ 4 b of metals)
H_HALF = 800          # hydrogen window half width (fine samples ≈ 830 km/s ≈ 44 Å)
H_STEP = 4            # hydrogen profiles are evaluated every H_STEP fine samples
WING_TOL = 1e-3       # damping wings are cut (smoothly) where τ would fall below this …
WING_MAX_KMS = 400.0  # … or at ±400 km/s (≈ 21 Å)
TAU_MAX = 60.0        # exp(−60) > 0 in float32: flux stays strictly positive
FLUX_FLOOR = 1e-6
PIXEL_KMS = C_KMS * np.log(10.0) * DLOG10_LAMBDA  # one apStar pixel ≈ 4.14 km/s
FFT_PAD = 64          # continuum ramp (pixels) each side before the broadening/RV FFT
VMICRO_RANGE = (0.3, 4.0)  # per-star ξ (km/s) is clipped here: the Gaussian core window holds ≥ 3 b


def _taper(u):
    """Smooth window on |u| ≤ 1 so that truncated wings end without a step."""
    return np.clip(1.0 - u * u, 0.0, None) ** 2


class Synthesizer:
    """Synthesize continuum-normalised spectra on an APOGEE grid.

    Parameters
    ----------
    grid : grid name (``apogee-aspcap-dr12`` default, ``apogee-aspcap-dr17``, ``apogee-apstar``)
        or a :class:`~twinviz.spectra.grid.WavelengthGrid` that has apStar ``pixels``.
    resolution : resolving power R = λ/FWHM of the Gaussian line-spread function.
    chunk : stars synthesized together in :meth:`batch` (work memory ≈ chunk × 0.5 MB).
    """

    def __init__(self, grid: str | WavelengthGrid = DEFAULT_GRID, *, resolution: float = RESOLUTION,
                 chunk: int = 128):
        self.grid = get_grid(grid)
        if self.grid.pixels is None:
            raise ValueError(f"grid {self.grid.id!r} has no apStar pixel indices; the synthesizer "
                             "works on APOGEE grids (apogee-apstar, apogee-aspcap-dr12/dr17)")
        self.resolution = float(resolution)
        self.chunk = int(chunk)
        lines = load_linelist(LINELIST_PATH)
        self.linelist_version = lines["version"]
        self._setup_fine_grid()
        self._setup_lines(lines)
        self._local = threading.local()

    @property
    def wavelength(self) -> np.ndarray:
        """Vacuum wavelengths of the output pixels, Å (float64)."""
        return self.grid.wavelength

    @property
    def lines(self) -> dict:
        """The line list used on this grid: dict of arrays ``wavelength`` (Å, vacuum), ``species``
        ('Fe', 'CO', 'H' …), ``ion``, ``loggf``, ``chi`` (eV), ``mass`` (amu), ``gamma_ref`` (km/s).
        Handy to mark an element's lines in a plot. Do not modify."""
        return self._lines

    # ------------------------------------------------------------------ set-up
    def _setup_fine_grid(self):
        pixels = np.asarray(self.grid.pixels)
        self._p_lo = int(pixels.min())
        n_pix = int(pixels.max()) + 1 - self._p_lo
        self._out_rows = pixels - self._p_lo
        k = OVERSAMPLE
        # LSF: Gaussian of FWHM λ/R, constant in ln λ, so a fixed kernel in pixels. Output pixel
        # j (relative to p_lo) averages fine samples K·j … K·j + K + 2·pad − 1.
        sigma_px = (1.0 / self.resolution) / (np.log(10.0) * DLOG10_LAMBDA) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        pad = int(np.ceil(4.0 * sigma_px * k))
        offsets = (np.arange(k + 2 * pad) - pad + 0.5) / k - 0.5  # tap position − pixel centre (px)
        taps = np.exp(-0.5 * (offsets / sigma_px) ** 2)
        taps /= taps.sum()
        rows = self._out_rows
        # A sparse matrix rather than a dense/BLAS product: its fixed summation order makes a
        # spectrum bit-for-bit the same whether synthesized alone or in a batch.
        self._lsf_matrix = sp.csr_matrix(
            (np.tile(taps, rows.size).astype(np.float32),
             (np.repeat(np.arange(rows.size), taps.size),
              (k * rows[:, None] + np.arange(taps.size)[None, :]).ravel())),
            shape=(rows.size, k * n_pix + 2 * pad))
        self._pad, self._n_pix = pad, n_pix
        self._n_fine = k * n_pix + 2 * pad
        self._dv = C_KMS * np.log(10.0) * DLOG10_LAMBDA / k  # km/s per fine sample

    def _fine_position(self, wavelength):
        """Fractional fine-grid index of a wavelength (Å)."""
        x = (np.log10(wavelength) - LOG10_LAMBDA0) / DLOG10_LAMBDA
        return (x - self._p_lo + 0.5) * OVERSAMPLE - 0.5 + self._pad

    def _setup_lines(self, lines):
        pos = self._fine_position(lines["wavelength"])
        reach = WING_MAX_KMS / self._dv + H_HALF
        keep = (pos > -reach) & (pos < self._n_fine + reach)
        self._lines = {k: v[keep] for k, v in lines.items() if isinstance(v, np.ndarray)}
        pos = pos[keep]
        is_h = self._lines["species"] == "H"
        self._metal, self._hydrogen = np.flatnonzero(~is_h), np.flatnonzero(is_h)
        ref = atm.REFERENCE
        # Fixed core width of each line's Lorentzian wing: its Doppler width in the reference giant.
        self._gamma_core = atm.doppler_width(ref["teff"], ref["logg"], self._lines["mass"][self._metal])

        rows, cols, vals = [], [], []
        # 1. Gaussian cores: one column per (line, offset), value computed per star.
        centre = np.rint(pos[self._metal]).astype(np.int64)
        off = np.arange(-CORE_HALF, CORE_HALF + 1)
        idx = centre[:, None] + off[None, :]
        self._core_dv = ((idx - pos[self._metal][:, None]) * self._dv).astype(np.float32)
        rows.append(idx.ravel()); cols.append(np.arange(idx.size)); vals.append(np.ones(idx.size))
        n_col = idx.size
        # 2. Hydrogen: the full profile computed per star, but only every H_STEP fine samples
        # (the lines are ≥ 9 km/s wide); the matrix interpolates linearly in between.
        centre = np.rint(pos[self._hydrogen]).astype(np.int64)
        off = np.arange(-H_HALF, H_HALF + 1, H_STEP)
        knots = centre[:, None] + off[None, :]
        self._h_dv = ((knots - pos[self._hydrogen][:, None]) * self._dv).astype(np.float32)
        self._h_taper = _taper(self._h_dv / ((H_HALF + H_STEP) * self._dv)).astype(np.float32)
        for shift in range(-H_STEP + 1, H_STEP):
            rows.append((knots + shift).ravel()); cols.append(n_col + np.arange(knots.size))
            vals.append(np.full(knots.size, 1.0 - abs(shift) / H_STEP))
        n_col += knots.size
        # 3. Damping wings: one column per line, fixed shape taper/(Δv² + γc²), amplitude per star.
        half = self._wing_half_width()
        for j, line in enumerate(self._metal):
            n_half = int(np.ceil(half[j] / self._dv))
            idx = np.rint(pos[line]).astype(np.int64) + np.arange(-n_half, n_half + 1)
            dv = (idx - pos[line]) * self._dv
            rows.append(idx); cols.append(np.full(idx.size, n_col + j))
            vals.append(_taper(dv / half[j]) / (dv * dv + self._gamma_core[j] ** 2))
        rows, cols, vals = (np.concatenate(a) for a in (rows, cols, vals))
        inside = (rows >= 0) & (rows < self._n_fine)
        self._profile_matrix = sp.csr_matrix(
            (vals[inside].astype(np.float32), (rows[inside], cols[inside])),
            shape=(self._n_fine, n_col + self._metal.size))

    def _wing_half_width(self):
        """Half width (km/s) of each metal/molecular line's damping wing: where its wing τ
        drops below WING_TOL for the strongest-lined star of a generous label envelope."""
        t, g = np.meshgrid([3500.0, 4000.0, 4750.0, 5500.0, 6000.0], [0.0, 1.5, 3.0, 4.5, 5.0])
        t, g = t.ravel(), g.ravel()
        fe = np.full(t.size, 0.5)
        x = np.full((t.size, len(ELEMENTS)), 0.8)
        # bare excitation (stronger hot lines): the envelope, and so the default spectra, as before
        coef = self._wing_amplitude(*self._line_physics(t, g, fe, x, self._metal, soften_excitation=False))
        half = np.sqrt(coef.max(axis=0) / WING_TOL)
        return np.clip(half, CORE_HALF * self._dv, WING_MAX_KMS)

    def _line_physics(self, teff, logg, fe_h, x_fe, which, xi=None, soften_excitation=True):
        """κ (km/s), b (km/s), γ (km/s) of the lines ``which`` for each star: (N, L) arrays.
        ``xi``: per-star microturbulence (N,) km/s, or None for ξ(logg)."""
        ll = {k: v[which] for k, v in self._lines.items()}
        state = atm.chemistry_state(teff, logg, fe_h, x_fe)
        kappa = 10.0 ** atm.log_line_strength(state, teff, ll["species"], ll["ion"], ll["loggf"], ll["chi"],
                                              soften_excitation)
        b = atm.doppler_width(teff[:, None], logg[:, None], ll["mass"], None if xi is None else xi[:, None])
        gamma = atm.damping_width(teff, logg, fe_h, ll["gamma_ref"], ll["species"])
        return kappa, b, gamma

    def _wing_amplitude(self, kappa, b, gamma):
        # φ = [G(b) + (γ/π)/(Δv² + γc²)] / (1 + γ/γc): the extra area of the wing term is
        # divided out so that κ stays the line's total strength.
        return kappa * gamma / (np.pi * (1.0 + gamma / self._gamma_core))

    # ------------------------------------------------------------------ synthesis
    def _workspace(self, n):
        """Work arrays for a chunk of n stars, kept between calls: re-using them avoids the page
        faults of fresh multi-MB allocations, which otherwise cost as much as the arithmetic."""
        work = getattr(self._local, "work", None)  # per thread: app sessions may share a Synthesizer
        if work is None or work["columns"].shape[1] != n:
            work = self._local.work = {
                "columns": np.empty((self._profile_matrix.shape[1], n), dtype=np.float32),
                "tau": np.empty((self._n_fine, n), dtype=np.float32),
                "flux": np.empty((self._lsf_matrix.shape[0], n), dtype=np.float32),
            }
        return work

    def _synthesize_chunk(self, teff, logg, fe_h, x_fe, out, xi=None, zeta=None, rv=None):
        """Write the spectra of one chunk of stars into ``out`` (n, n_pixel).

        Optional per-star nuisances (arrays (n,) or None): ``xi`` microturbulence, ``zeta``
        Gaussian macroturbulence, ``rv`` radial velocity, all km/s. With all None this is the
        default path, unchanged bit for bit."""
        n = teff.size
        work = self._workspace(n)
        columns, tau = work["columns"], work["tau"]
        n_metal, n_core = self._metal.size, self._core_dv.size
        n_h = self._h_dv.size

        kappa, b, gamma = self._line_physics(teff, logg, fe_h, x_fe, self._metal, xi)
        amp = (kappa / (b * np.sqrt(np.pi) * (1.0 + gamma / self._gamma_core))).T.astype(np.float32)
        neg_inv_b2 = (-1.0 / (b * b)).T.astype(np.float32)
        core = columns[:n_core].reshape(n_metal, -1, n)
        np.multiply((self._core_dv ** 2)[:, :, None], neg_inv_b2[:, None, :], out=core)
        np.exp(core, out=core)
        core *= amp[:, None, :]
        columns[n_core + n_h:] = self._wing_amplitude(kappa, b, gamma).T

        kh, bh, gh = (a.T.astype(np.float32) for a in self._line_physics(teff, logg, fe_h, x_fe, self._hydrogen, xi))
        eta = gh / (gh + bh)  # pseudo-Voigt Lorentz fraction: Stark-dominated for broad lines
        dv2 = (self._h_dv ** 2)[:, :, None]
        hyd = (1.0 - eta[:, None, :]) * np.exp(-dv2 / (bh * bh)[:, None, :]) / (np.sqrt(np.pi) * bh[:, None, :])
        hyd += eta[:, None, :] * (gh / np.pi)[:, None, :] / (dv2 + (gh * gh)[:, None, :])
        hyd *= kh[:, None, :] * self._h_taper[:, :, None]
        columns[n_core:n_core + n_h] = hyd.reshape(-1, n)

        # τ = profile matrix @ columns, into the kept buffer (what scipy's ``@`` does inside).
        tau.fill(0.0)
        m = self._profile_matrix
        _csr_matvecs(m.shape[0], m.shape[1], n, m.indptr, m.indices, m.data, columns.ravel(), tau.ravel())
        np.minimum(tau, TAU_MAX, out=tau)
        np.negative(tau, out=tau)
        flux_fine = np.exp(tau, out=tau)

        if zeta is not None or rv is not None:
            self._broadened_shifted(flux_fine, n, zeta, rv, out)
            return
        # LSF, sampled at the output pixels only.
        flux = work["flux"]
        flux.fill(0.0)
        m = self._lsf_matrix
        _csr_matvecs(m.shape[0], m.shape[1], n, m.indptr, m.indices, m.data, flux_fine.ravel(), flux.ravel())
        np.clip(flux.T, FLUX_FLOOR, 1.0, out=out)

    def _full_lsf(self):
        """The LSF onto every apStar pixel from the first to the last of the grid (chip gaps
        included): the same taps as the default LSF, so the grid's rows are the same sums."""
        m = getattr(self, "_lsf_full_matrix", None)
        if m is None:
            k, pad = OVERSAMPLE, self._pad
            taps = self._lsf_matrix.data[:k + 2 * pad]  # every row holds the same taps
            rows = np.arange(self._n_pix)
            m = self._lsf_full_matrix = sp.csr_matrix(
                (np.tile(taps, rows.size), (np.repeat(rows, taps.size),
                                            (k * rows[:, None] + np.arange(taps.size)[None, :]).ravel())),
                shape=(self._n_pix, self._n_fine))
        return m

    def _broadened_shifted(self, flux_fine, n, zeta, rv, out):
        """LSF onto all pixels, then per-star Gaussian macroturbulence and Doppler shift as one
        multiplication in Fourier space, then the grid's pixels into ``out`` (n, n_pixel).

        Convolutions commute, so broadening after the LSF equals broadening before it; after it
        the spectrum is band-limited at the pixel scale (the Gaussian LSF, σ ≈ 1.4 px, passes
        < 10⁻⁴ of the Nyquist frequency), so pixel sampling loses nothing and the sub-pixel shift
        is exact band-limited interpolation of the model. Both ends ramp smoothly to the
        continuum over FFT_PAD pixels so that the FFT's wrap-around adds no step."""
        m = self._full_lsf()
        pad, n_pix = FFT_PAD, self._n_pix
        length = scipy.fft.next_fast_len(n_pix + 2 * pad, real=True)
        work = self._workspace(n)
        x = work.get("fft")
        if x is None or x.shape[0] != length:
            x = work["fft"] = np.empty((length, n), dtype=np.float32)
        full = x[pad:pad + n_pix]
        full.fill(0.0)
        _csr_matvecs(m.shape[0], m.shape[1], n, m.indptr, m.indices, m.data, flux_fine.ravel(), full.reshape(-1))
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(pad) / pad)).astype(np.float32)[:, None]  # 0 → 1
        x[:pad] = 1.0 + (full[0] - 1.0) * ramp
        x[pad + n_pix:pad + n_pix + pad] = 1.0 + (full[-1] - 1.0) * ramp[::-1]
        x[pad + n_pix + pad:] = 1.0
        spec = scipy.fft.rfft(x, axis=0)  # complex64
        freq = scipy.fft.rfftfreq(length).astype(np.float32)[:, None]  # cycles per pixel
        # transfer function: real exp and cos/sin in float32 (a complex exp is 4× slower)
        if zeta is not None:
            # Gray's isotropic Gaussian macroturbulence exp(−(v/ζ)²): σ = ζ/√2
            sigma_px = np.asarray(zeta, dtype=np.float64) / (np.sqrt(2.0) * PIXEL_KMS)
            gain = np.exp((freq * freq) * (-2.0 * np.pi ** 2 * sigma_px ** 2).astype(np.float32)[None, :])
        if rv is not None:
            beta = np.asarray(rv, dtype=np.float64) / C_KMS
            shift_px = 0.5 * np.log((1.0 + beta) / (1.0 - beta)) / (np.log(10.0) * DLOG10_LAMBDA)
            phase = freq * (-2.0 * np.pi * shift_px).astype(np.float32)[None, :]
            h = np.empty(spec.shape, dtype=np.complex64)
            np.cos(phase, out=h.real)
            np.sin(phase, out=h.imag)
            if zeta is not None:
                h *= gain
            spec *= h
        else:
            spec *= gain
        y = scipy.fft.irfft(spec, n=length, axis=0)[pad:pad + n_pix]
        np.clip(y[self._out_rows].T, FLUX_FLOOR, 1.0, out=out)

    def batch(self, teff, logg, fe_h, x_fe, *, vmicro=None, vbroad=None, rv=None) -> np.ndarray:
        """Spectra of N stars: teff (N,) K, logg (N,) dex, fe_h (N,) dex, x_fe (N, 17) dex
        ([X/Fe] in :data:`ELEMENTS` order). Returns float32 (N, n_pixel) normalised flux in (0, 1].

        Optional per-star nuisances, each (N,) km/s or None (the default, unchanged spectra):
        ``vmicro`` the microturbulence ξ instead of ξ(logg) (clipped to VMICRO_RANGE);
        ``vbroad`` the characteristic velocity ζ of a Gaussian macroturbulence kernel
        exp(−(v/ζ)²); ``rv`` a radial velocity (positive = redshift) left in the spectrum."""
        teff = np.atleast_1d(np.asarray(teff, dtype=np.float64))
        logg = np.atleast_1d(np.asarray(logg, dtype=np.float64))
        fe_h = np.atleast_1d(np.asarray(fe_h, dtype=np.float64))
        x_fe = np.atleast_2d(np.asarray(x_fe, dtype=np.float64))
        n = teff.size
        if logg.shape != (n,) or fe_h.shape != (n,) or x_fe.shape != (n, len(ELEMENTS)):
            raise ValueError(f"batch() needs teff, logg, fe_h of shape (N,) and x_fe of shape (N, "
                             f"{len(ELEMENTS)}); got {teff.shape}, {logg.shape}, {fe_h.shape}, {x_fe.shape}")
        for name, arr in (("teff", teff), ("logg", logg), ("fe_h", fe_h), ("x_fe", x_fe)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or inf")
        if np.any(teff <= 0):
            raise ValueError("teff must be positive (K)")
        extra = {}
        for name, key, arr in (("vmicro", "xi", vmicro), ("vbroad", "zeta", vbroad), ("rv", "rv", rv)):
            if arr is None:
                continue
            arr = np.broadcast_to(np.asarray(arr, dtype=np.float64), (n,))
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or inf")
            if name == "vbroad" and np.any(arr < 0):
                raise ValueError("vbroad must be ≥ 0 km/s")
            if name == "rv" and np.any(np.abs(arr) > 1000.0):
                raise ValueError("rv must be within ±1000 km/s (a residual, not a systemic velocity)")
            extra[key] = np.clip(arr, *VMICRO_RANGE) if name == "vmicro" else arr
        out = np.empty((n, self.grid.n_pixels), dtype=np.float32)
        for start in range(0, n, self.chunk):
            sl = slice(start, start + self.chunk)
            self._synthesize_chunk(teff[sl], logg[sl], fe_h[sl], x_fe[sl], out[sl],
                                   **{k: v[sl] for k, v in extra.items()})
        return out

    def spectrum(self, teff: float, logg: float, fe_h: float = 0.0, x_fe=None, *, vmicro=None,
                 vbroad=None, rv=None) -> np.ndarray:
        """One spectrum: teff K, logg dex, fe_h [Fe/H] dex, x_fe [X/Fe] dex as an array (17,) in
        :data:`ELEMENTS` order or a dict {element: value} (missing elements 0; None = solar).
        ``vmicro``, ``vbroad``, ``rv``: optional nuisances in km/s, see :meth:`batch`.
        Returns float32 (n_pixel,)."""
        extra = {k: None if v is None else [v] for k, v in (("vmicro", vmicro), ("vbroad", vbroad), ("rv", rv))}
        return self.batch([teff], [logg], [fe_h], [x_fe_array(x_fe)], **extra)[0]


def x_fe_array(x_fe) -> np.ndarray:
    """[X/Fe] (dex) as a (17,) float64 array in ELEMENTS order from an array, a dict or None."""
    if x_fe is None:
        return np.zeros(len(ELEMENTS))
    if isinstance(x_fe, dict):
        unknown = set(x_fe) - set(ELEMENTS)
        if unknown:
            raise ValueError(f"unknown elements {sorted(unknown)}; known: {', '.join(ELEMENTS)}")
        return np.array([float(x_fe.get(el, 0.0)) for el in ELEMENTS])
    arr = np.asarray(x_fe, dtype=np.float64)
    if arr.shape != (len(ELEMENTS),):
        raise ValueError(f"x_fe must have shape ({len(ELEMENTS)},) in order {ELEMENTS}; got {arr.shape}")
    return arr
