"""The fader network's building blocks (twinviz.model assembles them): label-conditioned MLPs,
the learned convolutional front end, the terms of the per-pixel polynomial in (Teff, logg)."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "CONV_FEATURES", "ConvFrontEnd", "LabelMLP", "label_powers"]

#: Width of the convolutional front end's output (ModelConfig.conv_channels > 0).
CONV_FEATURES = 128

# One per choice of Architecture.activation (tests/test_model.py checks they agree).
ACTIVATIONS = {"silu": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "gelu": nn.GELU}


def label_powers(degree: int) -> list[tuple[int, int]]:
    """(i, j) of the terms t^i g^j, i + j ≤ degree, of the per-pixel polynomial in u = (t, g)."""
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


class LabelMLP(nn.Module):
    """MLP; when ``n_cond`` > 0 every linear layer also sees the conditioning labels u
    (cheap: 2 extra inputs per layer, and the label information cannot be washed out)."""

    def __init__(self, sizes: list[int], activation: str, n_cond: int = 2):
        super().__init__()
        self.n_cond = n_cond
        self.layers = nn.ModuleList(nn.Linear(a + n_cond, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = ACTIVATIONS[activation]()

    def forward(self, h: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(torch.cat([h, u.to(h.dtype)], dim=1) if self.n_cond else h)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h


class ConvFrontEnd(nn.Module):
    """Learned convolutional features of the normalised (residual) flux [B, P] → [B, CONV_FEATURES]:
    two 1-D convolutions shared along the wavelength axis (a learned, line-shaped filter bank:
    kernel 9 pixels, the second with stride 4), then one linear map to ``CONV_FEATURES``."""

    KERNEL, STRIDE = 9, 4

    def __init__(self, n_pixels: int, channels: int, activation: str):
        super().__init__()
        k, s = self.KERNEL, self.STRIDE
        self.conv1 = nn.Conv1d(1, channels, k, padding=k // 2)
        self.conv2 = nn.Conv1d(channels, channels, k, stride=s, padding=k // 2)
        self.proj = nn.Linear(channels * ((n_pixels - 1) // s + 1), CONV_FEATURES)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv2(self.act(self.conv1(x[:, None, :]))))
        return self.proj(h.flatten(1))
