"""The training loop: stage "vae" (lab autoencoder), "image" (stage 1), "video" (stage 2) and
"refiner" (the reference detail refiner, :mod:`animate_anyone.models.reference_refiner`).

Design points:

* **Exact resume.** Everything random in optimisation step ``s`` (which samples, the dataset's
  augmentation, noise, timesteps, unconditional dropout) is drawn from generators seeded by
  ``(seed, s, micro-step, rank)``. A checkpoint holds model, optimiser, LR-scheduler and EMA state
  (``accelerate.save_state``), so a run killed at any moment and resumed from its last checkpoint
  ends with the same weights as an uninterrupted run.
* **Atomic checkpoints.** A checkpoint is written to a hidden temporary folder and renamed to
  ``checkpoint-<step>`` only when complete; older ones beyond ``keep_checkpoints`` are removed after
  the new one exists. Progress is never lost to a crash during saving.
* **Devices and processes** through ``accelerate`` (``accelerate launch`` or ``torchrun`` for
  several GPUs/processes, mixed precision, gradient accumulation); DDP runs with
  ``find_unused_parameters`` because unconditional batches skip the reference UNet.
* **Losses** as the reference implementation (architecture.md §11): v-prediction on a zero-SNR
  schedule, min-SNR-γ weighting ``min(SNR+1, γ)/(SNR+1)``, noise offset, whole-batch unconditional
  dropout (blank CLIP input = zeros in normalised pixel space, no reference features).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InputError
from .config import TrainConfig

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


# ---------------------------------------------------------------------------------------------
# seeding


def step_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# model pieces


class DenoiserStep(nn.Module):
    """What DDP wraps for the image/video stages: reference pass + pose guider + denoiser."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, noisy, timesteps, embeds, pose, ref_latents=None, pose2=None, ref_hold=None):
        if pose2 is not None:  # face reenactment: upper-face and mouth maps
            return self.model(noisy, timesteps, embeds, pose, pose2, ref_latents=ref_latents)
        if ref_hold is not None:
            return self.model(noisy, timesteps, embeds, pose, ref_latents=ref_latents, ref_hold=ref_hold)
        return self.model(noisy, timesteps, embeds, pose, ref_latents=ref_latents)


class EMA:
    """Exponential moving average of a set of parameters (kept in fp32 on their device)."""

    def __init__(self, params: dict[str, nn.Parameter], decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, nn.Parameter]) -> None:
        names = list(params)  # one multi-tensor kernel instead of one per parameter (GPU launch overhead)
        torch._foreach_lerp_([self.shadow[n] for n in names], [params[n].detach().float() for n in names], 1 - self.decay)

    @torch.no_grad()
    def copy_to(self, params: dict[str, nn.Parameter]) -> None:
        for n, p in params.items():
            p.copy_(self.shadow[n].to(p.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = state["decay"]
        self.shadow = {n: t.clone() for n, t in state["shadow"].items()}


def make_noise_scheduler(cfg: TrainConfig):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule=cfg.noise.beta_schedule,
        clip_sample=False, steps_offset=1, prediction_type=cfg.noise.prediction_type,
        rescale_betas_zero_snr=cfg.noise.zero_snr, timestep_spacing="trailing",
    )  # fmt: skip


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, v_prediction: bool):
    """Per-sample loss weights of min-SNR-γ (with SNR+1 for v-prediction, as the reference)."""
    a = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = a / (1 - a).clamp_min(1e-12)
    if v_prediction:
        return torch.clamp(snr + 1, max=gamma) / (snr + 1)
    return torch.clamp(snr, max=gamma) / snr.clamp_min(1e-12)


def pupil_loss_weights(upper: torch.Tensor, latent_hw: tuple[int, int], extra: float) -> torch.Tensor:
    """Loss weights ``(b, 1, f, h, w)`` for the latent ``latent_hw``: ``1 + extra`` on every cell that
    holds a pupil of the upper face maps ``upper`` ``(b, 3, f, H, W)`` in [0, 1], or touches one
    (3×3 cells), 1 elsewhere. The maps mark the pupils with yellow (255, 255, 0) dots and every other
    landmark with green (0, 255, 0) ones (:mod:`animate_anyone.pose.face`)."""
    from ..pose.face import PUPIL_COLOR

    colour = torch.tensor(PUPIL_COLOR, dtype=upper.dtype, device=upper.device).view(1, 3, 1, 1, 1) / 255
    return _cell_weights(((upper - colour).abs() < 0.75).all(1), latent_hw, extra)


