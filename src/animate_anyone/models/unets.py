"""The two UNets of Animate Anyone, built on diffusers' maintained UNet blocks.

* :class:`ReferenceUNet` - diffusers ``UNet2DConditionModel`` without its output head (the
  released reference UNet has no ``conv_norm_out``/``conv_out``). It runs once per video on the
  reference latent at timestep 0; its only product is the reference bank.
* :class:`DenoisingUNet` - diffusers ``UNetMotionModel`` (SD spatial blocks applied per frame +
  AnimateDiff motion modules) with two changes that make it numerically the released model:
  the motion modules' GroupNorm normalises **each frame separately** (diffusers' normalises across
  frames), and the PoseGuider features are added right after ``conv_in``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DConditionModel, UNetMotionModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn
from torch.nn import functional as F

from .cross_attention import install_single_token_cross_attention
from .presets import ModelConfig
from .reference_attention import (
    ReferenceBank,
    add_reference_position,
    install_reference_reader,
    install_reference_writer,
)
from .reference_latent import ReferenceLatentInput, frame_rows
from .temporal_attention import TemporalAttnProcessor

_MOTION_BLOCK_TYPES = {
    "CrossAttnDownBlock2D": "CrossAttnDownBlockMotion",
    "DownBlock2D": "DownBlockMotion",
    "CrossAttnUpBlock2D": "CrossAttnUpBlockMotion",
    "UpBlock2D": "UpBlockMotion",
}


def reference_unet_kwargs(config: ModelConfig) -> dict[str, Any]:
    """``UNet2DConditionModel`` kwargs for the preset's SD UNet."""
    return dict(config.unet)


def denoising_unet_kwargs(config: ModelConfig) -> dict[str, Any]:
    """``UNetMotionModel`` kwargs equivalent to the preset's SD UNet + AnimateDiff-v2 motion modules."""
    u = config.unet
    try:
        down = [_MOTION_BLOCK_TYPES[t] for t in u["down_block_types"]]
        up = [_MOTION_BLOCK_TYPES[t] for t in u["up_block_types"]]
    except KeyError as exc:
        raise ValueError(f"unsupported UNet block type {exc.args[0]!r}") from None
    return {
        "in_channels": u["in_channels"],
        "out_channels": u["out_channels"],
        "down_block_types": down,
        "up_block_types": up,
        "block_out_channels": list(u["block_out_channels"]),
        "layers_per_block": u["layers_per_block"],
        "downsample_padding": u["downsample_padding"],
        "mid_block_scale_factor": u["mid_block_scale_factor"],
        "act_fn": u["act_fn"],
        "norm_num_groups": u["norm_num_groups"],
        "norm_eps": u["norm_eps"],
        "cross_attention_dim": u["cross_attention_dim"],
        "num_attention_heads": u["attention_head_dim"],  # SD1.x naming: a head count
        "motion_max_seq_length": config.motion_max_seq_length,
        "motion_num_attention_heads": config.motion_num_attention_heads,
        "use_motion_mid_block": config.motion_mid_block,
    }


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm of a ``(batch, channels, frames, height, width)`` tensor computed per frame.

    Same parameters (and state-dict keys) as ``nn.GroupNorm``; statistics never mix frames, as in
    the original AnimateDiff motion module the released weights were trained with.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * f, c, h, w)  # (b*f, c, h, w)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(b, f, c, h, w).transpose(1, 2)  # (b, c, f, h, w)


class ResidualConv2d(nn.Conv2d):
    """``conv_in`` of the denoising UNet: a ``Conv2d`` (same parameters and state-dict keys) that
    adds :attr:`residual` to its output when one is set.

    The denoiser sets the residual (pose features, reference latent path) around a call of
    diffusers' forward. A forward hook registered per call would do the same, but registering
    it breaks a ``torch.compile`` graph in two; an attribute does not.
    """

    residual: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if self.residual is None else out + self.residual


class SwitchableMotionModule(AnimateDiffTransformer3D):
    """A motion module that can be bypassed (``enabled = False`` makes it the identity).

    Stage-1 training works on single images, where the reference implementation builds its
    denoising UNet without motion modules; bypassing them gives exactly that network while keeping
    one model class (and one state-dict layout) for every stage.
    """

    enabled: bool = True

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any):  # type: ignore[override]
        if not self.enabled:
            return hidden_states
        return super().forward(hidden_states, *args, **kwargs)


def motion_module_paths(unet: nn.Module) -> list[str]:
    """Module paths of the temporal transformers, e.g. ``down_blocks.0.motion_modules.1``."""
    return [
        name
        for name, module in unet.named_modules()
        if name.rsplit(".", 2)[-2:-1] == ["motion_modules"] and hasattr(module, "proj_in")
    ]


