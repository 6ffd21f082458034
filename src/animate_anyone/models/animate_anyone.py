"""The trainable core: ReferenceNet + denoising UNet + PoseGuider, wired through one reference bank."""

from __future__ import annotations

import torch
from torch import nn

from .pose_guider import PoseGuider
from .presets import ModelConfig
from .reference_attention import ReferenceBank
from .reference_refiner import ReferenceRefiner
from .unets import DenoisingUNet, ReferenceUNet

COMPONENTS = ("reference_unet", "denoising_unet", "pose_guider")
REFINER = "reference_refiner"  # a fourth component when ``config.reference_refiner_channels`` is set


class AnimateAnyoneModel(nn.Module):
    """The three networks of Animate Anyone and the bank that connects them.

    Args:
        config: architecture (see :mod:`animate_anyone.models.presets`).
        bank_dtype: storage dtype of the reference features. ``torch.float16`` reproduces the
            released implementation bit for bit in fp32 runs (it rounds the bank to fp16);
            ``None`` keeps the compute dtype.
    """

    component_names = COMPONENTS  # the saved networks (a subclass with more lists them here)

    def __init__(self, config: ModelConfig, bank_dtype: torch.dtype | None = None):
        super().__init__()
        self.config = config
        self.reference_unet = ReferenceUNet.from_model_config(config)
        self.denoising_unet = DenoisingUNet.from_model_config(config)
        self.pose_guider = PoseGuider(
            conditioning_embedding_channels=config.pose_guider_embedding_channels,
            conditioning_channels=config.pose_guider_conditioning_channels,
            block_out_channels=config.pose_guider_block_out_channels,
        )
        self.bank = ReferenceBank(bank_dtype)
        self.reference_unet.enable_reference(self.bank)
        self.denoising_unet.enable_reference(self.bank)
        if config.reference_refiner_channels:
            self.add_reference_refiner(config.reference_refiner_channels)

    def add_reference_refiner(self, channels: int) -> ReferenceRefiner:
        """Give the model a fresh reference detail refiner (recorded in its config, so saved with it)."""
        self.reference_refiner = ReferenceRefiner(channels)
        self.config.reference_refiner_channels = int(channels)
        return self.reference_refiner

    @property
    def refiner(self) -> ReferenceRefiner | None:
        return getattr(self, REFINER, None)

    def components(self) -> dict[str, nn.Module]:
        names = self.component_names + ((REFINER,) if self.refiner is not None else ())
        return {name: getattr(self, name) for name in names}

    def write_reference(self, ref_latents: torch.Tensor, ref_embeds: torch.Tensor) -> None:
        """Fill the bank from reference latents ``(ref_batch, 4, h, w)`` and image embeddings
        ``(ref_batch, tokens, cross_dim)`` (reference pass at timestep 0)."""
        self.reference_unet.write_bank(ref_latents, ref_embeds, timestep=0)

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        pose: torch.Tensor,
        ref_latents: torch.Tensor | None = None,
        ref_embeds: torch.Tensor | None = None,
        ref_hold: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One training-style forward: reference pass (if reference inputs are given, else an
        empty bank = plain self-attention), pose guider, denoiser.

        Args:
            noisy_latents: ``(batch, 4, frames, h, w)``.
            timestep: scalar or ``(batch,)``.
            encoder_hidden_states: ``(batch, tokens, cross_dim)``.
            pose: pose images ``(batch, 3, frames, 8h, 8w)`` in [0, 1].
            ref_latents, ref_embeds: reference inputs, batch equal to ``batch``.
            ref_hold: ``(batch, frames, h, w)`` bool on the reference latent's grid, the reference
                cells each frame must not read (:attr:`ReferenceBank.hold`); needs ``ref_latents``.
        """
        self.bank.clear()
        self.bank.uncond_samples = 0
        if ref_latents is not None:
            self.write_reference(ref_latents, encoder_hidden_states if ref_embeds is None else ref_embeds)
        pose_features = self.pose_guider(pose)
        self.bank.hold = ref_hold if ref_latents is not None else None
        try:
            return self.denoising_unet(noisy_latents, timestep, encoder_hidden_states, pose_features=pose_features)
        finally:
            self.bank.clear()
            self.bank.hold = None
