"""The synthesizer's line list: generated once from a documented seed, stored with the package.

The list is a *testbed* list, not a laboratory one. A few dozen "anchor" lines sit at roughly the
vacuum wavelengths of well-known APOGEE lines (Mg I 15745/15753/15770, Al I 16723/16755/16768,
K I 15163/15168, the CO Δv=3 band heads, the Brackett series …; positions good to about an Å);
every other line is placed at random from the seed. Each line's log gf is set so that its central
optical depth in the reference giant (Teff 4500 K, logg 2.5, solar) follows a realistic mix of
weak, moderate and strong lines; after that the line's response to labels is pure physics
(see :mod:`twinviz.spectra.atmosphere`).

Regenerate the stored file (only when you mean to change the list; bump the version) with::

    python -m twinviz.spectra.linelist            # writes twinviz/spectra/data/linelist_v1.npz

The file is a plain ``.npz`` of numeric and fixed-width string arrays: it loads with
``np.load(path, allow_pickle=False)``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from twinviz.spectra import atmosphere as atm

LINELIST_VERSION = "twinviz-ll-1"
LINELIST_SEED = 20190615  # the seed that generated twinviz-ll-1
LINELIST_PATH = Path(__file__).with_name("data") / "linelist_v1.npz"
FIELDS = ("wavelength", "species", "ion", "loggf", "chi", "mass", "gamma_ref")
WAVE_RANGE = (15080.0, 17020.0)  # Å, the apStar grid (15100.8–16999.8 Å) plus a margin for wings

# Anchor lines: (species, ionisation stage, vacuum λ Å, χ eV, log10 τ0 in the reference giant).
ANCHOR_LINES = [
    ("Mg", 1, 15745.0, 5.93, 1.6), ("Mg", 1, 15753.3, 5.93, 1.9), ("Mg", 1, 15770.1, 5.93, 2.1),
    ("Mg", 1, 15958.8, 5.95, 1.0), ("Mg", 1, 16368.6, 5.93, 0.2),
    ("Al", 1, 16723.5, 4.09, 1.3), ("Al", 1, 16755.1, 4.09, 1.8), ("Al", 1, 16767.9, 4.09, 0.9),
    ("Si", 1, 15888.4, 5.08, 1.3), ("Si", 1, 15964.4, 5.98, 0.9), ("Si", 1, 16064.4, 5.95, 1.0),
    ("Si", 1, 16099.2, 5.96, 0.7), ("Si", 1, 16215.7, 5.95, 0.8), ("Si", 1, 16685.3, 5.98, 1.0),
    ("K", 1, 15163.1, 2.67, 0.1), ("K", 1, 15168.4, 2.67, 0.4),
    ("Na", 1, 16378.3, 3.75, -0.1), ("Na", 1, 16393.3, 3.75, 0.2),
    ("Ca", 1, 16155.2, 4.53, 0.2), ("Ca", 1, 16161.8, 4.53, 0.0), ("Ca", 1, 16197.1, 4.54, 0.4),
    ("Ti", 1, 15548.0, 2.33, 0.2), ("Ti", 1, 15719.9, 2.34, 0.0), ("Ti", 1, 16639.7, 2.65, -0.2),
    ("Ti", 2, 15873.8, 3.12, -0.4),
    ("V", 1, 15929.3, 2.14, -0.5), ("Cr", 1, 15684.3, 4.70, -0.2), ("Cr", 1, 15864.6, 4.70, -0.5),
    ("Mn", 1, 15221.5, 4.89, 0.3), ("Mn", 1, 15266.2, 4.89, 0.0), ("Co", 1, 16762.1, 3.41, -0.5),
    ("Ni", 1, 15636.0, 5.30, -0.1), ("Ni", 1, 16589.3, 5.47, 0.2), ("Ni", 1, 16677.6, 6.03, 0.1),
    ("Ni", 1, 16819.9, 5.30, -0.2),
    ("P", 1, 15715.8, 7.18, -0.8), ("P", 1, 16487.2, 7.21, -1.0), ("S", 1, 15482.7, 8.05, -0.4),
    ("C", 1, 16009.3, 9.63, -0.9), ("C", 1, 16026.1, 9.63, -1.2), ("C", 1, 16895.0, 8.85, -0.6),
    ("Fe", 1, 15294.6, 5.31, 0.8), ("Fe", 1, 15398.2, 6.26, 0.3), ("Fe", 1, 15495.1, 6.25, 0.0),
    ("Fe", 1, 15621.7, 5.54, 1.0), ("Fe", 1, 15665.2, 5.98, 0.5), ("Fe", 1, 16045.0, 5.87, 0.2),
]

# Randomly placed atomic lines: species -> (number of neutral, number of ionised, χ range eV,
# shift of the strength mix in dex; high-χ C/N/O/S/P lines, whose free-atom density and
# Boltzmann factor both soar in warm giants, start weak). Low-χ Ti/V/Co/Cr/K and high-χ C/N/O/S/P as in the H band.
RANDOM_ATOMIC = {
    "Fe": (230, 4, (2.2, 6.6), 0.0), "C": (8, 0, (7.5, 9.7), -1.5), "N": (5, 0, (10.3, 11.8), -1.5),
    "O": (5, 0, (9.1, 12.1), -1.5), "Na": (3, 0, (3.6, 5.1), 0.0), "Mg": (12, 0, (5.1, 6.7), 0.2),
    "Al": (3, 0, (4.0, 4.8), 0.0), "Si": (26, 0, (5.0, 7.0), 0.0), "P": (3, 0, (7.2, 8.1), -0.8),
    "S": (6, 0, (6.5, 9.0), -0.8), "K": (1, 0, (2.6, 3.0), 0.0), "Ca": (9, 1, (2.5, 5.3), 0.0),
    "Ti": (20, 2, (1.4, 3.5), 0.0), "V": (6, 0, (1.8, 3.0), 0.0), "Cr": (8, 0, (3.0, 5.0), 0.0),
    "Mn": (6, 0, (4.4, 6.1), 0.0), "Co": (6, 0, (2.3, 4.2), 0.0), "Ni": (22, 0, (4.0, 6.4), 0.0),
}

# CO Δv = 3 band heads (vacuum Å) of the bands v'' = 0 … 6 (3-0 … 9-6).
CO_BAND_HEADS = (15578.0, 15775.0, 15978.0, 16185.0, 16397.0, 16614.0, 16836.0)
# Hydrogen Brackett lines (upper level n: vacuum Å), lower level n = 4.
BRACKETT = {11: 16811.1, 12: 16411.7, 13: 16113.7, 14: 15884.9, 15: 15704.9, 16: 15560.7,
            17: 15443.1, 18: 15345.9, 19: 15264.7, 20: 15196.0}
# The n = 4 level lies 12.75 eV up, but a one-layer model with that Boltzmann factor makes the
# Brackett lines grow ~300× from 4500 K to 5500 K; real giants' H lines form deeper, in layers
# whose temperature varies less. An effective excitation keeps them T- and g-sensitive but sane.
H_CHI_EFFECTIVE = 4.0  # eV
_EV_PER_CM = 1.239842e-4


def _strength_mix(rng, n):
    """log10 τ0 in the reference giant: 70 % weak, 25 % moderate, 5 % strong lines."""
    u = rng.random(n)
    return np.where(u < 0.70, rng.uniform(-2.0, -0.2, n),
                    np.where(u < 0.95, rng.uniform(-0.2, 0.8, n), rng.uniform(0.8, 1.8, n)))


def _co_lines():
    """CO second-overtone lines: a Fortrat parabola redward of each head (R: J=0…59, P: J=1…40)."""
    rows = []
    for v_low, head in enumerate(CO_BAND_HEADS):
        nu_head = 1e8 / head
        e_vib = _EV_PER_CM * (2169.8 * v_low - 13.29 * v_low * (v_low + 1))
        for branch, js in (("R", range(0, 60)), ("P", range(1, 41))):
            for j in js:
                m = j + 1 if branch == "R" else -j
                nu = nu_head - 0.0525 * (m - 36) ** 2  # head at m ≈ 36 since B' < B''
                chi = e_vib + _EV_PER_CM * 1.9225 * j * (j + 1)
                honl_london = (j + 1) if branch == "R" else j
                rows.append((1e8 / nu, chi, np.log10(honl_london) + 0.25 * v_low))
    return np.array(rows)


def build_linelist(seed: int = LINELIST_SEED) -> dict[str, np.ndarray]:
    """Build the line list from ``seed``: a dict of equal-length arrays (see :data:`FIELDS`).

    wavelength (Å, vacuum), species ('Fe', 'CO', 'H' …), ion (1 neutral, 2 singly ionised;
    1 for molecules and H), loggf, chi (lower-level excitation, eV), mass (amu),
    gamma_ref (Lorentzian half width in the reference giant, km/s). Sorted by wavelength.
    """
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("wavelength", "species", "ion", "chi", "target", "gamma_ref")}

    def add(wave, species, ion, chi, target, gamma):
        n = np.size(wave)
        for key, val in (("wavelength", wave), ("species", species), ("ion", ion), ("chi", chi),
                         ("target", target), ("gamma_ref", gamma)):
            cols[key].append(np.broadcast_to(np.asarray(val), (n,)))

    def atomic_gamma(chi):  # van der Waals widths grow with excitation (bigger upper orbits)
        chi = np.asarray(chi, dtype=float)
        return 10.0 ** (-1.3 + 0.12 * chi + rng.uniform(-0.2, 0.2, chi.shape))

    for species, ion, wave, chi, target in ANCHOR_LINES:
        add(wave, species, ion, chi, target, atomic_gamma(chi))
    for species, (n_neutral, n_ion, (chi_lo, chi_hi), shift) in RANDOM_ATOMIC.items():
        for ion, n in ((1, n_neutral), (2, n_ion)):
            if n:
                chi = rng.uniform(chi_lo, chi_hi, n) if ion == 1 else rng.uniform(3.0, 6.5, n)
                # ionised lines of these mostly-ionised elements are few and weak in the H band
                target = _strength_mix(rng, n) + shift - (0.8 if ion == 2 else 0.0)
                add(rng.uniform(*WAVE_RANGE, n), species, ion, chi, target, atomic_gamma(chi))

    co = _co_lines()  # CO: the band structure fixes relative strengths; the strongest τ0 ≈ 3
    add(co[:, 0], "CO", 1, co[:, 1], co[:, 2] - co[:, 2].max() + 0.2, 0.05)
    n_oh = 150  # OH Δv=2: crowded in the blue part of the H band
    add(WAVE_RANGE[0] + (WAVE_RANGE[1] - WAVE_RANGE[0]) * rng.random(n_oh) ** 1.6, "OH", 1,
        rng.uniform(0.2, 1.6, n_oh), rng.uniform(-1.2, 0.4, n_oh), 0.05)
    n_cn = 350  # CN red system: many weak lines everywhere
    add(rng.uniform(*WAVE_RANGE, n_cn), "CN", 1, rng.uniform(0.3, 2.0, n_cn),
        rng.uniform(-2.0, -0.3, n_cn), 0.05)
    n_up = np.array(list(BRACKETT))
    # Brackett: target is log10 κ/(π γ), the Stark-core optical depth, falling with n.
    add(np.array(list(BRACKETT.values())), "H", 1, H_CHI_EFFECTIVE, -0.8 - 2.0 * np.log10(n_up / 11),
        12.0 * (n_up / 11.0) ** 2)

    lines = {k: np.concatenate(v) for k, v in cols.items()}
    species = lines["species"].astype("<U2")
    mass = np.array([atm.MOLECULES[s][1] if s in atm.MOLECULES else atm.ATOMIC_MASS[s] for s in species])
    lines.update(species=species, ion=lines["ion"].astype(np.int8), mass=mass)

    # log gf such that the line reaches its target in the reference giant.
    ref = atm.REFERENCE
    state = atm.chemistry_state([ref["teff"]], [ref["logg"]], [ref["fe_h"]], np.zeros((1, 17)))
    log_kappa0 = atm.log_line_strength(state, [ref["teff"]], species, lines["ion"],
                                       np.zeros(species.size), lines["chi"])[0]
    is_h = species == "H"
    width = np.where(is_h, np.pi * lines["gamma_ref"],
                     np.sqrt(np.pi) * atm.doppler_width(ref["teff"], ref["logg"], mass))
    lines["loggf"] = lines.pop("target") + np.log10(width) - log_kappa0

    order = np.argsort(lines["wavelength"], kind="stable")
    out = {k: lines[k][order] for k in FIELDS}
    for k in ("loggf", "chi", "mass", "gamma_ref"):
        out[k] = out[k].astype(np.float32)
    out["wavelength"] = out["wavelength"].astype(np.float64)
    return out


def save_linelist(lines: dict, path=LINELIST_PATH, *, seed: int = LINELIST_SEED) -> Path:
    """Write a line list to ``path`` (.npz, no pickled objects), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, version=np.array(LINELIST_VERSION), seed=np.array(seed, dtype=np.int64),
                            **{k: np.asarray(lines[k]) for k in FIELDS})
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the list is package data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_linelist(path=LINELIST_PATH) -> dict:
    """Load a stored line list: the FIELDS arrays plus ``version`` (str) and ``seed`` (int)."""
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in FIELDS}
        out["version"] = str(data["version"])
        out["seed"] = int(data["seed"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the synthesizer's stored line list.")
    parser.add_argument("--seed", type=int, default=LINELIST_SEED)
    parser.add_argument("--out", type=Path, default=LINELIST_PATH)
    args = parser.parse_args(argv)
    lines = build_linelist(args.seed)
    path = save_linelist(lines, args.out, seed=args.seed)
    counts = {s: int((lines["species"] == s).sum()) for s in np.unique(lines["species"])}
    print(f"{LINELIST_VERSION}: {lines['wavelength'].size} lines -> {path}\n{counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