def pose_loss_weights(pose: torch.Tensor, latent_hw: tuple[int, int], extra: float) -> torch.Tensor:
    """Loss weights ``(b, 1, f, h, w)`` for the latent ``latent_hw``: ``1 + extra`` on every cell
    under a drawn pixel of the pose maps ``pose`` ``(b, 3, f, H, W)`` in [0, 1] (black background) or
    next to one (3×3 cells), 1 elsewhere: the figure counts more than the background around it."""
    return _cell_weights(pose.amax(1) > 0.1, latent_hw, extra)


def _cell_weights(marked: torch.Tensor, latent_hw: tuple[int, int], extra: float) -> torch.Tensor:
    """``(b, 1, f, h, w)``: ``1 + extra`` on the latent cells ``latent_hw`` under a marked pixel of
    ``marked`` ``(b, f, H, W)`` bool or next to one (3×3 cells), 1 elsewhere."""
    b, f = marked.shape[:2]
    cells = F.adaptive_max_pool2d(marked.float().flatten(0, 1)[:, None], latent_hw)  # (b*f, 1, h, w)
    cells = F.max_pool2d(cells, 3, stride=1, padding=1)
    return (1 + extra * cells).unflatten(0, (b, f)).transpose(1, 2)


def trainable_parameters(stage: str, model) -> dict[str, nn.Parameter]:
    """The parameters each stage trains (everything else is frozen):

    * image: denoising UNet without motion modules, reference UNet except ``up_blocks.3`` (as the
      reference implementation: its last up block only feeds the discarded output), pose guider(s);
    * video: the motion modules only.
    """
    out: dict[str, nn.Parameter] = {}
    if stage == "image":
        for n, p in model.denoising_unet.named_parameters():
            if ".motion_modules." not in n:
                out[f"denoising_unet.{n}"] = p
        for n, p in model.reference_unet.named_parameters():
            if not n.startswith("up_blocks.3."):
                out[f"reference_unet.{n}"] = p
        for guider in ("pose_guider", "pose_guider2"):  # pose_guider2: face reenactment (mouth)
            if hasattr(model, guider):
                for n, p in getattr(model, guider).named_parameters():
                    out[f"{guider}.{n}"] = p
    elif stage == "video":
        for n, p in model.denoising_unet.motion_parameters().items():
            out[f"denoising_unet.{n}"] = p
    else:
        raise ValueError(stage)
    return out


# ---------------------------------------------------------------------------------------------
# checkpoints


def copy_matching_tensors(target: nn.Module, source: nn.Module) -> tuple[int, int, list[str]]:
    """Copy into ``target`` every state-dict tensor of ``source`` with the same name and shape.

    Returns (tensors copied, tensors in ``target``, names of those left as they were). For carrying
    a trained model over to a changed architecture (``model.warm_start_from``).
    """
    theirs = source.state_dict()
    ours = target.state_dict()
    update, kept = {}, []
    for name, tensor in ours.items():
        other = theirs.get(name)
        if other is not None and other.shape == tensor.shape:
            update[name] = other.to(tensor.dtype)
        else:
            kept.append(name)
    target.load_state_dict(update, strict=False)
    return len(update), len(ours), kept


def _name_list(names: list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    found = []
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / STATE_FILE).is_file():
                try:
                    found.append((int(p.name[len(CHECKPOINT_PREFIX):]), p))
                except ValueError:
                    continue
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# batches


