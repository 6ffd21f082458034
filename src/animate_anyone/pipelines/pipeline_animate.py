"""AnimateAnyonePipeline: reference image + pose frames -> video.

Components: the trained :class:`AnimateAnyoneModel` (ReferenceNet, denoising UNet, PoseGuider),
a diffusers ``AutoencoderKL``, a transformers ``CLIPVisionModelWithProjection`` and a diffusers
``DDIMScheduler`` configured as the released model was (v-prediction, zero terminal SNR,
trailing timesteps).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from diffusers import AutoencoderKL, DDIMScheduler
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..errors import ConfigError
from ..models.animate_anyone import AnimateAnyoneModel
from ..models.presets import ModelConfig, downscale_factor
from ..models.reference_attention import pool_hold
from .context import frame_coverage, uniform_windows
from .preprocess import clip_pixels, pose_pixels, vae_pixels

# configs/inference/inference_v2.yaml of the reference implementation
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "set_alpha_to_one": True,
}

COMPAT_MODES = ("none", "moore")


def make_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def guidance_combine(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``."""
    return uncond + scale * (cond - uncond)


def prefer_expandable_segments() -> None:
    """Ask PyTorch's CUDA allocator for expandable segments unless the user configured it
    (``PYTORCH_CUDA_ALLOC_CONF``). Fragmentation otherwise keeps gigabytes reserved but unusable:
    an sd15 512×768×24 call that peaks at 10 GiB allocated ran out of memory under a 12 GiB cap
    without it (docs/performance.md). Takes effect only before CUDA is first used."""
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


def latent_hold(hold, num_frames: int, size: tuple[int, int]) -> torch.Tensor:
    """A pipeline's ``reference_hold`` (``(frames,)`` flags or ``(frames, H, W)`` masks over the
    reference image) as a bool tensor ``(frames, h, w)`` on the reference latent's grid ``size``:
    a cell is held where any pixel over it is."""
    mask = torch.as_tensor(np.asarray(hold, dtype=bool))
    if mask.ndim not in (1, 3) or mask.shape[0] != num_frames:
        raise ValueError(f"reference_hold needs one flag or one mask per frame ({num_frames}), "
                         f"got shape {tuple(mask.shape)}")
    if mask.ndim == 1:
        return mask.view(-1, 1, 1).expand(-1, *size).clone()
    return pool_hold(mask, size)


def latent_keep(keep, num_frames: int, size: tuple[int, int]) -> torch.Tensor:
    """A pipeline's ``reference_keep`` (``(frames, H, W)`` bool masks over the output frames) as a
    bool tensor ``(frames, h, w)`` on the latent grid ``size``: a cell is kept only where every
    pixel over it is."""
    mask = torch.as_tensor(np.asarray(keep, dtype=bool))
    if mask.ndim != 3 or mask.shape[0] != num_frames:
        raise ValueError(f"reference_keep needs one mask per frame ({num_frames}), got shape {tuple(mask.shape)}")
    return ~pool_hold(~mask, size)


def check_call_arguments(num_pose_frames: int, width: int, height: int, num_frames: int, num_inference_steps: int,
                         guidance_scale: float, context_frames: int, context_overlap: int, compat: str,
                         max_context: int = 32, strength: float = 1.0) -> None:
    """Raise ``ValueError`` quoting the bad value for arguments the pipeline cannot run with."""
    if width % 8 or height % 8 or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive multiples of 8, got {width}x{height}")
    if num_pose_frames == 0:
        raise ValueError("no pose frames given")
    if not 1 <= num_frames <= num_pose_frames:
        raise ValueError(f"num_frames must be in [1, {num_pose_frames}] (pose frames given), got {num_frames}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be non-negative, got {guidance_scale}")
    if not 1 <= context_frames <= max_context:
        raise ValueError(f"context_frames must be in [1, {max_context}] (motion-module limit), got {context_frames}")
    if not 0 <= context_overlap < context_frames:
        raise ValueError(f"context_overlap must be in [0, {context_frames}), got {context_overlap}")
    if compat not in COMPAT_MODES:
        raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")