class DenoisingUNet(UNetMotionModel):
    """3-D denoising UNet: SD UNet per frame + motion modules + pose features after ``conv_in``.

    Construct with :meth:`from_model_config` (or with ``UNetMotionModel`` kwargs). State-dict keys
    are diffusers ``UNetMotionModel`` keys; ``weights.moore`` maps the released ``.pth`` files to them.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for path in motion_module_paths(self):
            module = self.get_submodule(path)
            old = module.norm
            new = FrameGroupNorm(old.num_groups, old.num_channels, eps=old.eps, affine=old.affine)
            new.load_state_dict(old.state_dict())
            module.norm = new
            module.__class__ = SwitchableMotionModule  # same parameters, adds the bypass switch
            for block in module.transformer_blocks:
                block.attn1.set_processor(TemporalAttnProcessor())
                block.attn2.set_processor(TemporalAttnProcessor())
        self.conv_in.__class__ = ResidualConv2d  # same parameters; adds the pose features
        install_single_token_cross_attention(self)  # the CLIP context is one token
        self.reference_bank: ReferenceBank | None = None

    @classmethod
    def from_model_config(cls, config: ModelConfig) -> DenoisingUNet:
        unet = cls(**denoising_unet_kwargs(config))
        if config.reference_position_features:
            add_reference_position(unet, config.reference_position_features)
        if config.reference_latent_input:
            unet.add_module("reference_latent_input", ReferenceLatentInput(
                int(config.unet["in_channels"]), int(config.unet["block_out_channels"][0])))
        return unet

    def set_motion_modules(self, enabled: bool) -> None:
        """Switch the temporal motion modules on (video) or off (image training, stage 1)."""
        for path in motion_module_paths(self):
            self.get_submodule(path).enabled = enabled

    def motion_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters stage 2 trains: everything under a ``motion_modules`` module."""
        return {n: p for n, p in self.named_parameters() if ".motion_modules." in n}

    def enable_reference(self, bank: ReferenceBank) -> None:
        """Read reference features from ``bank`` in every spatial self-attention."""
        install_reference_reader(self, bank)
        self.reference_bank = bank

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int | float,
        encoder_hidden_states: torch.Tensor,
        pose_features: torch.Tensor | None = None,
        return_dict: bool = False,
        **kwargs: Any,
    ):
        """Predict the model output (v for the released model).

        Args:
            sample: noisy latents ``(batch, 4, frames, h, w)``.
            timestep: scalar or ``(batch,)``.
            encoder_hidden_states: image embedding ``(batch, tokens, cross_dim)``, shared by all frames.
            pose_features: PoseGuider output ``(batch, C0, frames, h, w)``, added after ``conv_in``.

        Returns:
            ``(batch, 4, frames, h, w)`` tensor (or diffusers' output object if ``return_dict``).
        """
        b, _, f, h, w = sample.shape
        if encoder_hidden_states.shape[0] != b:
            raise ValueError(f"encoder_hidden_states has batch {encoder_hidden_states.shape[0]}, sample has {b}")
        # (b, tokens, dim) -> (b*f, tokens, dim): the spatial blocks see one row per frame
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(f, dim=0)
        residual = None
        if pose_features is not None:
            if pose_features.shape[0] != b or pose_features.shape[2:] != (f, h, w):
                raise ValueError(
                    f"pose features of shape {tuple(pose_features.shape)} do not match latents {tuple(sample.shape)}"
                )
            # (b, C0, f, h, w) -> (b*f, C0, h, w), the layout of conv_in's output
            residual = pose_features.transpose(1, 2).reshape(b * f, -1, h, w).to(sample.dtype)
        if self.reference_bank is not None:
            self.reference_bank.num_frames = f
            self.reference_bank.latent_size = (h, w)
        reference = self._reference_latent_residual(b, f, (h, w), sample.dtype)
        if reference is not None:
            residual = reference if residual is None else residual + reference
        self.conv_in.residual = residual
        try:
            out = super().forward(sample, timestep, encoder_hidden_states, return_dict=return_dict, **kwargs)
        finally:
            self.conv_in.residual = None
        return out if return_dict else out[0]

    def _reference_latent_residual(self, batch: int, frames: int, size: tuple[int, int],
                                   dtype: torch.dtype) -> torch.Tensor | None:
        """The reference latent path's ``(batch * frames, C0, h, w)`` residual, or None (no such
        path, or no reference latent in the bank)."""
        path = getattr(self, "reference_latent_input", None)
        bank = self.reference_bank
        if path is None or bank is None or bank.reference_latent is None:
            return None
        residual = path(bank.reference_latent.to(dtype), size)  # (ref_batch, C0, h, w)
        rows = frame_rows(residual, batch, frames, bank.uncond_samples)
        plain = bank.uncond_samples * frames
        held = bank.held(rows.shape[0] - plain, size)  # (reading rows, h*w)
        if held is not None:  # no reference latent from the held cells
            keep = (~held.to(rows.device)).to(rows.dtype).view(-1, 1, *size)
            rows = torch.cat([rows[:plain], rows[plain:] * keep])
        return rows


class ReferenceUNet(UNet2DConditionModel):
    """SD UNet that only fills a reference bank (no output head, as in the released weights)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The released reference UNet has neither `conv_norm_out` nor `conv_out`: its output
        # (the last up block's features) is never used.
        self.conv_norm_out = None
        self.conv_act = None
        self.conv_out = nn.Identity()
        install_single_token_cross_attention(self)  # the CLIP context is one token
        self.reference_bank: ReferenceBank | None = None

    @classmethod
    def from_model_config(cls, config: ModelConfig) -> ReferenceUNet:
        return cls(**reference_unet_kwargs(config))

    def enable_reference(self, bank: ReferenceBank) -> None:
        """Write every spatial self-attention input into ``bank``."""
        install_reference_writer(self, bank)
        self.reference_bank = bank

    def write_bank(self, latents: torch.Tensor, encoder_hidden_states: torch.Tensor,
                   timestep: int | torch.Tensor = 0) -> ReferenceBank:
        """Run on reference latents ``(ref_batch, 4, h, w)`` and fill the bank (timestep 0 by default)."""
        if self.reference_bank is None:
            raise RuntimeError("call enable_reference(bank) before write_bank()")
        self.reference_bank.clear()
        self.reference_bank.reference_latent = latents
        super().forward(latents, timestep, encoder_hidden_states, return_dict=False)
        return self.reference_bank
