"""The star's side of the built-in synthesizer: from labels to line strengths and widths.

This is a *controlled testbed*, not radiative transfer. One representative layer stands for
the whole line-forming region of a red-giant photosphere, and every quantity is a smooth,
physically motivated scaling law around a reference giant (Teff 4500 K, logg 2.5, solar
chemistry):

* electron pressure Pe and gas pressure Pg grow with gravity; Pe also grows steeply with
  temperature (metals ionise) and with metallicity (metals donate the electrons);
* the H⁻ continuum opacity per hydrogen atom grows with Pe and falls with temperature;
* atoms are split into neutral and singly ionised stages by the Saha equation;
* excitation follows Boltzmann, 10^(−θχ) with θ = 5040/Teff;
* C and O lock each other up in CO (a dissociation equilibrium solved exactly); CN and OH are
  trace molecules; all three scale as 10^(θ·D₀) with their dissociation energies D₀.

All functions are vectorised over stars (arrays of shape (N,)) and return float64.
"""
from __future__ import annotations

import numpy as np

# Order of the chemical species the model tracks: the 17 [X/Fe] elements, then Fe.
ELEMENTS = ("C", "N", "O", "Na", "Mg", "Al", "Si", "P", "S", "K", "Ca", "Ti", "V", "Cr", "Mn", "Co", "Ni")
SPECIES = ELEMENTS + ("Fe",)

# Solar photospheric abundances A(X) = log10(N_X/N_H) + 12 (Asplund et al. 2009, rounded),
# atomic masses (amu) and first ionisation potentials (eV).
SOLAR_A = dict(C=8.43, N=7.83, O=8.69, Na=6.24, Mg=7.60, Al=6.45, Si=7.51, P=5.41, S=7.12, K=5.03,
               Ca=6.34, Ti=4.95, V=3.93, Cr=5.64, Mn=5.43, Co=4.99, Ni=6.22, Fe=7.50, H=12.0)
ATOMIC_MASS = dict(C=12.011, N=14.007, O=15.999, Na=22.990, Mg=24.305, Al=26.982, Si=28.086, P=30.974,
                   S=32.06, K=39.098, Ca=40.078, Ti=47.867, V=50.942, Cr=51.996, Mn=54.938, Co=58.933,
                   Ni=58.693, Fe=55.845, H=1.008)
IONISATION_EV = dict(C=11.260, N=14.534, O=13.618, Na=5.139, Mg=7.646, Al=5.986, Si=8.152, P=10.487,
                     S=10.360, K=4.341, Ca=6.113, Ti=6.828, V=6.746, Cr=6.767, Mn=7.434, Co=7.881,
                     Ni=7.640, Fe=7.902, H=13.598)
# Molecules: constituents, mass (amu), dissociation energy D₀ (eV).
MOLECULES = {"CO": (("C", "O"), 28.010, 11.09), "CN": (("C", "N"), 26.018, 7.76),
             "OH": (("O", "H"), 17.007, 4.39)}

REFERENCE = dict(teff=4500.0, logg=2.5, fe_h=0.0)  # the giant every scaling law is anchored on
_LOG_T_REF = np.log10(REFERENCE["teff"])
THETA_REF = 5040.0 / REFERENCE["teff"]

# Molecule formation constants, fixed so that at the reference giant CO holds ~97 % of the
# carbon (β_CO·ε_O = 30), CN takes ~1 % of it and OH ~0.1 % of the oxygen.
_MOLECULE_AT_REFERENCE = {"CO": 30.0 / 10 ** (SOLAR_A["O"] - 12), "CN": 0.01 / 10 ** (SOLAR_A["N"] - 12),
                          "OH": 1e-3}

# Zero point of the line strengths, chosen so that an Fe I line with χ = 5.5 eV and log gf = −1
# has a central optical depth of about 1 in the reference giant (a typical H-band Fe line).
LOG_KAPPA_ZERO = 13.46