def check_frame_size(unet: dict, width: int, height: int, vae_factor: int = 8) -> None:
    """Raise ``ValueError`` when a frame is too small for the UNets' group norms.

    Each down level halves the latent (rounding up). A group norm needs more than one value per
    group, and a small model's deepest levels can be left with 1x1 maps and one channel per group
    (the tiny presets below 40x40); PyTorch would fail deep inside the reference pass instead.
    """
    channels, groups = list(unet["block_out_channels"]), int(unet["norm_num_groups"])

    def fits(w: int, h: int) -> bool:
        h, w, c_in = h // vae_factor, w // vae_factor, channels[0]
        for level, c in enumerate(channels):
            if level:
                h, w = -(-h // 2), -(-w // 2)
            if h * w * min(c_in, c) // groups <= 1:  # a level's first norm sees the previous width
                return False
            c_in = c
        return True

    if not fits(width, height):
        step = max(8, vae_factor)  # frame sizes are multiples of 8
        smallest = next(n for n in range(step, 100 * step, step) if fits(n, n))
        raise ValueError(f"{width}x{height} is too small for this model: its deepest feature maps would hold one "
                         f"value per normalisation group; use frames of at least {smallest}x{smallest}")


@dataclass
class AnimationOutput:
    """Result of a pipeline call.

    Attributes:
        frames: ``(frames, height, width, 3)`` float32 in [0, 1].
        windows: the context windows used (frame indices).
        timesteps: the denoising timesteps.
    """

    frames: np.ndarray
    windows: list[list[int]] = field(default_factory=list)
    timesteps: list[int] = field(default_factory=list)

    def to_uint8(self) -> np.ndarray:
        return (self.frames * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


class AnimateAnyonePipeline:
    """Pose-guided video generation.

    Args:
        model: ReferenceNet + denoising UNet + PoseGuider.
        vae: SD VAE (``sd-vae-ft-mse`` for the released model).
        image_encoder: CLIP vision model with projection (``sd-image-variations`` encoder).
        scheduler: defaults to :func:`make_scheduler`.
    """

    def __init__(
        self,
        model: AnimateAnyoneModel,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        scheduler: DDIMScheduler | None = None,
    ):
        self.model = model.eval()
        self.vae = vae.eval()
        self.image_encoder = image_encoder.eval()
        guider = model.pose_guider.downscale_factor
        if guider != self.vae_factor:
            raise ConfigError(f"the pose guider scales poses down {guider}x but the autoencoder's latent is "
                              f"1/{self.vae_factor} of the frame; they must match")
        self.scheduler = scheduler or make_scheduler()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.offload = False
        # call arguments the weights folder recommends (its demo.json; set by from_pretrained)
        self.recommended: dict = {}

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD's autoencoder, 4 for ``lab-f4``)."""
        return downscale_factor(self.vae.config.block_out_channels)

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> AnimateAnyonePipeline:
        """Load a local weights folder: Moore-AnimateAnyone's ``pretrained_weights/``, MusePose's
        layout or the native one (``weights.layouts``; nothing is fetched from a hub). An
        unusable folder raises :class:`~animate_anyone.errors.WeightsError` naming what is
        missing or mismatched. ``pipe.recommended`` holds the call arguments the folder's
        ``demo.json`` recommends (a lab model's frame size, steps, guidance):
        ``pipe(ref, poses, **pipe.recommended)``."""
        from ..weights.layouts import load_pipeline

        return load_pipeline(folder, device=device, dtype=dtype)

    @classmethod
    def from_config(cls, config: ModelConfig, seed: int | None = 0) -> AnimateAnyonePipeline:
        """A pipeline with freshly initialised weights (random output layers if ``seed`` is given,
        so every path contributes); for tests and benchmarks."""
        if seed is not None:
            torch.manual_seed(seed)
        model = AnimateAnyoneModel(config)
        vae = AutoencoderKL(**config.vae)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.image_encoder))
        if seed is not None:
            with torch.no_grad():
                for module in (model.pose_guider.conv_out,):
                    torch.nn.init.normal_(module.weight, std=0.02)
                for p in model.denoising_unet.parameters():
                    if p.ndim >= 2 and torch.count_nonzero(p) == 0:
                        torch.nn.init.normal_(p, std=0.02)
        return cls(model, vae, encoder)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           offload: bool = False) -> AnimateAnyonePipeline:
        """Move to ``device``/``dtype``. With ``offload`` the components stay on the CPU and visit
        the device only while they run (lower peak memory on a GPU, slower)."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        self.offload = offload and self.device.type != "cpu"
        for module in (self.model, self.vae, self.image_encoder):
            module.to(device="cpu" if self.offload else self.device, dtype=self.dtype)
        return self

    def compile(self, **options: Any) -> AnimateAnyonePipeline:
        """Compile the denoising UNet in place with ``torch.compile`` (inductor; ``options`` go to
        ``nn.Module.compile``). The first call then spends minutes compiling (about 3 on a 2-core
        CPU for the small model; under one in later processes on the same machine, which reuse
        inductor's on-disk cache) and later denoiser calls of the same shapes run faster (0.263 ->
        0.214 s per step for that model at 128x128 on that CPU: docs/performance.md); the frames
        agree with eager ones to about 1e-6. Worth it only for long videos or many calls.
        """
        self.model.denoising_unet.compile(**options)
        return self

    @contextlib.contextmanager
    def _on_device(self, *modules: torch.nn.Module):
        if not self.offload:
            yield
            return
        for m in modules:
            m.to(self.device)
        try:
            yield
        finally:
            for m in modules:
                m.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    # ---- steps ------------------------------------------------------------------------------
    def check_inputs(self, pose_frames, width: int, height: int, num_frames: int, num_inference_steps: int,
                     guidance_scale: float, context_frames: int, context_overlap: int, compat: str,
                     strength: float = 1.0) -> None:
        check_call_arguments(len(pose_frames), width, height, num_frames, num_inference_steps, guidance_scale,
                             context_frames, context_overlap, compat, self.model.config.motion_max_seq_length,
                             strength)
        check_frame_size(self.model.config.unet, width, height, self.vae_factor)

    @torch.no_grad()
    def encode_reference(self, ref_image: Image.Image, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> image embedding ``(1, 1, cross_dim)`` and reference latent ``(1, c, h, w)`` (c: latent channels)."""
        size = self.image_encoder.config.image_size
        with self._on_device(self.image_encoder):
            pixels = clip_pixels(ref_image, size).to(self.device, self.dtype)
            embeds = self.image_encoder(pixels).image_embeds.unsqueeze(1)  # (1, 1, cross_dim)
        with self._on_device(self.vae):
            pixels = vae_pixels(ref_image, width, height).to(self.device, self.dtype)
            latents = self.vae.encode(pixels).latent_dist.mean * self.model.config.vae_scaling_factor
        return embeds, latents

    @torch.no_grad()
    def autoencode(self, frames: np.ndarray, chunk_size: int = 8, reference: np.ndarray | None = None) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` -> the same frames encoded (posterior mean, as the reference is
        encoded) and decoded by :meth:`decode_latents`, uint8: the best any denoiser working in this
        autoencoder's latent space can do (the benchmarks' "ceiling" rows). ``reference`` (uint8
        ``[H, W, 3]``): also refine with the model's reference detail refiner, if it has one."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        with self._on_device(self.vae):
            latents = torch.cat([self.vae.encode(c.to(self.device, self.vae.dtype)).latent_dist.mean
                                 for c in x.split(max(1, chunk_size))])  # fmt: skip
        latents = latents * self.model.config.vae_scaling_factor
        ref = None if reference is None else vae_pixels(reference, frames.shape[2], frames.shape[1])
        return AnimationOutput(frames=self.decode_latents(latents.transpose(0, 1).unsqueeze(0), chunk_size,
                                                          reference=ref)).to_uint8()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, chunk_size: int = 8, reference: torch.Tensor | None = None,
                       hold: torch.Tensor | None = None) -> np.ndarray:
        """``(1, c, frames, h, w)`` -> ``(frames, f*h, f*w, 3)`` float32 in [0, 1] (f = ``vae_factor``,
        8 for SD's autoencoder), ``chunk_size`` frames per VAE call. ``reference``: the reference
        image ``(1, 3, H, W)`` in [-1, 1]; with it, a model that has a reference detail refiner
        refines every decoded frame with it. ``hold``: ``(frames, H, W)`` bool, the reference pixels
        each frame must not take (the refiner leaves the decoded pixels there)."""
        frames = latents[0].transpose(0, 1) / self.model.config.vae_scaling_factor  # (frames, c, h, w)
        refiner = self.model.refiner if reference is not None else None
        out = []
        with self._on_device(self.vae, *(() if refiner is None else (refiner,))):
            if refiner is not None:
                reference = reference.to(self.device, self.dtype)
            for i in range(0, frames.shape[0], max(1, chunk_size)):
                chunk = frames[i : i + chunk_size].to(self.device, self.dtype)
                image = self.vae.decode(chunk).sample  # (n, 3, H, W) in [-1, 1]
                if refiner is not None:
                    refined = refiner(image, reference)
                    if hold is not None:
                        keep = hold[i : i + chunk_size].to(image.device)[:, None]
                        refined = torch.where(keep, image, refined)
                    image = refined
                out.append((image / 2 + 0.5).clamp(0, 1).float().permute(0, 2, 3, 1).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def __call__(
        self,
        ref_image: Image.Image,
        pose_frames: Sequence[Image.Image | np.ndarray] | np.ndarray,
        width: int = 512,
        height: int = 768,
        num_frames: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.5,
        seed: int = 42,
        context_frames: int = 24,
        context_overlap: int = 4,
        wrap_around: bool | None = None,
        compat: str = "none",
        sequential_cfg: bool = False,
        decode_chunk_size: int = 4,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        progress: bool = True,
        use_reference: bool = True,
        strength: float = 1.0,
        reference_hold: Sequence[bool] | np.ndarray | None = None,
        reference_hold_steps: float = 1.0,
        reference_keep: np.ndarray | None = None,
        reference_keep_steps: float = 1.0,
    ) -> AnimationOutput:
        """Generate a video.

        Args:
            ref_image: the character (PIL RGB).
            pose_frames: pose images (PIL or uint8 ``(h, w, 3)``), one per output frame.
            width, height: output size (multiples of 8).
            num_frames: frames to generate (default: all pose frames).
            num_inference_steps: DDIM steps.
            guidance_scale: classifier-free guidance scale; guidance is on iff > 1.
            seed: seeds the only random draw, the initial latent (on the CPU).
            context_frames, context_overlap: window size and overlap for the motion modules.
            wrap_around: let the last window wrap to the first frames (default: only in
                ``compat="moore"``).
            compat: ``"moore"`` reproduces the reference implementation's long pipeline quirks
                and all: wrap-around windows, the bank rounded to fp16, latents and noise in the
                model dtype, and no per-frame averaging without guidance.
            sequential_cfg: run the unconditional and conditional halves one after the other
                (half the activation memory, same result).
            decode_chunk_size: frames per VAE decode call (4: at 512×768 the 8-frame decode would
                be the peak of the whole call on a GPU, docs/performance.md).
            callback: called after every step as ``callback(step_index, timestep, latents)``.
            use_reference: ``False`` skips the ReferenceNet (empty bank: plain self-attention, and
                no reference latent for a model with ``reference_latent_input``, no reference detail
                refiner; the CLIP embedding is still used): the ablation "without ReferenceNet features".
            strength: fraction of the DDIM schedule to run. ``1.0`` (the reference
                implementation's behaviour) starts every frame from pure noise; below 1 every frame
                starts from the reference latent noised to the first of the last
                ``round(strength * num_inference_steps)`` timesteps, and only those steps run (as
                diffusers' image-to-image ``strength``): the static parts of the reference (a fixed
                background) survive, at the cost of less freedom to move away from it.
            reference_hold: what of the reference each generated frame must not read: one bool per
                frame (True: none of it) or a bool mask per frame ``(frames, H, W)`` over the
                reference image (any size; a latent cell is held where any pixel over it is). A
                frame's queries get no reference key from its held cells, and its reference latent
                input is zero there, during the first ``reference_hold_steps`` of the steps run (and
                a reference detail refiner takes no reference pixel from them).
                Meant for frames whose figure faces away from the reference's view, which must not
                show the reference's face (:func:`animate_anyone.pose.facing.reference_hold`).
            reference_hold_steps: fraction of the steps run that ``reference_hold`` covers.
            reference_keep: where each generated frame shows what the reference shows, a bool mask
                per frame ``(frames, H, W)`` over the output (any size; a latent cell is kept only
                where every pixel over it is; :func:`animate_anyone.pose.static.static_mask` reads
                it from the poses). In kept cells the latent follows the reference latent noised
                with the frame's own initial noise to each step's timestep (replaced after every
                step, as inpainting with a known region), so they end on the reference latent, and
                the denoiser draws the rest around them. Ignored with ``use_reference=False``.
            reference_keep_steps: fraction of the steps run during which kept cells are replaced
                (1: all, so they end exactly on the reference latent).
        """
        # 1. Check inputs
        num_frames = len(pose_frames) if num_frames is None else num_frames
        self.check_inputs(pose_frames, width, height, num_frames, num_inference_steps, guidance_scale,
                          context_frames, context_overlap, compat, strength)
        if not 0.0 <= reference_hold_steps <= 1.0:
            raise ValueError(f"reference_hold_steps must be in [0, 1], got {reference_hold_steps}")
        if not 0.0 <= reference_keep_steps <= 1.0:
            raise ValueError(f"reference_keep_steps must be in [0, 1], got {reference_keep_steps}")
        moore = compat == "moore"
        wrap = moore if wrap_around is None else wrap_around
        do_cfg = guidance_scale > 1.0
        model, bank = self.model, self.model.bank
        latent_dtype = self.dtype if moore else torch.float32
        h, w = height // self.vae_factor, width // self.vae_factor
        hold = None if reference_hold is None else latent_hold(reference_hold, num_frames, (h, w))
        keep = None if reference_keep is None else latent_keep(reference_keep, num_frames, (h, w))
        c = int(self.model.config.unet["in_channels"])  # latent channels (4 for SD's autoencoder)

        # 2. Reference: CLIP embedding and VAE latent, then the reference pass, once per video
        embeds, ref_latents = self.encode_reference(ref_image, width, height)
        saved_storage = bank.storage_dtype
        bank.storage_dtype = torch.float16 if moore else None
        try:
            if use_reference:
                with self._on_device(model.reference_unet):
                    self._write_reference(ref_latents, embeds, do_cfg)
            bank.cache_projections = True
            uncond_embeds = torch.zeros_like(embeds)

            # 3. Pose images (features are computed per window: memory does not grow with length)
            poses = self._pose_pixels(pose_frames, num_frames, width, height)  # (1, 3, F, H, W) on CPU

            # 4. Initial noise: the only random draw, on the CPU
            generator = torch.Generator("cpu").manual_seed(seed)
            latents = torch.randn((1, c, num_frames, h, w), generator=generator,
                                  dtype=self.dtype if moore else torch.float32)
            latents = latents.to(self.device, latent_dtype)
            noise = latents

            # 5. Schedules
            self.scheduler.set_timesteps(num_inference_steps, device=self.device)
            timesteps = self.scheduler.timesteps
            if strength < 1.0:
                run = max(1, min(num_inference_steps, round(strength * num_inference_steps)))
                timesteps = timesteps[num_inference_steps - run:]
                start = ref_latents.to(latents.device, latents.dtype).unsqueeze(2).expand_as(latents)
                latents = self.scheduler.add_noise(start, latents, timesteps[:1])
            keep_until = 0
            if keep is not None and use_reference and keep.any() and reference_keep_steps > 0:
                keep_until = max(1, round(reference_keep_steps * len(timesteps)))
                keep = keep.to(self.device)[None, None]  # (1, 1, F, h, w)
                known = ref_latents.to(latents.device, latents.dtype).unsqueeze(2).expand_as(latents)
                latents = torch.where(keep, self.scheduler.add_noise(known, noise, timesteps[:1]), latents)
            windows = uniform_windows(num_frames, context_frames, context_overlap, wrap_around=wrap)
            coverage = torch.tensor(frame_coverage(windows, num_frames), device=self.device, dtype=torch.float32)
            coverage = coverage.view(1, 1, -1, 1, 1)
            pose_cache: dict[int, torch.Tensor] = {}
            cache_pose = len(windows) == 1 or not self.offload

            hold_until = 0 if hold is None or not hold.any() else round(reference_hold_steps * len(timesteps))
            hold = None if hold is None else hold.to(self.device)

            # 6. Denoising loop
            with self._on_device(model.denoising_unet, *self._pose_modules()):
                for i, t in enumerate(tqdm(timesteps, disable=not progress, desc="denoising")):
                    acc = torch.zeros((2 if do_cfg else 1, c, num_frames, h, w), device=self.device,
                                      dtype=latent_dtype if moore else torch.float32)
                    for wi, window in enumerate(windows):
                        if wi in pose_cache:
                            pose_features = pose_cache[wi]
                        else:
                            pose_features = self._pose_features(poses, window)
                            if cache_pose:
                                pose_cache[wi] = pose_features
                        x = latents[:, :, window].to(self.dtype)
                        bank.hold = hold[window] if i < hold_until else None
                        pred = self._predict(x, t, embeds, uncond_embeds, pose_features, do_cfg, sequential_cfg)
                        acc[:, :, window] += pred.to(acc.dtype)
                    if do_cfg:
                        uncond, cond = (acc / coverage).chunk(2)
                        model_output = guidance_combine(uncond, cond, guidance_scale)
                    else:
                        # the reference implementation sums overlapping windows without guidance
                        model_output = acc if moore else acc / coverage
                    latents = self.scheduler.step(model_output.to(latent_dtype), t, latents).prev_sample
                    if i < keep_until:  # the kept cells: the reference latent, noised to the next timestep
                        target = known if i + 1 == len(timesteps) else \
                            self.scheduler.add_noise(known, noise, timesteps[i + 1:i + 2])
                        latents = torch.where(keep, target, latents)
                    if callback is not None:
                        callback(i, int(t), latents)
        finally:
            bank.clear()
            bank.cache_projections = False
            bank.uncond_samples = 0
            bank.hold = None
            bank.storage_dtype = saved_storage

        # 7. Decode (and, for a model with a reference detail refiner, refine against the reference)
        ref_pixels = vae_pixels(ref_image, width, height) if use_reference and model.refiner is not None else None
        pixel_hold = None
        if ref_pixels is not None and hold_until:  # the refiner takes no reference pixel a frame is held from
            pixel_hold = F.interpolate(hold[:, None].float().cpu(), size=(height, width), mode="nearest")[:, 0] > 0
        frames = self.decode_latents(latents, decode_chunk_size, reference=ref_pixels, hold=pixel_hold)
        return AnimationOutput(frames=frames, windows=windows, timesteps=[int(t) for t in timesteps])

    # ---- hooks (the face-reenactment pipeline overrides them) -----------------------------------
    uncond_reads_reference = False  # body model: the unconditional half skips the reference

    def _write_reference(self, ref_latents: torch.Tensor, embeds: torch.Tensor, do_cfg: bool) -> None:
        self.model.write_reference(ref_latents, embeds)

    def _pose_pixels(self, pose_frames, num_frames: int, width: int, height: int):
        return pose_pixels(pose_frames[:num_frames], width, height)

    def _pose_modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.model.pose_guider,)

    def _pose_features(self, poses, window: list[int]) -> torch.Tensor:
        return self.model.pose_guider(poses[:, :, window].to(self.device, self.dtype))

    def _predict(self, x, t, embeds, uncond_embeds, pose_features, do_cfg: bool, sequential: bool) -> torch.Tensor:
        """Model output for one window: ``(2 if do_cfg else 1, 4, f, h, w)``, uncond first."""
        unet, bank = self.model.denoising_unet, self.model.bank
        if not do_cfg:
            bank.uncond_samples = 0
            return unet(x, t, embeds, pose_features=pose_features)
        if sequential:
            bank.uncond_samples = 1  # the whole (batch 1) call ignores the reference
            uncond = unet(x, t, uncond_embeds, pose_features=pose_features)
            bank.uncond_samples = 0
            cond = unet(x, t, embeds, pose_features=pose_features)
            return torch.cat([uncond, cond])
        # one batch [uncond, cond]: same pose features, zero embedding and no reference for uncond
        # (the reenactment model's uncond half reads its own bank row instead)
        bank.uncond_samples = 0 if self.uncond_reads_reference else 1
        try:
            return unet(torch.cat([x, x]), t, torch.cat([uncond_embeds, embeds]),
                        pose_features=torch.cat([pose_features, pose_features]))
        finally:
            bank.uncond_samples = 0
