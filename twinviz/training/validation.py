"""Per-epoch validation of a fader network on a fixed subset of the validation set.

Metrics (definitions in docs/science.md, flux in dataset units):
  val_mse           mean over stars and unmasked pixels of (D(E(x,u),u) − x)²
  val_swapped_mse   mean of (D(E(x_t,u_t),u) − x)², x_t the star's partner in its group
                    (the next member, cyclically; for pairs, its twin)
  val_rank1, val_rank_0p1, val_rank_1
                    fractions of stars with twin rank 1, ≤ 0.1 %·N, ≤ 1 %·N (L1 in z, exact,
                    twinviz.twins.index.TwinIndex), N = the subset size
  val_adv_acc       the adversary's accuracy on the validation latents
  val_adv_chance    accuracy of always predicting the most common bin (the "chance" level)
  val_adv_margin    how far above chance the adversary may be and still count as "at chance":
                    ADV_MARGIN + 2 binomial standard errors of the chance rate on N stars
  val_adv_at_chance val_adv_acc ≤ val_adv_chance + val_adv_margin
  val_n_stars       N, the size of the subset
  val_collapsed     True when all latents are equal (such an epoch is never the best one)

The best epoch (:func:`best_epoch_key`, the rule docs/model.md states): when the run fits a twin
metric after training (training and validation twins, twin_metric "fit"), the latest epoch that
did not collapse; otherwise with groups, the highest val_rank1; without groups (e.g. an imported
survey with no known twins), the lowest val_mse among epochs whose adversary is at chance, and
only while no epoch is at chance the lowest val_mse of all; without a validation set, the lowest training loss. A collapsed epoch never wins.
Each evaluation also keeps every star's own reconstruction MSE (``star_mse``): the distribution
saved beside the best model for the out-of-distribution flags (twinviz.latents.ood).
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import xarray as xr

from twinviz.latents.errors import squared_error_sums
from twinviz.twins.groups import swap_partners

__all__ = ["ADV_MARGIN", "ValidationSet", "best_epoch_key", "latent_collapsed"]

#: Absolute accuracy margin above chance within which the adversary counts as "at chance" (plus
#: two binomial standard errors of the chance rate on the validation subset). The runs in
#: docs/model.md sit 0.01–0.02 above chance with λ = 0.01 and 0.7 above it with λ = 0.
ADV_MARGIN = 0.05


class ValidationSet:
    """A fixed validation subset: up to ``max_stars`` stars, whole groups first."""

    def __init__(self, ds: xr.Dataset, max_stars: int, seed: int = 0):
        group = ds["group"].values if "group" in ds else np.full(ds.sizes["star"], -1)
        rng = np.random.default_rng([seed, 7])
        ids, counts = np.unique(group[group >= 0], return_counts=True)
        multi = ids[counts >= 2]
        if multi.size:
            # Whole groups in a seeded random order until the budget is used: every chosen
            # star keeps its twin in the subset.
            chosen, total = [], 0
            members = {g: np.flatnonzero(group == g) for g in multi} if multi.size < 2000 else None
            order = rng.permutation(multi)
            if members is None:
                sorter = np.argsort(group, kind="stable")
                starts = np.searchsorted(group[sorter], order)
                ends = np.searchsorted(group[sorter], order, side="right")
            for k, g in enumerate(order):
                idx = members[g] if members is not None else sorter[starts[k]:ends[k]]
                if total + idx.size > max_stars and total:
                    break
                chosen.append(idx)
                total += idx.size
            index = np.sort(np.concatenate(chosen))
        else:
            n = ds.sizes["star"]
            index = np.sort(rng.choice(n, size=min(n, max_stars), replace=False))
        sub = ds.isel(star=index)
        self.index = index
        self.flux = np.asarray(sub["flux"].values, dtype=np.float32)
        self.teff = sub["teff"].values.astype(np.float32)
        self.logg = sub["logg"].values.astype(np.float32)
        bad = ~np.isfinite(self.flux)
        if "mask" in sub:
            bad |= sub["mask"].values.astype(bool)
        self.bad = bad if bad.any() else None
        self.flux = np.where(bad, np.float32(1.0), self.flux)
        self.group = np.asarray(group[index])
        self.partner = swap_partners(self.group) if multi.size else None
        self.star_mse = np.full(len(index), np.nan)  # per-star reconstruction MSE of the last evaluate()

    def __len__(self) -> int:
        return len(self.teff)

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 1024, autocast=None) -> dict:
        """Compute the metrics above with ``model`` (any device); returns a dict of floats."""
        from twinviz.twins.index import TwinIndex
        from twinviz.twins.ranks import rank_fractions
        device = model.device
        was_training = model.training
        model.eval()
        n = len(self)
        z = np.empty((n, model.config.latent_dim), dtype=np.float32)
        correct = 0
        for a in range(0, n, batch_size):
            b = min(n, a + batch_size)
            flux = torch.from_numpy(self.flux[a:b]).to(device)
            teff = torch.from_numpy(self.teff[a:b]).to(device)
            logg = torch.from_numpy(self.logg[a:b]).to(device)
            mask = None if self.bad is None else torch.from_numpy(self.bad[a:b]).to(device)
            with autocast() if autocast else nullcontext():
                zb = model.encode(flux, teff, logg, mask)
                logits = model.adversary_logits(zb)
            correct += int(model.adversary_correct(logits.float(), model.label_bins(teff, logg)).sum())
            z[a:b] = zb.float().cpu().numpy()
        good = np.ones(self.flux.shape, bool) if self.bad is None else ~self.bad
        partner = self.partner if self.partner is not None else np.full(n, -1, dtype=np.int64)
        star_mse = np.full(n, np.nan)
        sums, counts = squared_error_sums(model, z, self.flux, self.teff, self.logg, good, partner,
                                          batch_size=batch_size, autocast=autocast, star_mse=star_mse)
        self.star_mse = star_mse
        chance = _majority_rate(model, self.teff, self.logg)
        margin = ADV_MARGIN + 2.0 * float(np.sqrt(chance * (1.0 - chance) / max(n, 1)))
        out = {"val_mse": sums[0] / max(counts[0], 1), "val_adv_acc": correct / n,
               "val_adv_chance": chance, "val_adv_margin": margin,
               "val_adv_at_chance": bool(correct / n <= chance + margin), "val_n_stars": n,
               "val_collapsed": latent_collapsed(z)}
        if self.partner is not None:
            out["val_swapped_mse"] = sums[1] / max(counts[1], 1)
            ranks = TwinIndex(z, metric="l1").twin_ranks(self.group)
            fr = rank_fractions(ranks, n)
            out.update(val_rank1=fr.rank1, val_rank_0p1=fr.within_0p1, val_rank_1=fr.within_1)
        model.train(was_training)
        return out


def best_epoch_key(rec: dict, *, latest: bool = False) -> tuple[str, tuple] | None:
    """(metric, key) of an epoch record for choosing the best epoch: the smaller key wins among
    records with the same metric; None when the epoch can never be the best (collapsed latents,
    or its metric is missing or not finite).

    * ``latest`` (``latest=True``: the run fits a twin metric after its last epoch, so the model
      will rank in that metric, not on raw z): key (−step) — the latest epoch that did not collapse.
      The per-epoch val_rank1 is on raw z and, measured on the science suite, does not predict
      the rank in the metric (docs/model.md, "Which epoch is kept");
    * ``val_rank1`` (the validation set has twin groups): key (−rank 1);
    * ``val_mse`` (validation without groups): key (0, MSE) when the adversary is at chance
      (``val_adv_at_chance``), else (1, MSE) — any at-chance epoch beats every epoch whose
      latent still tells the adversary Teff/logg; among equals the lower MSE wins;
    * ``train_recon`` (no validation set): key (loss).
    """
    if rec.get("val_collapsed", False):
        return None
    if latest:
        return "latest", (-rec["step"],)
    rank1 = rec.get("val_rank1")
    if rank1 is not None and math.isfinite(rank1):
        return "val_rank1", (-rank1,)
    mse = rec.get("val_mse")
    if mse is not None:
        if not math.isfinite(mse):
            return None
        return "val_mse", (0 if rec.get("val_adv_at_chance", True) else 1, mse)
    loss = rec.get("train_recon")
    if loss is None or not math.isfinite(loss):
        return None
    return "train_recon", (loss,)


def latent_collapsed(z: np.ndarray) -> bool:
    """True when every star has (to float32 precision) the same latent: z then carries nothing,
    whatever its twin ranks say, and such an epoch is never chosen as the best."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[0] < 2:
        return False
    spread = np.ptp(z, axis=0).max()
    return bool(spread <= 1e-6 * (1.0 + np.abs(z).max()))


