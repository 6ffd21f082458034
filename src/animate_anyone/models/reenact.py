"""Face reenactment (the report's extension; architecture.md §13).

Same networks as the body model with three differences:

* the reference pass runs on ``[zeros, reference]`` latents under classifier-free guidance, and
  **both** halves of the denoiser read their own bank row (the unconditional half attends to the
  features of an all-zero reference latent instead of skipping the reference);
* the bank is never rounded to fp16;
* two pose guiders: ``pose_guider`` sees the upper-face landmark map (head pose, eyes) and
  ``pose_guider2`` the re-centred mouth map; their features are summed.
"""

from __future__ import annotations

import torch

from .animate_anyone import AnimateAnyoneModel
from .pose_guider import PoseGuider
from .presets import ModelConfig

REENACT_COMPONENTS = ("reference_unet", "denoising_unet", "pose_guider", "pose_guider2")


def moore_reenact_block_path(name: str) -> str:
    """The reference implementation's reenactment bank names -> our module paths, e.g.
    ``CrossAttnUpBlock_2__1_TransformerModel_0_TransformerBlock`` -> ``up_blocks.2.attentions.1.transformer_blocks.0``."""
    head, _, rest = name.partition("_TransformerModel_0_TransformerBlock")
    if rest or not head:
        raise ValueError(f"not a reenactment bank name: {name!r}")
    if head == "MidBlock_0":
        return "mid_block.attentions.0.transformer_blocks.0"
    kind, _, idx = head.partition("_")
    i, _, j = idx.partition("__")
    prefix = {"CrossAttnDownBlock": "down_blocks", "CrossAttnUpBlock": "up_blocks"}.get(kind)
    if prefix is None or not i.isdigit() or not j.isdigit():
        raise ValueError(f"not a reenactment bank name: {name!r}")
    return f"{prefix}.{i}.attentions.{j}.transformer_blocks.0"


class ReenactModel(AnimateAnyoneModel):
    """ReferenceNet + denoising UNet + two pose guiders (upper face, mouth)."""

    component_names = REENACT_COMPONENTS

    def __init__(self, config: ModelConfig):
        super().__init__(config, bank_dtype=None)
        self.pose_guider2 = PoseGuider(
            conditioning_embedding_channels=config.pose_guider_embedding_channels,
            conditioning_channels=config.pose_guider_conditioning_channels,
            block_out_channels=config.pose_guider_block_out_channels,
        )

    def face_features(self, upper: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
        """``(b, 3, f, H, W)`` upper-face and mouth maps in [0, 1] -> summed pose features."""
        return self.pose_guider(upper) + self.pose_guider2(mouth)

    def write_reference_cfg(self, ref_latents: torch.Tensor, ref_embeds: torch.Tensor, guidance: bool) -> None:
        """Fill the bank for one video: rows ``[zeros, reference]`` (contexts ``[zeros, e]``) with
        guidance, the reference alone without. ``ref_latents``: ``(1, 4, h, w)``; ``ref_embeds``:
        ``(1, tokens, dim)``."""
        if guidance:
            ref_latents = torch.cat([torch.zeros_like(ref_latents), ref_latents])
            ref_embeds = torch.cat([torch.zeros_like(ref_embeds), ref_embeds])
        self.bank.uncond_samples = 0  # every row reads its own bank row
        self.write_reference(ref_latents, ref_embeds)

    def forward(  # type: ignore[override]
        self,
        noisy_latents: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        upper: torch.Tensor,
        mouth: torch.Tensor,
        ref_latents: torch.Tensor | None = None,
        ref_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training-style forward: reference pass on ``ref_latents`` (one row per sample, a zero
        latent for unconditional samples), face features, denoiser."""
        self.bank.clear()
        self.bank.uncond_samples = 0
        if ref_latents is not None:
            self.write_reference(ref_latents, encoder_hidden_states if ref_embeds is None else ref_embeds)
        try:
            return self.denoising_unet(noisy_latents, timestep, encoder_hidden_states,
                                       pose_features=self.face_features(upper, mouth))
        finally:
            self.bank.clear()