class BatchMaker:
    """The batch of (step, micro-step) on one process: a pure function of the seed, the step, the
    micro-step and the process index, so it can be assembled anywhere (the training process or a
    data worker) and a resumed run sees the same batches. Unreadable samples are reported once and
    skipped; every random draw is taken whether or not a sample is already known to be bad, so
    what a process has learnt about bad samples never changes which samples come next."""

    def __init__(self, dataset, seed: int, batch_size: int, process_index: int, weights=None):
        self.dataset, self.seed, self.batch_size, self.process_index = dataset, seed, batch_size, process_index
        self.bad: set[int] = set()
        # ``weights``: relative drawing weight per sample (None = uniform); drawn by inverse CDF
        self.cdf = None if weights is None else np.cumsum(np.asarray(weights, np.float64) / np.sum(weights))

    def fetch(self, index: int, seed: int) -> dict[str, torch.Tensor] | None:
        seed_everything(seed)  # datasets without ``get`` draw from the global generators
        try:
            if hasattr(self.dataset, "get"):
                return self.dataset.get(index, np.random.default_rng(seed))
            return self.dataset[index]
        except (InputError, OSError, ValueError, EOFError) as exc:
            if index not in self.bad:
                warnings.warn(f"skipping training sample {index}: {exc}", stacklevel=2)
                self.bad.add(index)
            return None

    def __call__(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(step_seed(self.seed, step, micro, self.process_index, 1))
        items: list[dict[str, torch.Tensor]] = []
        attempts = 0
        n = len(self.dataset)
        while len(items) < self.batch_size:
            if len(self.bad) >= n:
                raise InputError("every training sample is unreadable; see the warnings above")
            if self.cdf is None:
                index = int(rng.integers(n))
            else:
                index = min(int(np.searchsorted(self.cdf, rng.random(), side="right")), n - 1)
            seed = int(rng.integers(1 << 62))
            attempts += 1
            if index not in self.bad:
                item = self.fetch(index, seed)
                if item is not None:
                    items.append(item)
            if attempts > 100 * self.batch_size + n:
                raise InputError("could not assemble a training batch: too many unreadable samples")
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class _StepBatches(torch.utils.data.Dataset):
    """Batches of steps ``start``.. for ``torch.utils.data.DataLoader`` workers (item k = step
    start + k // accum, micro-step k % accum). A worker's error travels back as a value and is
    raised again in the training process with its own type and one-line message."""

    def __init__(self, maker: BatchMaker, start: int, stop: int, accum: int):
        self.maker, self.start, self.stop, self.accum = maker, start, stop, accum

    def __len__(self) -> int:
        return max(self.stop - self.start, 0) * self.accum

    def __getitem__(self, k: int):
        step, micro = divmod(k, self.accum)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                batch = self.maker(self.start + step, micro)
            except InputError as exc:
                batch = exc
        return batch, [(str(w.message), w.category) for w in caught]


def _batch_stream(maker: BatchMaker, start: int, stop: int, accum: int, workers: int, pin: bool):
    """Yield ((step, micro), batch on CPU) for steps ``start``..``stop - 1``, assembled ahead in
    ``workers`` processes (0: here, one at a time)."""
    if workers <= 0:
        for step in range(start, stop):
            for micro in range(accum):
                yield (step, micro), maker(step, micro)
        return
    loader = torch.utils.data.DataLoader(
        _StepBatches(maker, start, stop, accum), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=pin, prefetch_factor=4, persistent_workers=False,
    )  # fmt: skip
    seen: set[str] = set()
    for k, (batch, caught) in enumerate(loader):
        for message, category in caught:  # each worker learns about bad samples on its own: say it once
            if message not in seen:
                seen.add(message)
                warnings.warn(message, category, stacklevel=2)
        if isinstance(batch, Exception):
            raise batch
        yield (start + k // accum, k % accum), batch


# ---------------------------------------------------------------------------------------------


class Trainer:
    """Runs one training stage described by a :class:`TrainConfig`.

    Args:
        cfg: the configuration.
        dataset: the training data; by default built from ``cfg.data`` (see
            :func:`animate_anyone.training.data.build_dataset`). Items are dicts of tensors:
            ``pixels`` (target frame ``[3, H, W]`` or clip ``[3, F, H, W]`` in [-1, 1]), ``poses``
            (same layout, [0, 1]), ``ref_pixels`` (``[3, H, W]`` in [-1, 1]) and ``ref_clip``
            (CLIP-normalised ``[3, S, S]``).
        accelerator_kwargs: extra ``accelerate.Accelerator`` arguments (tests).
    """

    def __init__(self, cfg: TrainConfig, dataset=None, **accelerator_kwargs):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg = cfg
        self.out_dir = Path(cfg.output_dir)
        handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
            kwargs_handlers=handlers,
            **accelerator_kwargs,
        )
        self._build_models()
        self.dataset = dataset if dataset is not None else self._build_dataset()
        if len(self.dataset) == 0:
            raise InputError("the training dataset is empty")
        self.batches = BatchMaker(self.dataset, cfg.seed, cfg.batch_size, self.accelerator.process_index,
                                  weights=self._sample_weights())
        self._batches_without_pupils = 0
        self.noise_scheduler = make_noise_scheduler(cfg)
        self.step = 0

    # ---- construction ------------------------------------------------------------------------
    def _sample_weights(self):
        """Drawing weights of ``data.oversample`` over the dataset's meta entries (None: uniform)."""
        from ..data.datasets import entry_weights

        if not self.cfg.data.oversample:
            return None
        entries = getattr(self.dataset, "entries", None)
        if entries is None:
            raise ConfigError("data.oversample needs a dataset read from meta files (it weighs their entries)")
        return entry_weights(entries, self.cfg.data.oversample)

    def _build_dataset(self):
        from .data import build_dataset

        return build_dataset(self.cfg, clip_size=int(self.pipe.image_encoder.config.image_size))

    def _build_models(self) -> None:
        from diffusers import AutoencoderKL

        from ..models.presets import get_preset
        from ..pipelines.pipeline_animate import AnimateAnyonePipeline
        from ..pipelines.pipeline_reenact import ReenactPipeline

        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # initial weights are a function of the seed
        self._init_settings = {}  # the starting model's recommended inference settings (its demo.json)
        if not cfg.model.init_from:  # built first: its fresh values are a function of the seed alone
            cls = ReenactPipeline if cfg.model.reenact else AnimateAnyonePipeline
            pipe = cls.from_config(get_preset(cfg.model.preset), seed=None)
        source = cfg.model.init_from or cfg.model.warm_start_from
        if source:
            from ..weights.layouts import (
                inspect_weights,
                load_pipeline,
                load_reenact_pipeline,
                recommended_settings,
            )

            self._init_settings = recommended_settings(source)  # a malformed file stops us now

            if cfg.model.reenact and inspect_weights(source).kind in ("moore-reenact", "native-reenact"):
                loaded = load_reenact_pipeline(source)
            else:
                loaded = load_pipeline(source)
                if cfg.model.reenact:  # a body model as the start; pose_guider2 starts at zero
                    loaded = ReenactPipeline.from_pipeline(loaded)
            if cfg.model.init_from:
                pipe = loaded
            else:  # warm start: what fits is copied into the preset's model (its autoencoder stays)
                def parts(p):
                    return nn.ModuleDict({"model": p.model, "image_encoder": p.image_encoder})

                copied, total, kept = copy_matching_tensors(parts(pipe), parts(loaded))
                self.accelerator.print(f"warm start from {source}: copied {copied} of {total} tensors into preset "
                                       f"{cfg.model.preset}; fresh: {_name_list(kept)}")
                del loaded
        if cfg.model.init_vae_from:
            try:
                pipe.vae = AutoencoderKL.from_pretrained(cfg.model.init_vae_from, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot load the VAE from {cfg.model.init_vae_from}: {str(exc).splitlines()[0]}") from None
            # the autoencoder's own latent scale (SD's: 0.18215; a lab one is calibrated by its vae stage)
            pipe.model.config.vae_scaling_factor = float(pipe.vae.config.scaling_factor)
        self.pipe = pipe
        model, vae, encoder = pipe.model, pipe.vae, pipe.image_encoder
        for module in (model, vae, encoder):
            module.requires_grad_(False)
        if cfg.stage == "vae":
            vae.requires_grad_(True)
            vae.train()
            self.params = dict(vae.named_parameters())
            if cfg.model.vae_decoder_only:  # the encoder keeps its latent space: models trained on it stay valid
                vae.encoder.requires_grad_(False)
                if vae.quant_conv is not None:
                    vae.quant_conv.requires_grad_(False)
                self.params = {n: p for n, p in self.params.items() if p.requires_grad}
            self.module: nn.Module = vae
        elif cfg.stage == "refiner":  # the reference detail refiner alone; it gets one if the model has none
            refiner = model.refiner
            if refiner is None:
                refiner = model.add_reference_refiner(cfg.model.refiner_channels)
                self.accelerator.print(f"new reference detail refiner, {cfg.model.refiner_channels} channels")
            refiner.requires_grad_(True)
            refiner.train()
            self.params = {f"reference_refiner.{n}": p for n, p in refiner.named_parameters()}
            self.module = refiner
            vae.eval()
        else:
            model.denoising_unet.set_motion_modules(cfg.stage == "video")
            if cfg.stage == "video" and cfg.model.reset_motion_modules:
                self._reset_motion_modules(model)
            self.params = trainable_parameters(cfg.stage, model)
            for p in self.params.values():
                p.requires_grad_(True)
            model.train()
            if cfg.model.gradient_checkpointing:
                model.denoising_unet.enable_gradient_checkpointing()
                model.reference_unet.enable_gradient_checkpointing()
            self.module = DenoiserStep(model)
        device = self.accelerator.device
        vae.to(device)
        encoder.to(device).eval()
        self.ema = EMA(self.params, cfg.optim.ema_decay) if cfg.optim.ema_decay else None

        optim_cls = torch.optim.AdamW
        if cfg.optim.use_8bit_adam:
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise ConfigError("optim.use_8bit_adam needs the bitsandbytes package (pip install bitsandbytes)") from None
            optim_cls = bnb.optim.AdamW8bit
        optimizer = optim_cls(list(self.params.values()), lr=cfg.optim.lr, betas=cfg.optim.betas,
                              weight_decay=cfg.optim.weight_decay, eps=cfg.optim.eps)
        warm = max(cfg.optim.warmup_steps, 1)
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
        self.module, self.optimizer, self.lr_scheduler = self.accelerator.prepare(self.module, optimizer, lr_scheduler)
        if self.ema is not None:
            self.accelerator.register_for_checkpointing(self.ema)

    @staticmethod
    def _reset_motion_modules(model) -> None:
        """Zero the motion modules' output projections: the video model starts as the image model."""
        for name, module in model.denoising_unet.named_modules():
            if name.split(".")[-2:-1] == ["motion_modules"] and hasattr(module, "proj_out"):
                nn.init.zeros_(module.proj_out.weight)
                nn.init.zeros_(module.proj_out.bias)

    # ---- data --------------------------------------------------------------------------------
    def _batch(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        return self._to_device(self.batches(step, micro))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.accelerator.device, non_blocking=True) for k, v in batch.items()}

    # ---- losses ------------------------------------------------------------------------------
    def _vae_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["pixels"]
        if x.ndim == 5:  # (b, 3, f, h, w) -> (b*f, 3, h, w)
            x = x.transpose(1, 2).flatten(0, 1)
        c = self.cfg.data.vae_crop
        if c and c < min(x.shape[-2:]):  # one random square crop per image (a conv net: same weights)
            ys = torch.randint(0, x.shape[-2] - c + 1, (x.shape[0],)).tolist()
            xs = torch.randint(0, x.shape[-1] - c + 1, (x.shape[0],)).tolist()
            x = torch.stack([img[:, y : y + c, xx : xx + c] for img, y, xx in zip(x, ys, xs)])
        vae = self.accelerator.unwrap_model(self.module)
        decoder_only = self.cfg.model.vae_decoder_only  # frozen encoder: no gradient, no KL term
        with torch.set_grad_enabled(torch.is_grad_enabled() and not decoder_only):
            posterior = vae.encode(x).latent_dist
        # a denoiser's latents are never exact: teach the decoder to tolerate their errors
        recon = vae.decode(self._noised(posterior.sample(), vae)).sample
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        return loss if decoder_only else loss + 1e-4 * posterior.kl().mean() / x[0].numel()

    def _noised(self, z: torch.Tensor, vae) -> torch.Tensor:
        """Unscaled latents ``z`` + N(0, sigma^2) per sample, sigma ~ U(0, ``model.vae_latent_noise``)
        in scaled units (the denoiser's); unchanged when that is 0."""
        s = self.cfg.model.vae_latent_noise
        if s <= 0:
            return z
        sigma = torch.rand(z.shape[0], 1, 1, 1, device=z.device, dtype=z.dtype) * (s / vae.config.scaling_factor)
        return z + sigma * torch.randn_like(z)

    def _refiner_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Target frame -> encoded (posterior mean, as at inference the reference is; a denoiser's
        latents are approximations of it), noised with ``model.vae_latent_noise`` as the vae stage
        does, decoded by the frozen decoder; the refiner gets that and the reference frame of the
        same clip and must return the target: L1 + MSE in pixels."""
        x, ref = batch["pixels"], batch["ref_pixels"]
        vae = self.pipe.vae
        with torch.no_grad():
            decoded = vae.decode(self._noised(vae.encode(x.to(vae.dtype)).latent_dist.mean, vae)).sample.float()
        out = self.module(decoded, ref.float())
        return F.l1_loss(out, x) + F.mse_loss(out, x)

    @torch.no_grad()
    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, 3, [f,] H, W) in [-1, 1] -> sampled latents (b, c, f, h, w), scaled (c: the latent channels)."""
        vae = self.pipe.vae
        video = pixels.ndim == 5
        b = pixels.shape[0]
        x = pixels.transpose(1, 2).flatten(0, 1) if video else pixels  # (b*f, 3, H, W)
        lat = vae.encode(x.to(vae.dtype)).latent_dist.sample() * self.pipe.model.config.vae_scaling_factor
        lat = lat.unflatten(0, (b, -1)).transpose(1, 2) if video else lat.unsqueeze(2)  # (b, c, f, h, w)
        return lat.float()

    def _denoise_loss(self, batch: dict[str, torch.Tensor], uncond: bool) -> torch.Tensor:
        cfg, sched = self.cfg, self.noise_scheduler
        latents = self._encode(batch["pixels"])
        b = latents.shape[0]
        pose = batch["poses"] if batch["poses"].ndim == 5 else batch["poses"].unsqueeze(2)  # (b, 3, f, H, W)
        pose2 = batch.get("poses2")  # face reenactment: the mouth map
        if pose2 is not None:
            pose2 = (pose2 if pose2.ndim == 5 else pose2.unsqueeze(2)).float()
        with torch.no_grad():
            clip_in = torch.zeros_like(batch["ref_clip"]) if uncond else batch["ref_clip"]
            embeds = self.pipe.image_encoder(clip_in.to(self.pipe.image_encoder.dtype)).image_embeds.unsqueeze(1)
            ref_latents = None if uncond else self._encode(batch["ref_pixels"])[:, :, 0]
            if uncond and self.cfg.model.reenact:  # reenactment's uncond half reads a zero-latent bank (§13)
                ref_latents = torch.zeros_like(latents[:, :, 0])
        noise = torch.randn_like(latents)
        if cfg.noise.noise_offset:
            noise = noise + cfg.noise.noise_offset * torch.randn(b, latents.shape[1], 1, 1, 1, device=latents.device)
        timesteps = torch.randint(0, sched.config.num_train_timesteps, (b,), device=latents.device)
        noisy = sched.add_noise(latents, noise, timesteps)
        target = sched.get_velocity(latents, noise, timesteps) if cfg.noise.prediction_type == "v_prediction" else noise
        hold = None
        if "ref_hold" in batch and ref_latents is not None and bool(batch["ref_hold"].any()):
            from ..models.reference_attention import pool_hold

            # (b, f, H, W) pixels -> (b, f, h, w) cells of the reference latent
            hold = pool_hold(batch["ref_hold"].to(latents.device), tuple(ref_latents.shape[-2:]))
        pred = self.module(noisy, timesteps, embeds.float(), pose.float(), ref_latents=ref_latents, pose2=pose2,
                           ref_hold=hold)
        err = F.mse_loss(pred.float(), target.float(), reduction="none")
        if cfg.noise.eye_loss_weight:  # the eyes are a cell or two of the latent: weigh them up
            weights = pupil_loss_weights(pose.float(), tuple(err.shape[-2:]), cfg.noise.eye_loss_weight)
            self._batches_without_pupils = 0 if bool((weights > 1).any()) else self._batches_without_pupils + 1
            if self._batches_without_pupils == 10:  # maps drawn without pupils: the option does nothing
                warnings.warn("noise.eye_loss_weight: no pupil (yellow dot) in the upper face maps of 10 "
                              "training batches in a row; the loss is unweighted there", stacklevel=2)
            err = err * weights
        if cfg.noise.pose_loss_weight:  # the figure counts more than the background the reference shows
            err = err * pose_loss_weights(pose.float(), tuple(err.shape[-2:]), cfg.noise.pose_loss_weight)
        per_sample = err.mean(dim=(1, 2, 3, 4))
        if cfg.noise.snr_gamma:
            w = min_snr_weights(sched.alphas_cumprod, timesteps, cfg.noise.snr_gamma,
                                cfg.noise.prediction_type == "v_prediction")
            per_sample = per_sample * w
        return per_sample.mean()

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        final = self.out_dir / f"{CHECKPOINT_PREFIX}{self.step}"
        tmp = self.out_dir / f".tmp-{CHECKPOINT_PREFIX}{self.step}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=True)
        if acc.is_main_process:
            state = {"step": self.step, "config": self.cfg.to_dict(), "time": time.time()}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for _, old in list_checkpoints(self.out_dir)[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def resume(self) -> bool:
        """Load the newest complete checkpoint of ``output_dir``; False if there is none."""
        found = list_checkpoints(self.out_dir)
        if not found:
            return False
        step, path = found[-1]
        self.accelerator.load_state(str(path))
        self.step = step
        return True

    @torch.no_grad()
    def calibrate_latent_scale(self, batches: int = 16) -> float:
        """Set the autoencoder's ``scaling_factor`` to 1 / std of its latents on training frames.

        Diffusion assumes unit-variance latents (SD's 0.18215 is this number for its autoencoder);
        a lab autoencoder's latent spread is whatever its training made it. Deterministic: the
        batches are those of steps 0.. ``batches - 1`` on every process, pooled over processes.
        """
        vae = self.accelerator.unwrap_model(self.module)
        was_training = vae.training
        vae.eval()
        sq, n = 0.0, 0
        for i in range(batches):
            x = self._batch(i, 0)["pixels"]
            x = x.transpose(1, 2).flatten(0, 1) if x.ndim == 5 else x
            lat = vae.encode(x.to(self.accelerator.device, vae.dtype)).latent_dist.sample().float()
            sq += float((lat - lat.mean()).pow(2).sum())
            n += lat.numel()
        vae.train(was_training)
        # every process saw its own batches: sum over processes so they all set the same scale
        sq, n = self.accelerator.gather(torch.tensor([[sq, float(n)]], dtype=torch.float64, device=self.accelerator.device)).sum(0).tolist()
        std = math.sqrt(sq / max(n, 1.0))
        scale = 1.0 / max(std, 1e-6)
        vae.register_to_config(scaling_factor=scale)
        self.pipe.model.config.vae_scaling_factor = scale
        self.accelerator.print(f"latent std {std:.4f}: scaling_factor set to {scale:.5f}")
        return scale

    # ---- export ------------------------------------------------------------------------------
    def export(self, out: Path | None = None) -> Path:
        """Write the trained weights (EMA weights if enabled) as a loadable native folder."""
        from ..weights.layouts import SETTINGS_FILE, save_pipeline

        out = out or self.out_dir / "final"
        acc = self.accelerator
        if acc.is_main_process:
            backup = None
            if self.ema is not None:
                backup = {n: p.detach().clone() for n, p in self.params.items()}
                self.ema.copy_to(self.params)
            tmp = out.parent / f".tmp-{out.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            save_pipeline(self.pipe, tmp)  # model.json, the three nets, vae/, image_encoder/
            (tmp / "training.json").write_text(json.dumps({"step": self.step, "config": self.cfg.to_dict()}, indent=1))
            settings = self.recommended_settings()
            if settings:
                (tmp / SETTINGS_FILE).write_text(json.dumps({"settings": settings, "provenance": {
                    "notes": "frame size (and context window) from the training data; the rest from the "
                             "starting model's demo.json (model.init_from or warm_start_from); the run's config "
                             "is in training.json"}}, indent=1))
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
            if backup is not None:
                with torch.no_grad():
                    for n, p in self.params.items():
                        p.copy_(backup[n])
        acc.wait_for_everyone()
        return out

    def recommended_settings(self) -> dict:
        """The inference settings the exported model recommends (its ``demo.json``; ``animate``
        uses them where no flag is given): those of ``model.init_from`` (or ``warm_start_from``) when it has any, with the
        frame size of the training data and, after a video stage, context windows of its clip
        length. The autoencoder stage recommends nothing."""
        cfg = self.cfg
        if cfg.stage == "vae":
            return {}
        settings = dict(self._init_settings)
        for key in ("size", "width", "height"):
            settings.pop(key, None)
        if cfg.data.width == cfg.data.height:
            settings["size"] = cfg.data.width
        else:
            settings.update(width=cfg.data.width, height=cfg.data.height)
        if cfg.stage == "video":
            settings.update(context_frames=cfg.data.num_frames, context_overlap=cfg.data.num_frames // 4)
        return settings

    def _safe_validate(self) -> None:
        """A failing validation is reported, never the end of a training run."""
        try:
            self.validate()
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"validation at step {self.step} failed: {type(exc).__name__}: {exc}", stacklevel=2)

    @torch.no_grad()
    def validate(self) -> Path | None:
        """Animate one training sample with the current weights; writes an mp4 and a grid PNG."""
        if not self.accelerator.is_main_process or self.cfg.stage == "vae":
            return None
        from ..data.video_io import write_image, write_video

        item = self.batches.fetch(0, step_seed(self.cfg.seed, 0, 0, 0, 2))
        if item is None:
            return None
        to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy()  # noqa: E731
        ref = to_u8(item["ref_pixels"].cpu())
        def maps(key):
            poses = item[key].cpu()
            poses = poses.unsqueeze(1) if poses.ndim == 3 else poses  # (3, f, H, W)
            return [(p * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy() for p in poses.unbind(1)]

        pose_u8 = maps("poses")
        extra = [maps("poses2")] if "poses2" in item else []  # face reenactment: the mouth maps
        model = self.pipe.model
        was_training = model.training
        model.eval()
        from PIL import Image

        try:
            out = self.pipe(Image.fromarray(ref), pose_u8, *extra, width=self.cfg.data.width, height=self.cfg.data.height,
                            num_inference_steps=self.cfg.validation_steps, guidance_scale=3.5, progress=False,
                            context_frames=min(len(pose_u8), 24), context_overlap=min(4, len(pose_u8) - 1))
        finally:
            model.train(was_training)
        frames = out.to_uint8()
        vdir = self.out_dir / "validation"
        path = write_video(vdir / f"step-{self.step:07d}.mp4", frames, fps=8)
        grid = np.concatenate([np.concatenate([ref, pose_u8[0], frames[0]], axis=1)], axis=0)
        write_image(vdir / f"step-{self.step:07d}.png", grid)
        return path

    # ---- loop --------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> Path:
        cfg, acc = self.cfg, self.accelerator
        if resume and self.resume():
            acc.print(f"resumed from step {self.step}")
        elif not resume and list_checkpoints(self.out_dir):
            raise InputError(
                f"{self.out_dir} already has checkpoints: pass --resume to continue, or choose another output_dir"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if acc.is_main_process:
            (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        log = _CsvLog(self.out_dir / "log.csv", self.step) if acc.is_main_process else None
        tb = _tensorboard(self.out_dir) if acc.is_main_process else None
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not acc.is_local_main_process,
                   desc=f"train ({cfg.stage})", dynamic_ncols=True, file=sys.stderr)
        accum = cfg.optim.gradient_accumulation_steps
        stream = _batch_stream(self.batches, self.step, cfg.max_steps, accum, cfg.data.num_workers,
                               pin=acc.device.type == "cuda")
        deadline = None if cfg.max_minutes is None else time.monotonic() + 60 * cfg.max_minutes
        try:
            self._loop(stream, log, tb, bar, deadline)
        finally:
            stream.close()  # stops the data workers, if any
        bar.close()
        if cfg.stage == "vae" and not cfg.model.vae_decoder_only:  # a frozen encoder keeps its scale
            self.calibrate_latent_scale()
        out = self.export()
        if cfg.validate_every >= 0:
            self._safe_validate()
        if tb is not None:
            tb.close()
        return out

    def _loop(self, stream, log, tb, bar, deadline: float | None) -> None:
        cfg, acc = self.cfg, self.accelerator
        accum = cfg.optim.gradient_accumulation_steps
        t_last = time.perf_counter()
        while self.step < cfg.max_steps:
            losses = []
            for micro in range(accum):
                where, batch = next(stream)
                assert where == (self.step, micro), f"batch of {where} arrived at step {self.step}, micro-step {micro}"
                batch = self._to_device(batch)
                seed_everything(step_seed(cfg.seed, self.step, micro, acc.process_index, 3))
                # whole-batch unconditional dropout, the same decision on every process
                uncond = np.random.default_rng(step_seed(cfg.seed, self.step, micro, 4)).random() < cfg.noise.uncond_ratio
                with acc.accumulate(self.module), acc.autocast():
                    if cfg.stage == "vae":
                        loss = self._vae_loss(batch)
                    elif cfg.stage == "refiner":
                        loss = self._refiner_loss(batch)
                    else:
                        loss = self._denoise_loss(batch, bool(uncond))
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.optim.max_grad_norm:
                        acc.clip_grad_norm_(list(self.params.values()), cfg.optim.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach())
            if self.ema is not None:
                self.ema.update(self.params)
            self.step += 1
            loss_value = acc.gather(torch.stack(losses).mean()[None]).mean().item()
            if not math.isfinite(loss_value):
                raise RuntimeError(f"loss is {loss_value} at step {self.step}; the last checkpoint is intact")
            now = time.perf_counter()
            sec = now - t_last
            t_last = now
            bar.set_postfix(loss=f"{loss_value:.4f}", s_per_step=f"{sec:.2f}")
            bar.update(1)
            if log is not None and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps):
                lr = self.lr_scheduler.get_last_lr()[0]
                log.write(self.step, loss_value, lr, sec)
                if tb is not None:
                    tb.add_scalar("loss", loss_value, self.step)
                    tb.add_scalar("lr", lr, self.step)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                self.save_checkpoint()
            if cfg.validate_every > 0 and self.step % cfg.validate_every == 0:
                self._safe_validate()
            if deadline is not None and self.step < cfg.max_steps and self._out_of_time(deadline):
                acc.print(f"time budget of {cfg.max_minutes:g} min used up at step {self.step}")
                if self.step % cfg.checkpoint_every:
                    self.save_checkpoint()
                return

    def _out_of_time(self, deadline: float) -> bool:
        """The same answer on every process (they must stop at the same step)."""
        late = torch.tensor([float(time.monotonic() >= deadline)], device=self.accelerator.device)
        return bool(self.accelerator.gather(late).max().item() > 0)


class _CsvLog:
    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = []
        if path.is_file():  # keep the rows up to the resumed step (later ones are redone)
            with open(path, newline="") as fh:
                rows = [r for r in csv.reader(fh)][1:]
            rows = [r for r in rows if r and int(r[0]) <= resume_step]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "loss", "lr", "seconds_per_step"])
            w.writerows(rows)

    def write(self, step: int, loss: float, lr: float, sec: float) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow([step, f"{loss:.6f}", f"{lr:.3e}", f"{sec:.3f}"])


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))