_KMS2_PER_K_AMU = 2 * 1.380649e-23 / 1.66053907e-27 / 1e6  # 2k/amu in (km/s)²/K


def theta(teff):
    """θ = 5040 / Teff (Teff in K)."""
    return 5040.0 / np.asarray(teff, dtype=np.float64)


# Above the giants' box (Teff > 5500 K, i.e. dwarfs) the excitation temperature of the one
# layer rises more slowly than Teff. With the bare Boltzmann factor, the high-excitation
# (χ ≈ 7–10 eV) C I, N I and O I lines grow ~100× between 5500 and 6800 K and saturate to zero
# flux, and total line absorption *rises* with Teff among FGK dwarfs — the opposite of real
# F/G/K dwarfs. Real lines form over a range of depths, which damps the response; the slope was
# tuned by eye so that line absorption falls with Teff across the G and F dwarfs and a solar F
# dwarf has no more nearly black C I pixels than a 5500 K dwarf (0.3 and 0.1 were also tried).
# Below 5500 K nothing changes (the giants are bit-for-bit the same).
EXCITATION_SOFT_TEFF = 5500.0
EXCITATION_SOFT_SLOPE = 0.2


def excitation_theta(teff):
    """θ_exc = 5040 / T_exc of the Boltzmann factor: T_exc = Teff up to 5500 K, then
    5500 + 0.2·(Teff − 5500) (see EXCITATION_SOFT_SLOPE)."""
    teff = np.asarray(teff, dtype=np.float64)
    t_exc = np.where(teff > EXCITATION_SOFT_TEFF,
                     EXCITATION_SOFT_TEFF + EXCITATION_SOFT_SLOPE * (teff - EXCITATION_SOFT_TEFF), teff)
    return 5040.0 / t_exc


def microturbulence(logg):
    """Microturbulent velocity ξ (km/s), a fixed function of logg (dex): 2.478 − 0.325·logg.

    Fixing ξ(logg) keeps it from being a hidden non-chemical factor."""
    return np.clip(2.478 - 0.325 * np.asarray(logg, dtype=np.float64), 0.5, None)


def log_electron_pressure(teff, logg, fe_h):
    """log10 of the electron pressure Pe (dyn cm⁻²) of the line-forming layer.

    Grows with gravity (∝ g^0.5), steeply with temperature (metal ionisation) and with [Fe/H]
    (metals donate the electrons)."""
    teff, logg, fe_h = (np.asarray(a, dtype=np.float64) for a in (teff, logg, fe_h))
    return -0.2 + 0.5 * (logg - REFERENCE["logg"]) + 6.0 * (np.log10(teff) - _LOG_T_REF) + 0.4 * fe_h


def log_gas_pressure(teff, logg):
    """log10 of the gas pressure Pg (dyn cm⁻²) of the line-forming layer (∝ g^0.64)."""
    teff, logg = np.asarray(teff, dtype=np.float64), np.asarray(logg, dtype=np.float64)
    return 4.0 + 0.64 * (logg - REFERENCE["logg"]) - 0.5 * (np.log10(teff) - _LOG_T_REF)


def log_hminus_opacity(teff, log_pe):
    """log10 of the H⁻ continuum opacity per H atom (arbitrary zero point).

    Saha for H⁻ (binding 0.754 eV): κ ∝ Pe·θ^2.5·10^(0.754θ): up with Pe, down with Teff."""
    th = theta(teff)
    return np.asarray(log_pe) + 2.5 * np.log10(th) + 0.754 * th


def log_stage_fraction(teff, log_pe, chi_ion, stage):
    """log10 of the fraction of an element in ionisation ``stage`` (1 neutral, 2 ionised).

    Saha: log(N_II/N_I) = 2.5·log T − 0.1762 − θ·χ_ion − log Pe (partition-function ratio 1;
    double ionisation neglected, fine for cool giants). Arrays broadcast: teff/log_pe (N, 1)
    against chi_ion/stage (M,) give (N, M)."""
    teff = np.asarray(teff, dtype=np.float64)
    log_ratio = 2.5 * np.log10(teff) - 0.1762 - theta(teff) * np.asarray(chi_ion) - np.asarray(log_pe)
    log_total = np.logaddexp(0.0, log_ratio * np.log(10.0)) / np.log(10.0)  # log10(1 + N_II/N_I)
    return np.where(np.asarray(stage) >= 2, log_ratio, 0.0) - log_total


