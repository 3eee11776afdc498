"""How much of z's spread is the spectra's white noise: a diagnostic of the *none* regime at SNR 50.

    python benchmarks/noise_in_z.py --model RUN/model --data val.nc [--draws 4]

Each star's flux is drawn again ``--draws`` times with fresh Gaussian noise of its own
``flux_err`` (no twins are used: a survey has flux_err for every star; a file without flux_err,
noiseless, gets only the twin rows) and encoded; the spread of
z about the star's own z is z's response to white noise. Printed, per latent axis summarised:
the noise variance as a share of z's variance across the stars, the within-twin variance
(``group`` pairs, when the file has them) as a share of it, and twin rank 1 when stars are ranked
by L1 on raw z and on z whitened by the noise covariance (an unsupervised rescaling that needs
only flux_err). Beside the noise: the share of z's variance that the invariance term's nuisances
move (twinviz/training/augment.py: continuum error, broadening, masks; drawn ``--draws`` times). When the noise share is small and the within-twin share large, what separates
twins in z is not the white noise but something else that differs between them (in the suite's
realistic preset: continuum error, persistence, sky residuals, masks — or Teff/logg leakage).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def noise_table(model_dir: Path, data: Path, draws: int = 4, seed: int = 0) -> dict:
    """The diagnostic's numbers (see the module docstring) for one model and one spectra file."""
    from twinviz.evaluation.compute import evaluate_representation
    from twinviz.model import FaderNetwork, encode_arrays
    from twinviz.spectra.dataset import load_spectra
    from twinviz.twins.groups import twin_pairs

    ds = load_spectra(data)
    model = FaderNetwork.from_pretrained(model_dir)
    flux = ds["flux"].values
    mask = ds["mask"].values if "mask" in ds else None
    teff, logg = ds["teff"].values, ds["logg"].values
    z0 = encode_arrays(model, flux, teff, logg, mask=mask)
    total_var = z0.var(axis=0)
    out = {"stars": int(len(z0)), "draws": 0, "noise_share_median": float("nan"), "noise_share_max": float("nan")}
    noise_cov = None
    if "flux_err" in ds:  # a noiseless file has none: only the twin rows then
        err = np.nan_to_num(ds["flux_err"].values, nan=0.0, posinf=0.0)
        rng = np.random.default_rng(seed)
        deltas = [encode_arrays(model, flux + rng.normal(size=flux.shape).astype(np.float32) * err, teff, logg,
                                mask=mask) - z0 for _ in range(draws)]
        d = np.concatenate(deltas)
        noise_cov = d.T @ d / len(d)
        out.update(draws=draws, noise_share_median=float(np.median(np.diag(noise_cov) / total_var)),
                   noise_share_max=float(np.max(np.diag(noise_cov) / total_var)))
    # the invariance term's nuisances (twinviz/training/augment.py), drawn like the white noise
    import torch

    from twinviz.training.augment import NuisanceAugmenter

    aug, gen = NuisanceAugmenter(ds["wavelength"].values), torch.Generator().manual_seed(seed)
    moved = []
    for _ in range(draws):
        flux_a, mask_a = aug.augment(torch.from_numpy(np.nan_to_num(flux, nan=1.0).astype(np.float32)),
                                     None if mask is None else torch.from_numpy(mask.astype(bool)), gen)
        moved.append(encode_arrays(model, flux_a.numpy(), teff, logg, mask=mask_a.numpy()) - z0)
    share = (np.concatenate(moved) ** 2).mean(axis=0) / total_var
    out.update(nuisance_share_median=float(np.median(share)), nuisance_share_max=float(np.max(share)))
    if "group" in ds:
        groups = np.asarray(ds["group"].values, np.int64)
        pairs = twin_pairs(groups)
        if len(pairs):
            a, b = pairs.T
            within = ((z0[a] - z0[b]) ** 2).mean(axis=0) / 2  # per-star variance of a twin pair's difference
            out["twin_share_median"] = float(np.median(within / total_var))
            out["rank1_raw_z"] = evaluate_representation("raw", z0, groups).fractions.rank1
            if noise_cov is not None:
                w, v = np.linalg.eigh(noise_cov)
                whitened = z0 @ (v / np.sqrt(np.maximum(w, 1e-3 * w.max())))
                out["rank1_noise_whitened"] = evaluate_representation("raw", whitened, groups).fractions.rank1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a model directory (RUN/model)")
    parser.add_argument("--data", type=Path, required=True, help="spectra with flux_err (and group, for ranks)")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per star")
    args = parser.parse_args(argv)
    t = noise_table(args.model, args.data, args.draws)
    print(f"| stars | draws | noise var ÷ z var (median, max) | nuisance var ÷ z var (median, max) "
          f"| twin var ÷ z var (median) | rank 1 raw z, L1 | rank 1 noise-whitened z, L1 |\n"
          f"|---|---|---|---|---|---|---|\n"
          f"| {t['stars']} | {t['draws']} | {t['noise_share_median']:.4f}, {t['noise_share_max']:.4f} | "
          f"{t['nuisance_share_median']:.4f}, {t['nuisance_share_max']:.4f} | "
          f"{t.get('twin_share_median', float('nan')):.4f} | {100 * t.get('rank1_raw_z', float('nan')):.1f} % | "
          f"{100 * t.get('rank1_noise_whitened', float('nan')):.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
