"""Reference detail refiner: a small pixel-space network that runs after the VAE decoder and may take
pixels from the reference image where the decoded frame shows the same content there.

A small autoencoder cannot rebuild fine repeating detail (stripes, checks, dots) that the reference
image shows exactly; wherever the scene stays in place between the reference and a frame, the
reference pixels are the better answer. The refiner sees the decoded frame, the reference image and
their difference, and returns, per pixel,

    decoded + gate * (reference - decoded) + residual,

with ``gate`` in (0, 1) and a small ``residual``, both predicted by a two-level convolutional
U-Net. It is trained on pairs of frames of the same clip (training stage ``refiner``), the decoded
frame coming from a noised latent so that it carries the kind of errors a denoiser leaves. Our
extension for the lab models (``ModelConfig.reference_refiner_channels``); the released
architecture has none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GATE_OFFSET = -4.0  # the gate's logit before training: sigmoid(-4) = 0.018, nearly the plain decoder


class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class ReferenceRefiner(nn.Module):
    """``(decoded, reference)``, both ``(n, 3, H, W)`` in [-1, 1] (H, W multiples of 4) -> refined
    frames ``(n, 3, H, W)``, not clamped.

    Args:
        channels: width of every layer (the lab models use 32).
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        c = int(channels)
        self.conv_in = nn.Conv2d(9, c, 3, padding=1)
        self.block0 = _Block(c)
        self.down1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.block1 = _Block(c)
        self.down2 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.mid = nn.Sequential(_Block(c), _Block(c))
        self.up1 = _Block(c)
        self.up0 = _Block(c)
        self.conv_out = nn.Conv2d(c, 4, 3, padding=1)  # gate logit + RGB residual, zero at initialisation
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, decoded: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if reference.shape[0] == 1 and decoded.shape[0] > 1:
            reference = reference.expand(decoded.shape[0], -1, -1, -1)
        if reference.shape != decoded.shape:
            raise ValueError(f"reference {tuple(reference.shape)} does not match the frames {tuple(decoded.shape)}")
        h0 = self.block0(self.conv_in(torch.cat([decoded, reference, decoded - reference], dim=1)))
        h1 = self.block1(self.down1(F.silu(h0)))
        h2 = self.mid(self.down2(F.silu(h1)))
        u1 = self.up1(h1 + F.interpolate(h2, size=h1.shape[-2:], mode="nearest"))
        u0 = self.up0(h0 + F.interpolate(u1, size=h0.shape[-2:], mode="nearest"))
        out = self.conv_out(F.silu(u0))
        gate = torch.sigmoid(out[:, :1] + GATE_OFFSET)
        return decoded + gate * (reference - decoded) + out[:, 1:]