def _majority_rate(model, teff, logg) -> float:
    """Accuracy of always predicting the most common bin(s) — the adversary's chance level."""
    bins = model.label_bins(torch.from_numpy(teff), torch.from_numpy(logg)).cpu().numpy()
    if bins.ndim == 1:
        return float(np.bincount(bins).max() / bins.size)
    t_mode = np.bincount(bins[:, 0]).argmax()
    g_mode = np.bincount(bins[:, 1]).argmax()
    return float(np.mean((bins[:, 0] == t_mode) & (bins[:, 1] == g_mode)))


def measure_validation_stats(model_dir, val_path, *, max_stars: int = 5000, seed: int = 0,
                             source: str | None = None):
    """Write ``validation_stats.json`` for a model trained before the trainer wrote it: the
    per-star reconstruction MSE on the validation subset the trainer would use (``max_stars``
    stars, whole groups first, ``seed``) of ``val_path``. Returns the file's path."""
    from twinviz.model import FaderNetwork
    from twinviz.spectra.dataset import load_spectra

    model = FaderNetwork.from_pretrained(model_dir)
    val = ValidationSet(load_spectra(val_path), max_stars, seed)
    val.evaluate(model)
    from twinviz.latents.ood import write_validation_stats

    return write_validation_stats(model_dir, val.star_mse, source=source or str(val_path))
