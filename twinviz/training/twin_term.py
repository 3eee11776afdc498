"""The twin term: an optional extra loss that pulls the training twins' latents together.

The paper's objective learns z from the reconstruction alone; an abundance difference smaller
than the decoder's own reconstruction error then leaves no trace in z (docs/model.md, "Why z
trails the residuals"). When the training set has twins (stars sharing a ``group``), batches are
made of whole pairs (``twinviz.twins.groups.twin_pairs``) — stars 2i and 2i+1 of a batch
are twins — and

    T(z) = ½ [CE(−d(a, b)/τ, identity) + CE(−d(b, a)/τ, identity)],

with z standardised over the batch, a and b the batch's first and second members of each pair
and d the squared distance per latent dimension: each star must pick its own twin out of the
other half of the batch. The encoder/decoder loss becomes MSE − λ·CE_adv + μ·T.

Under DDP each process holds whole pairs of the global batch; ``gather_rows`` joins every
process's z (with gradients) so that T runs over the global batch, as in one process: each
process computes the same T, the gather's backward sums the W copies of a process's gradient,
and DDP's average over the W processes divides by W again.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gather_rows", "twin_loss"]


def twin_loss(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """T(z) for a batch whose rows 2i and 2i+1 are twins (see the module docstring)."""
    z = (z - z.mean(0)) / (z.std(0) + 1e-6)
    a, b = z[0::2], z[1::2]
    logits = -torch.cdist(a, b).pow(2) / (z.shape[1] * temperature)
    target = torch.arange(len(a), device=z.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def gather_rows(z: torch.Tensor, world: int) -> torch.Tensor:
    """Every process's rows of ``z``, concatenated, gradients kept (z itself when world is 1)."""
    if world == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()))
