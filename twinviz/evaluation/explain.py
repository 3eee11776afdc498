"""Why are two stars twins (or not)? The chemical-difference spectrum and the lines that carry it.

Decoding both stars' latents at the *same* (Teff, logg), D(z_A, u) − D(z_B, u) keeps only what
the latent holds — chemistry — and drops the temperature/gravity difference that dominates the
raw flux difference (docs/evaluation.md, "Why are these twins"). For true twins it is near zero;
where one element differs, that element's lines stand out.

Peaks of |difference| are labelled with a line of the synthesizer's line list
(:mod:`twinviz.spectra.linelist`, the only list twinviz ships): among the lines within
:data:`MATCH_WINDOW_A` of the peak, the one whose depth responds most to its abundance at the
shared (Teff, logg) — central optical depth τ weighted τ·e^(−τ) (a weak line responds in
proportion, a saturated one hardly) and by its distance from the peak. For real spectra this is
the testbed list, not a laboratory one: read the labels as hints.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["MATCH_WINDOW_A", "difference_spectrum", "explain_pair", "line_elements", "strongest_lines"]

MATCH_WINDOW_A = 0.6        # Å: a line this close to a peak can explain it (about the LSF FWHM, 0.7 Å)
MIN_SEPARATION_A = 0.8      # Å between two reported peaks
MOLECULE_ELEMENTS = {"CO": ("C", "O"), "CN": ("C", "N"), "OH": ("O",), "H": ()}


def line_elements(species: str) -> tuple[str, ...]:
    """The abundances a species' lines depend on: 'Mg' → ('Mg',), 'CN' → ('C', 'N'), 'H' → ()."""
    return MOLECULE_ELEMENTS.get(species, (species,))


def difference_spectrum(model, z_a, z_b, teff: float, logg: float) -> np.ndarray:
    """D(z_a, u) − D(z_b, u) at u = (teff K, logg dex): flux [P] in dataset units (float64)."""
    import torch

    z = torch.as_tensor(np.stack([np.asarray(z_a, np.float32), np.asarray(z_b, np.float32)]), device=model.device)
    u_t = torch.full((2,), float(teff), device=model.device)
    u_g = torch.full((2,), float(logg), device=model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        flux = model.decode(z, u_t, u_g).double().cpu().numpy()
    model.train(was_training)
    return flux[0] - flux[1]


@lru_cache(maxsize=1)
def _line_list():
    from twinviz.spectra.linelist import load_linelist

    lines = load_linelist()
    return {k: np.asarray(lines[k]) for k in ("wavelength", "species", "ion", "loggf", "chi", "mass")}


def _response(lines, teff, logg) -> np.ndarray:
    """τ·e^(−τ) of every line at (teff, logg), solar abundances: depth change per unit log abundance."""
    from twinviz.spectra import atmosphere as atm

    state = atm.chemistry_state([teff], [logg], [0.0], np.zeros((1, len(atm.ELEMENTS))))
    log_kappa = atm.log_line_strength(state, [teff], lines["species"], lines["ion"], lines["loggf"], lines["chi"])[0]
    b = atm.doppler_width(np.array([[teff]]), np.array([[logg]]), lines["mass"].astype(np.float64))[0]
    tau = 10.0 ** np.clip(log_kappa, -30, 30) / (np.sqrt(np.pi) * b)
    return tau * np.exp(-tau)


def strongest_lines(wavelength, difference, teff: float, logg: float, n: int = 8) -> list[dict]:
    """The ``n`` largest peaks of |difference| (at least MIN_SEPARATION_A apart), each with the
    line that explains it best. Rows: wavelength (Å, the pixel), delta_flux (signed), and the
    line's line_wavelength, species, ion, elements — or None when no line is within reach."""
    wave = np.asarray(wavelength, np.float64)
    diff = np.nan_to_num(np.asarray(difference, np.float64))
    mag = np.abs(diff)
    local_max = np.r_[mag[0] >= mag[1], (mag[1:-1] >= mag[:-2]) & (mag[1:-1] >= mag[2:]), mag[-1] >= mag[-2]]
    peaks = np.flatnonzero(local_max & (mag > 0))
    peaks = peaks[np.argsort(-mag[peaks], kind="stable")]
    chosen: list[int] = []
    for p in peaks:
        if all(abs(wave[p] - wave[q]) >= MIN_SEPARATION_A for q in chosen):
            chosen.append(int(p))
            if len(chosen) == n:
                break
    lines = _line_list()
    response = _response(lines, float(teff), float(logg))
    sigma = MATCH_WINDOW_A / 2.355 * 2  # a Gaussian about as wide as the instrument profile
    rows = []
    for p in chosen:
        near = np.flatnonzero(np.abs(lines["wavelength"] - wave[p]) <= MATCH_WINDOW_A)
        row = {"wavelength": float(wave[p]), "delta_flux": float(diff[p]), "line_wavelength": None,
               "species": None, "ion": None, "elements": None}
        if near.size:
            weight = response[near] * np.exp(-0.5 * ((lines["wavelength"][near] - wave[p]) / sigma) ** 2)
            best = near[int(np.argmax(weight))]
            species = str(lines["species"][best])
            row.update(line_wavelength=float(lines["wavelength"][best]), species=species,
                       ion=int(lines["ion"][best]), elements=list(line_elements(species)))
        rows.append(row)
    return rows


def explain_pair(model, z_a, z_b, teff: float, logg: float, wavelength, n: int = 8) -> dict:
    """The difference spectrum's size (RMS, max |Δ|, flux units) and its ``n`` strongest lines."""
    diff = difference_spectrum(model, z_a, z_b, teff, logg)
    return {"teff": float(teff), "logg": float(logg), "rms": float(np.sqrt(np.mean(diff ** 2))),
            "max_abs": float(np.max(np.abs(diff))), "lines": strongest_lines(wavelength, diff, teff, logg, n)}