def _log_molecule_constant(name, teff, log_pg):
    """log10 β: n_AB = β·n_A·n_B with number densities relative to hydrogen.

    β ∝ Pg·T^−1.5·10^(θ·D₀): molecules form at high density and, steeply, at low temperature."""
    _, _, d0 = MOLECULES[name]
    th = theta(teff)
    return (np.log10(_MOLECULE_AT_REFERENCE[name]) + d0 * (th - THETA_REF)
            - 1.5 * (np.log10(teff) - _LOG_T_REF) + (log_pg - 4.0))


def chemistry_state(teff, logg, fe_h, x_fe):
    """Everything a line needs from one star's labels, as log10 quantities.

    Parameters: teff (N,) K, logg (N,) dex, fe_h (N,) dex, x_fe (N, 17) dex in ELEMENTS order.

    Returns a dict: ``log_amount`` (N, 18) free atomic number density of each species of SPECIES
    relative to H (C and O net of CO, CN, OH); ``log_molecule`` {CO, CN, OH: (N,)}; ``log_pe``,
    ``log_pg``, ``log_kappa_c`` (N,); ``theta`` (N,).
    """
    teff = np.atleast_1d(np.asarray(teff, dtype=np.float64))
    logg = np.atleast_1d(np.asarray(logg, dtype=np.float64))
    fe_h = np.atleast_1d(np.asarray(fe_h, dtype=np.float64))
    x_fe = np.atleast_2d(np.asarray(x_fe, dtype=np.float64))
    solar = np.array([SOLAR_A[s] for s in SPECIES]) - 12.0
    x_h = np.concatenate([x_fe + fe_h[:, None], fe_h[:, None]], axis=1)  # [X/H]
    log_eps = solar[None, :] + x_h
    eps = 10.0 ** log_eps

    log_pe = log_electron_pressure(teff, logg, fe_h)
    log_pg = log_gas_pressure(teff, logg)
    i_c, i_n, i_o = SPECIES.index("C"), SPECIES.index("N"), SPECIES.index("O")
    eps_c, eps_n, eps_o = eps[:, i_c], eps[:, i_n], eps[:, i_o]

    # C + O ⇌ CO: n_CO = β (C − n_CO)(O − n_CO), solved in the cancellation-free form.
    beta = 10.0 ** _log_molecule_constant("CO", teff, log_pg)
    b = beta * (eps_c + eps_o) + 1.0
    n_co = 2.0 * beta * eps_c * eps_o / (b + np.sqrt(np.maximum(b * b - 4.0 * beta**2 * eps_c * eps_o, 0.0)))
    free_c = np.maximum(eps_c - n_co, 1e-30 * eps_c)
    free_o = np.maximum(eps_o - n_co, 1e-30 * eps_o)
    log_cn = _log_molecule_constant("CN", teff, log_pg) + np.log10(free_c) + np.log10(eps_n)
    log_oh = _log_molecule_constant("OH", teff, log_pg) + np.log10(free_o)

    log_amount = log_eps.copy()
    log_amount[:, i_c] = np.log10(free_c)
    log_amount[:, i_o] = np.log10(free_o)
    return {
        "theta": theta(teff), "log_pe": log_pe, "log_pg": log_pg,
        "log_kappa_c": log_hminus_opacity(teff, log_pe), "log_amount": log_amount,
        "log_molecule": {"CO": np.log10(n_co), "CN": log_cn, "OH": log_oh},
    }


