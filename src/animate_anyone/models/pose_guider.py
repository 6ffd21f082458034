"""PoseGuider: a small conv net that turns a pose image into a residual for the denoiser's latent."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

from .presets import downscale_factor


class PoseGuider(ModelMixin, ConfigMixin):
    """Encode pose images at pixel resolution into features at latent resolution.

    Eight 3x3 convolutions: ``conv_in`` then pairs of (same width, stride 1) and (wider,
    stride 2) blocks, SiLU after each, and a zero-initialised ``conv_out`` so that a fresh guider
    leaves the denoiser unchanged. Three stride-2 steps give the VAE's factor 8.

    Args:
        conditioning_embedding_channels: output channels; the denoiser's ``conv_in`` width
            (320 for SD1.5).
        conditioning_channels: channels of the pose image (3, RGB in [0, 1]).
        block_out_channels: widths of the conv stack; the released checkpoints use
            ``(16, 32, 96, 256)``.
    """

    @register_to_config
    def __init__(
        self,
        conditioning_embedding_channels: int = 320,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 96, 256),
    ):
        super().__init__()
        if len(block_out_channels) < 2:
            raise ValueError(f"block_out_channels needs at least 2 entries, got {tuple(block_out_channels)}")
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def downscale_factor(self) -> int:
        return downscale_factor(self.config.block_out_channels)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        """Pose images ``(batch, 3, frames, height, width)`` in [0, 1] ->
        features ``(batch, embedding_channels, frames, height / 8, width / 8)``.
        A 4-D ``(batch, 3, height, width)`` input gives 4-D output."""
        video = pose.ndim == 5
        if video:
            b, c, f, h, w = pose.shape
            pose = pose.transpose(1, 2).reshape(b * f, c, h, w)  # (b*f, c, h, w)
        x = F.silu(self.conv_in(pose))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.conv_out(x)  # (b*f, emb, h/8, w/8)
        if video:
            x = x.reshape(b, f, *x.shape[1:]).transpose(1, 2)  # (b, emb, f, h/8, w/8)
        return x
