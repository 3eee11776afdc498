"""The twin term: an optional extra loss that pulls the training twins' latents together.

The paper's objective learns z from the reconstruction alone; an abundance difference smaller
than the decoder's own reconstruction error then leaves no trace in z (docs/model.md, "Why z
trails the residuals"). When the training set has twins (stars sharing a ``group``), batches are
made of whole pairs — stars 2i and 2i+1 of a batch are twins — and

    T(z) = ½ [CE(−d(a, b)/τ, identity) + CE(−d(b, a)/τ, identity)],

with z standardised over the batch, a and b the batch's first and second members of each pair
and d the squared distance per latent dimension: each star must pick its own twin out of the
other half of the batch. The encoder/decoder loss becomes MSE − λ·CE_adv + μ·T.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["twin_pairs", "twin_loss"]


def twin_pairs(group) -> np.ndarray:
    """[n_pairs, 2] star positions of twins: consecutive members of each group (a group of three
    gives one pair and leaves its third star out; stars alone in their group, or with a negative
    group id — the dataset's "no group" — give none)."""
    group = np.asarray(group)
    order = np.argsort(group, kind="stable")
    order = order[group[order] >= 0]
    ordered = group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    firsts = np.concatenate([starts[i] + np.arange(0, sizes[i] - 1, 2) for i in range(len(starts))]
                            or [np.empty(0, dtype=np.int64)]).astype(np.int64)
    return np.stack([order[firsts], order[firsts + 1]], axis=1) if len(firsts) else np.empty((0, 2), np.int64)


def twin_loss(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """T(z) for a batch whose rows 2i and 2i+1 are twins (see the module docstring)."""
    z = (z - z.mean(0)) / (z.std(0) + 1e-6)
    a, b = z[0::2], z[1::2]
    logits = -torch.cdist(a, b).pow(2) / (z.shape[1] * temperature)
    target = torch.arange(len(a), device=z.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
