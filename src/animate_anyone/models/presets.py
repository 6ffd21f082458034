"""Model size presets: ``sd15`` (the released model) and ``tiny`` (tests, CPU work),
``small`` (the shared fixture's size, used by the speed benchmarks), ``lab`` (tiny on a 16-channel
latent: the shipped demo model).

A preset is a :class:`ModelConfig`, the single source of every architecture number. The SD-style
UNet settings are kept in the vocabulary of a Stable Diffusion ``unet/config.json`` so that a
checkpoint folder's own config can be dropped in unchanged (``ModelConfig.from_sd_unet_config``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

from ..errors import ConfigError

# The Stable Diffusion 1.5 `unet/config.json` fields that define the architecture.
SD15_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,  # SD1.x naming: this is the number of heads, not their width
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# The fields of an SD unet config that we accept; anything else in a config.json is ignored
# only if it is bookkeeping (leading underscore) or known to be irrelevant for SD1.x.
_SD_IGNORED_KEYS = {
    "sample_size",  # only a default for pipelines
    "center_input_sample",
    "dual_cross_attention",
    "use_linear_projection",
    "only_cross_attention",
    "upcast_attention",
    "num_class_embeds",
    "class_embed_type",
    "resnet_time_scale_shift",
    "time_embedding_type",
    "timestep_post_act",
    "time_cond_proj_dim",
    "conv_in_kernel",
    "conv_out_kernel",
    "projection_class_embeddings_input_dim",
    "mid_block_type",
    "addition_embed_type",
    "addition_time_embed_dim",
    "encoder_hid_dim",
    "encoder_hid_dim_type",
    "class_embeddings_concat",
    "mid_block_only_cross_attention",
    "cross_attention_norm",
    "dropout",
    "num_attention_heads",
    "transformer_layers_per_block",
    "reverse_transformer_layers_per_block",
    "addition_embed_type_num_heads",
    "time_embedding_dim",
    "time_embedding_act_fn",
    "attention_type",
}


@dataclasses.dataclass
class ModelConfig:
    """Every architecture number of the Animate Anyone model.

    Attributes:
        unet: SD-style UNet config (vocabulary of diffusers ``UNet2DConditionModel``), shared by
            the reference UNet and the spatial part of the denoising UNet.
        motion_num_attention_heads: heads of the temporal attentions (AnimateDiff v2: 8).
        motion_max_seq_length: length of the sinusoidal frame-position table; caps the
            frames a single denoiser call may see (AnimateDiff v2: 32).
        motion_mid_block: whether the mid block carries a motion module (inference_v2: yes).
        pose_guider_block_out_channels: channel plan of the PoseGuider's conv stack; the released
            checkpoints use (16, 32, 96, 256).
        pose_guider_conditioning_channels: channels of the pose image (RGB: 3).
        image_encoder: transformers ``CLIPVisionConfig`` kwargs plus ``projection_dim``.
        vae: diffusers ``AutoencoderKL`` kwargs.
        vae_scaling_factor: latent scale; the reference hard-codes 0.18215.
        reference_position_features: 0 (the released architecture) or a multiple of 4: the
            denoiser's reference attention also scores each reference token by where it lies
            relative to the query (:class:`~animate_anyone.models.reference_attention.ReferencePosition`;
            one learned gain per head and block, zero at initialisation). Our extension for small
            models, which do not learn to copy a static background position by position.
        reference_latent_input: whether the denoiser also gets the clean reference latent, through
            two convolutions (the second zero at initialisation), added after ``conv_in`` like the
            pose features (:class:`~animate_anyone.models.reference_latent.ReferenceLatentInput`).
            Our extension, off for the released architecture: the direct path for what stays in
            place between the reference and the video.
        reference_refiner_channels: 0 (the released architecture) or the width of a small
            pixel-space network after the VAE decoder that may take pixels from the reference image
            where the frame shows the same content there
            (:class:`~animate_anyone.models.reference_refiner.ReferenceRefiner`). Our extension for
            small autoencoders, which blur fine repeating detail the reference shows exactly.
    """

    unet: dict[str, Any]
    motion_num_attention_heads: int = 8
    motion_max_seq_length: int = 32
    motion_mid_block: bool = True
    pose_guider_block_out_channels: tuple[int, ...] = (16, 32, 96, 256)
    pose_guider_conditioning_channels: int = 3
    image_encoder: dict[str, Any] = dataclasses.field(default_factory=dict)
    vae: dict[str, Any] = dataclasses.field(default_factory=dict)
    vae_scaling_factor: float = 0.18215
    reference_position_features: int = 0
    reference_latent_input: bool = False
    reference_refiner_channels: int = 0

    def __post_init__(self) -> None:
        if self.reference_position_features < 0 or self.reference_position_features % 4:
            raise ConfigError(f"reference_position_features must be 0 or a positive multiple of 4, "
                              f"not {self.reference_position_features}")
        if self.reference_refiner_channels < 0:
            raise ConfigError(f"reference_refiner_channels must be 0 or positive, not {self.reference_refiner_channels}")
        self.unet = normalise_sd_unet_config(self.unet)
        self.pose_guider_block_out_channels = tuple(self.pose_guider_block_out_channels)
        guider = downscale_factor(self.pose_guider_block_out_channels)
        if guider != self.vae_factor:
            raise ConfigError(f"the pose guider scales poses down {guider}x but the autoencoder's latent is "
                              f"1/{self.vae_factor} of the frame: pose_guider_block_out_channels needs "
                              f"{int(math.log2(self.vae_factor)) + 1} entries")

    # ---- derived numbers -------------------------------------------------------------------
    @property
    def vae_factor(self) -> int:
        """How many pixels one latent cell spans per side: 2 ** (autoencoder levels - 1), 8 for SD's
        (and whenever the config leaves the autoencoder to a released folder)."""
        levels = self.vae.get("block_out_channels")
        return downscale_factor(levels) if levels else 8

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    @property
    def pose_guider_embedding_channels(self) -> int:
        """The PoseGuider's output channels = the denoiser's ``conv_in`` output channels."""
        return int(self.unet["block_out_channels"][0])

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pose_guider_block_out_channels"] = list(self.pose_guider_block_out_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        if "unet" not in data:
            raise ConfigError("model config needs a 'unet' section")
        return cls(**copy.deepcopy(data))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(copy.deepcopy(self), **changes)


def downscale_factor(block_out_channels) -> int:
    """How many pixels one output cell spans per side for a conv stack that halves the size
    between consecutive widths (diffusers' autoencoder levels, the PoseGuider): ``2 ** (levels - 1)``."""
    return 2 ** (len(block_out_channels) - 1)


def normalise_sd_unet_config(config: dict[str, Any]) -> dict[str, Any]:
    """Keep the architecture fields of an SD unet config, reject ones we cannot build.

    Raises:
        ConfigError: for a field that changes the architecture in a way this model does not
            support (SDXL-style additions, linear projections, ...).
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if key in SD15_UNET_CONFIG:
            out[key] = list(value) if isinstance(value, (list, tuple)) else value
        elif key in _SD_IGNORED_KEYS:
            if key == "use_linear_projection" and value:
                raise ConfigError("UNet configs with use_linear_projection=true (SD2.x) are not supported")
            if key in {"addition_embed_type", "encoder_hid_dim", "class_embed_type"} and value:
                raise ConfigError(f"UNet config field {key}={value!r} (SDXL-style conditioning) is not supported")
            continue
        else:
            raise ConfigError(f"unknown UNet config field {key!r}")
    missing = sorted(set(SD15_UNET_CONFIG) - set(out) - {"sample_size", "center_input_sample"})
    if missing:
        raise ConfigError(f"UNet config lacks {', '.join(missing)}")
    out.setdefault("sample_size", 64)
    out.setdefault("center_input_sample", False)
    n_blocks = len(out["block_out_channels"])
    for key in ("down_block_types", "up_block_types"):
        if len(out[key]) != n_blocks:
            raise ConfigError(
                f"UNet config: {key} has {len(out[key])} entries but block_out_channels has {n_blocks}"
            )
    for ch in out["block_out_channels"]:
        if ch % out["norm_num_groups"]:
            raise ConfigError(
                f"UNet config: block width {ch} is not a multiple of norm_num_groups={out['norm_num_groups']}"
            )
    return out


SD15_IMAGE_ENCODER = {
    # CLIP ViT-L/14 vision tower of lambdalabs/sd-image-variations-diffusers
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "num_channels": 3,
}

SD15_VAE = {
    # stabilityai/sd-vae-ft-mse
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
}


def _sd15() -> ModelConfig:
    return ModelConfig(unet=dict(SD15_UNET_CONFIG), image_encoder=dict(SD15_IMAGE_ENCODER), vae=dict(SD15_VAE))


def _tiny() -> ModelConfig:
    # Same topology as sd15 (4 levels, 2 layers, motion modules everywhere) at 1/10 of the width:
    # the shape of the shared parity fixture. About 6 M parameters in all.
    unet = dict(SD15_UNET_CONFIG)
    unet.update(block_out_channels=[32, 32, 64, 64], attention_head_dim=4, cross_attention_dim=32, sample_size=8)
    return ModelConfig(
        unet=unet,
        pose_guider_block_out_channels=(16, 32, 64, 128),
        image_encoder={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "num_channels": 3,
        },
        vae={
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [16, 32, 32, 32],  # a light full-resolution level: CPU-trainable
            "layers_per_block": 1,
            "act_fn": "silu",
            "latent_channels": 4,
            "norm_num_groups": 4,  # >= 4 channels per group: per-channel norms would erase colour
            "sample_size": 64,
        },
    )


def _small() -> ModelConfig:
    # The model of the shared parity fixture (and of the reference implementation's CPU speed
    # baselines): the tiny UNet with the released PoseGuider channel plan and a 224-px CLIP input.
    cfg = _tiny()
    cfg.pose_guider_block_out_channels = (16, 32, 96, 256)
    cfg.image_encoder.update(image_size=224, patch_size=32)
    return cfg


def _lab() -> ModelConfig:
    # The demo model's architecture: the tiny UNet on a 16-channel latent. Trained on the lab,
    # the tiny autoencoder with SD's 4 channels reconstructed held-out frames at about 20 dB
    # (SSIM 0.68) and with 16 channels at about 22 dB (SSIM 0.71; benchmarks/lab_quality.py,
    # 6 sequences): the detail a denoiser can reproduce is bounded by that, and the wider latent
    # costs the denoiser almost nothing (only conv_in/conv_out grow).
    cfg = _tiny()
    cfg.unet.update(in_channels=16, out_channels=16)
    cfg.vae.update(latent_channels=16)
    return cfg


def _lab_large_vae() -> ModelConfig:
    # ``lab`` with an autoencoder of twice the width and two layers per level (5x the parameters,
    # 1.75 M). Written for GPU training; on the CPU it proved no better per step than the small
    # one (its latent is still 1/8 of the frame), so the GPU recipe uses ``lab-f4`` instead.
    cfg = _lab()
    cfg.vae.update(block_out_channels=[32, 64, 64, 64], layers_per_block=2, norm_num_groups=8)
    return cfg


def _lab_f4() -> ModelConfig:
    # ``lab`` on an autoencoder that down-samples 4x instead of 8x (three levels, 8 latent
    # channels): a 32x32x8 latent for a 128x128 frame instead of 16x16x16. The lab's finest
    # background patterns (8-26 px periods) are one to three cells of an 8x latent, which the
    # autoencoder loses: after 4 000 CPU steps of lab_tiny_vae.yaml this one reconstructs held-out
    # frames at SSIM 0.89 (patterned backgrounds 0.85), the 8x one at 0.78, copying the reference
    # scores 0.84 (docs/training.md). The denoiser costs about 4x per frame; meant for the GPU
    # (configs/train/lab_gpu_*.yaml).
    cfg = _lab()
    cfg.unet.update(in_channels=8, out_channels=8)
    cfg.vae.update(down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                   block_out_channels=[16, 32, 32], latent_channels=8)
    cfg.pose_guider_block_out_channels = (16, 32, 64)  # two stride-2 steps: poses at 1/4
    return cfg


def _lab_f4_pos() -> ModelConfig:
    # ``lab-f4`` whose denoiser can also find a reference token by its position. Trained lab-f4
    # models attend to the reference nearly uniformly over positions in the 32x32 blocks (the
    # weight on the same cell is that of any other cell: benchmarks/denoiser_fidelity.py and
    # docs/training.md), so a static patterned background comes out in its mean colour. Same
    # tensors as lab-f4 plus one gain per head and block: a lab-f4 model warm-starts into it.
    cfg = _lab_f4()
    cfg.reference_position_features = 16
    return cfg


def _lab_f4_ref() -> ModelConfig:
    # ``lab-f4-pos`` whose denoiser also gets the reference latent itself, added after conv_in
    # (ReferenceLatentInput). With the position term the trained lab-f4-pos model puts about 3 % of
    # a 32x32 block's attention on the reference cell at the query's place (60 times the average),
    # and its one-step estimates of a patterned background stay far below the autoencoder's.
    # Same tensors as lab-f4-pos plus the two convolutions, the second zero: a lab-f4-pos model
    # warm-starts into it unchanged.
    cfg = _lab_f4_pos()
    cfg.reference_latent_input = True
    return cfg


def _lab_f4_refine() -> ModelConfig:
    # ``lab-f4-ref`` plus the reference detail refiner after the decoder (ReferenceRefiner): the
    # 1/4 autoencoder rebuilds a stripe, check or dot background with SSIM 0.78 on average where
    # copying the reference scores 0.85 (benchmarks/lab_quality.py). The refiner is trained on its
    # own (training stage ``refiner``) with everything else frozen.
    cfg = _lab_f4_ref()
    cfg.reference_refiner_channels = 32
    return cfg


PRESETS = {"sd15": _sd15, "small": _small, "tiny": _tiny, "lab": _lab, "lab-large-vae": _lab_large_vae,
           "lab-f4": _lab_f4, "lab-f4-pos": _lab_f4_pos, "lab-f4-ref": _lab_f4_ref, "lab-f4-refine": _lab_f4_refine}


def get_preset(name: str) -> ModelConfig:
    """Return a fresh copy of the named preset (one of ``PRESETS``)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
