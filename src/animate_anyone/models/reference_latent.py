"""Reference latent input: the reference's own latent, added to the denoiser where the pose is.

Our extension for small models (``ModelConfig.reference_latent_input``; off for the released
architecture). The released model sees the reference only through attention, where a token has to
find its counterpart among all reference tokens. For what stays in place between the reference and
the video (a static background, seen from a fixed camera) the answer is the reference latent at the
same cell. This path gives the denoiser exactly that: two 3x3 convolutions map the clean reference
latent to the width of the denoiser's ``conv_in`` output, and the result is added there, next to
the PoseGuider's features, in every frame. The second convolution starts at zero, so a model
warm-started into a preset with this path predicts exactly what it predicted before.

The latent travels in the :class:`~animate_anyone.models.reference_attention.ReferenceBank` with the
reference features, so everything that empties the bank (the no-reference baseline, the
unconditional samples of classifier-free guidance that skip the reference, unconditional dropout
in training) also switches this path off.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .reference_attention import reference_repeat


class ReferenceLatentInput(nn.Module):
    """Reference latent ``(ref_batch, latent_channels, h, w)`` -> residual ``(ref_batch, channels, h, w)``
    for the denoiser's ``conv_in`` output.

    Args:
        latent_channels: channels of the autoencoder's latent (the denoiser's ``in_channels``).
        channels: width of the denoiser's ``conv_in`` output (its first block width).
    """

    def __init__(self, latent_channels: int, channels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(latent_channels, channels, kernel_size=3, padding=1)
        self.conv_out = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Residual at ``size`` (the denoiser's latent ``(h, w)``); a reference latent of another
        size is resized bilinearly first."""
        if size is not None and tuple(latents.shape[-2:]) != tuple(size):
            latents = F.interpolate(latents, size=size, mode="bilinear", align_corners=False)
        return self.conv_out(F.silu(self.conv_in(latents)))


def frame_rows(residual: torch.Tensor, batch: int, frames: int, uncond_samples: int) -> torch.Tensor:
    """Spread a per-reference residual ``(ref_batch, C, h, w)`` over a denoiser call's rows
    ``(batch * frames, C, h, w)`` (batch-major) by the reference attention's rule
    (:func:`~animate_anyone.models.reference_attention.reference_repeat`): the rows of the
    ``uncond_samples`` leading samples get zeros, the rest read the references in order."""
    plain = uncond_samples * frames
    rows = residual.repeat_interleave(reference_repeat(batch * frames, plain, residual.shape[0]), dim=0)
    if plain:
        rows = torch.cat([rows.new_zeros(plain, *residual.shape[1:]), rows], dim=0)
    return rows