def doppler_width(teff, logg, mass, xi=None):
    """Doppler width b = sqrt(2kT/m + ξ²) in km/s; teff (N, 1) K, logg (N, 1) dex, mass (L,) amu.

    ``xi``: the microturbulence ξ (km/s, broadcastable like teff); None = :func:`microturbulence`
    of logg."""
    xi = microturbulence(logg) if xi is None else np.asarray(xi, dtype=np.float64)
    return np.sqrt(_KMS2_PER_K_AMU * np.asarray(teff) / np.asarray(mass) + xi ** 2)


def log_line_strength(state, teff, species, ion, loggf, chi, soften_excitation=True):
    """log10 of each line's velocity-integrated optical depth κ (km/s), shape (N, L).

    κ ∝ gf · n(species, stage) · 10^(−θχ) / κ_H⁻: n is the free atom number density times the
    Saha fraction in the line's ionisation stage, or the molecule's number density, or (for
    hydrogen) the neutral hydrogen fraction. ``state`` comes from :func:`chemistry_state` of the
    same ``teff`` (N,) K; species (L,) names, ion (L,) stage 1/2, loggf (L,), chi (L,) eV.
    Excitation uses :func:`excitation_theta` (= θ up to 5500 K); ``soften_excitation=False``
    uses the bare θ at every Teff (the synthesizer sizes its damping wings with it).
    """
    species = np.asarray(species)
    ion = np.asarray(ion)
    teff_col = np.atleast_1d(np.asarray(teff, dtype=np.float64))[:, None]
    log_pe = state["log_pe"][:, None]
    n_star, n_line = teff_col.shape[0], species.shape[0]
    log_n = np.empty((n_star, n_line))
    for s in np.unique(species):
        sel = species == s
        if s in MOLECULES:
            log_n[:, sel] = state["log_molecule"][s][:, None]
        elif s == "H":
            log_n[:, sel] = log_stage_fraction(teff_col, log_pe, IONISATION_EV["H"], 1)
        else:
            k = SPECIES.index(s)
            log_n[:, sel] = state["log_amount"][:, k:k + 1] + log_stage_fraction(
                teff_col, log_pe, IONISATION_EV[s], ion[sel])
    th = state["theta"]
    hot = teff_col[:, 0] > EXCITATION_SOFT_TEFF
    if soften_excitation and np.any(hot):  # cooler stars keep the very same θ array
        th = np.where(hot, excitation_theta(teff_col[:, 0]), th)
    return (LOG_KAPPA_ZERO + np.asarray(loggf)[None, :] + log_n
            - th[:, None] * np.asarray(chi)[None, :] - state["log_kappa_c"][:, None])


def damping_width(teff, logg, fe_h, gamma_ref, species):
    """Lorentzian half width γ (km/s), shape (N, L), from each line's γ at the reference giant.

    Metals and molecules: 20 % radiative (constant) + 80 % van der Waals, ∝ Pg·T^0.3.
    Hydrogen: linear Stark broadening, ∝ Pe^(2/3)."""
    teff = np.atleast_1d(np.asarray(teff, dtype=np.float64))[:, None]
    logg = np.atleast_1d(np.asarray(logg, dtype=np.float64))[:, None]
    fe_h = np.atleast_1d(np.asarray(fe_h, dtype=np.float64))[:, None]
    ref = REFERENCE
    pg_ratio = 10.0 ** (log_gas_pressure(teff, logg) - log_gas_pressure(ref["teff"], ref["logg"]))
    vdw = (0.2 + 0.8 * pg_ratio * (teff / ref["teff"]) ** 0.3)
    pe_ratio = 10.0 ** (log_electron_pressure(teff, logg, fe_h)
                        - log_electron_pressure(ref["teff"], ref["logg"], ref["fe_h"]))
    stark = pe_ratio ** (2.0 / 3.0)
    is_h = (np.asarray(species) == "H")[None, :]
    return np.asarray(gamma_ref)[None, :] * np.where(is_h, stark, vdw)
