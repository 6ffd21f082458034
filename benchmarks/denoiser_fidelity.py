"""What a lab model's denoiser recovers in one step, by noise level, with and without the reference.

For the held-out lab sequences of ``lab_quality.py`` (same characters, motions and size; ``--frames``
ground-truth frames after the same gap), the ground truth is encoded (posterior mean), noised to
each timestep ``t`` with a fixed draw, and the denoiser predicts it back in one step: the estimate
``x0 = sqrt(a_t) x_t - sqrt(1 - a_t) v`` is decoded and scored (SSIM) against the ground truth.
Each estimate is made twice: with the reference bank (the model as used) and with an empty one
(no ReferenceNet features). Printed per model, split by the reference's background (repeating fine
pattern or smooth), next to the autoencoder's own reconstruction (the ceiling; ``t`` = 0) and to
copying the reference. A second table per model says whether the denoiser looks up the
reference by position: for each UNet level (token grid), the attention weight a query puts on the
reference token at its own place, as a multiple of the mean weight per reference token (1 =
position plays no part), with the reference, averaged over blocks, frames and sequences.

This shows where a model loses detail. A lab clip's background is static, so the reference
holds every background pixel exactly where the ground truth has it: a denoiser that uses the
reference should recover it at any noise level, one that does not falls towards the
no-reference column as ``t`` grows.

    python benchmarks/denoiser_fidelity.py                               # the shipped demo model
    python benchmarks/denoiser_fidelity.py demo runs/f4/stage2_more/final --sequences 8

Each positional argument is a model folder (native weights, a training stage's ``final/``) or
``demo``; all are measured in the same run on the same noise.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from PIL import Image

from animate_anyone.demo import demo_settings, example_parts, frame_metrics, heldout_clip, load_pipelines
from animate_anyone.lab.background import PATTERNED_BACKGROUNDS
from animate_anyone.models.reference_attention import (
    ReferencePosition,
    ReferenceReadProcessor,
    spatial_self_attention_paths,
    token_grid,
)

GROUPS = ("patterned", "smooth")


def x0_estimate(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The clean latent implied by a v-prediction at noise level ``alpha_bar`` (DDPM's cumulative alpha)."""
    return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v


class SamePlaceRecorder(ReferenceReadProcessor):
    """The reading processor, also recording how much weight each query puts on the reference token
    at its own place (relative to the mean weight per reference token) into ``sink[tokens]``."""

    def __init__(self, bank, path: str, sink: dict[int, list[float]]):
        super().__init__(bank, path)
        self.sink = sink

    def __call__(self, attn, hidden_states, *args, **kwargs):
        kv = self.bank.key_value(self.path, attn, hidden_states.dtype)
        if kv is not None and self.bank.uncond_samples == 0:
            q, k = attn.to_q(hidden_states), attn.to_k(hidden_states)
            n, t, inner = q.shape
            heads = attn.heads
            d = inner // heads
            ref_k = kv[0].repeat_interleave(n // kv[0].shape[0], dim=0)
            tr = ref_k.shape[1]
            qh = q.view(n, t, heads, d).transpose(1, 2)
            kh = torch.cat([k, ref_k], 1).view(n, t + tr, heads, d).transpose(1, 2)
            scores = qh @ kh.transpose(-1, -2) * d**-0.5
            position: ReferencePosition | None = getattr(attn, "reference_position", None)
            grid = token_grid(self.bank.latent_size, t)
            if position is not None:
                ref_grid = token_grid(self.bank.reference_size, tr)
                scores[..., t:] += position.score_bias(grid, ref_grid, d, q.device, q.dtype)
            if tr == t:  # same grid: token i of the reference is at query i's place
                weights = scores.softmax(-1)[..., t:]  # (n, heads, t, tr)
                same = weights.diagonal(dim1=-2, dim2=-1).mean()
                per_token = weights.sum(-1).mean() / tr
                self.sink.setdefault(t, []).append(float(same / per_token))
        return super().__call__(attn, hidden_states, *args, **kwargs)


@torch.inference_mode()
def encode_frames(pipe, frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(F, H, W, 3)`` -> scaled posterior-mean latents ``(1, c, F, h, w)``."""
    from animate_anyone.pipelines.preprocess import vae_pixels

    h, w = frames.shape[1:3]
    pixels = torch.cat([vae_pixels(Image.fromarray(f), w, h) for f in frames]).to(pipe.device, pipe.dtype)
    latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.model.config.vae_scaling_factor
    return latents.transpose(0, 1).unsqueeze(0).float()


@torch.inference_mode()
def one_step_frames(pipe, ref: np.ndarray, poses: np.ndarray, latents: torch.Tensor, noise: torch.Tensor,
                    timesteps: list[int], use_reference: bool,
                    same_place: dict | None = None) -> dict[int, np.ndarray]:
    """Decoded one-step estimates (uint8 frames) of ``latents`` noised by ``noise`` to each timestep;
    with ``same_place``, also ``same_place[t][tokens]``: :class:`SamePlaceRecorder`'s figures."""
    from animate_anyone.pipelines.preprocess import pose_pixels

    model, bank = pipe.model, pipe.model.bank
    h, w = ref.shape[:2]
    embeds, ref_latents = pipe.encode_reference(Image.fromarray(ref), w, h)
    pose_features = model.pose_guider(pose_pixels(list(poses), w, h).to(pipe.device, pipe.dtype))
    alphas = pipe.scheduler.alphas_cumprod
    out = {}
    unet = model.denoising_unet
    paths = spatial_self_attention_paths(unet)
    readers = {p: unet.get_submodule(p + ".attn1").processor for p in paths}
    bank.clear()
    try:
        if use_reference:
            model.write_reference(ref_latents, embeds)
        bank.cache_projections = True
        bank.uncond_samples = 0
        for t in timesteps:
            if same_place is not None:
                sink = same_place.setdefault(t, {})
                for p in paths:
                    unet.get_submodule(p + ".attn1").set_processor(SamePlaceRecorder(bank, p, sink))
            a = alphas[t].to(latents.device)
            x_t = a.sqrt() * latents + (1 - a).sqrt() * noise
            v = unet(x_t.to(pipe.dtype), torch.tensor(t), embeds, pose_features=pose_features)
            est = x0_estimate(x_t, v.float(), a)
            out[t] = (pipe.decode_latents(est) * 255).round().astype(np.uint8)
    finally:
        for p, processor in readers.items():
            unet.get_submodule(p + ".attn1").set_processor(processor)
        bank.clear()
        bank.cache_projections = False
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["demo"], help="model folders, or 'demo' (default)")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--frames", type=int, default=8, help="ground-truth frames per sequence (one window)")
    p.add_argument("--timesteps", type=int, nargs="+", default=[50, 200, 400, 600, 800, 999])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from animate_anyone.errors import AnimateAnyoneError

    try:
        folders, pipes = load_pipelines(args.models)
    except AnimateAnyoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = demo_settings(folders[0])
    if any(t < 0 or t >= len(pipes[0].scheduler.alphas_cumprod) for t in args.timesteps):
        print(f"error: timesteps must lie in [0, {len(pipes[0].scheduler.alphas_cumprod) - 1}]", file=sys.stderr)
        return 1
    # scores[model][(group, column)] -> list of per-sequence SSIM
    scores: list[dict] = [{} for _ in pipes]
    same_place: list[dict] = [{} for _ in pipes]  # [model][t][tokens] -> list of ratios
    t0 = time.perf_counter()
    for i in range(args.sequences):
        clip, sl = heldout_clip(i, s["size"], args.frames, s["gap"])
        ref, poses, gt, info = example_parts(clip, sl)
        group = "patterned" if info["background"] in PATTERNED_BACKGROUNDS else "smooth"
        for pipe, sc, sp in zip(pipes, scores, same_place):
            latents = encode_frames(pipe, gt)
            noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(args.seed + i))
            with torch.inference_mode():
                ae = (pipe.decode_latents(latents) * 255).round().astype(np.uint8)
            sc.setdefault((group, "autoencoder"), []).append(frame_metrics(ae, gt)["ssim"])
            sc.setdefault((group, "copy"), []).append(frame_metrics(np.repeat(ref[None], len(gt), 0), gt)["ssim"])
            for use_ref in (True, False):
                est = one_step_frames(pipe, ref, poses, latents, noise, args.timesteps, use_ref, sp if use_ref else None)
                for t, frames in est.items():
                    sc.setdefault((group, (t, use_ref)), []).append(frame_metrics(frames, gt)["ssim"])
        print(f"[{i + 1}/{args.sequences}] {info['category']:8s} {info['motion']:14s} {info['background']}", flush=True)

    counts = {g: len(scores[0].get((g, "copy"), [])) for g in GROUPS}
    print(f"\n{args.sequences} held-out sequences ({counts['patterned']} patterned, {counts['smooth']} smooth), "
          f"{args.frames} frames at {s['size']}x{s['size']}, noise seed {args.seed}, {time.perf_counter() - t0:.0f} s")
    for folder, pipe, sc, sp in zip(folders, pipes, scores, same_place):
        print(f"\n{folder}: SSIM of the one-step estimate (with reference / without)\n")
        print("| t | " + " | ".join(f"{g} ({counts[g]})" for g in GROUPS) + " |")
        print("|---" * (len(GROUPS) + 1) + "|")

        def mean(key, group, sc=sc):
            v = sc.get((group, key))
            return float(np.mean(v)) if v else float("nan")

        for t in args.timesteps:
            cells = [f"{mean((t, True), g):.3f} / {mean((t, False), g):.3f}" for g in GROUPS]
            print(f"| {t} | " + " | ".join(cells) + " |")
        print("| autoencoder (t = 0) | " + " | ".join(f"{mean('autoencoder', g):.3f}" for g in GROUPS) + " |")
        print("| copy the reference | " + " | ".join(f"{mean('copy', g):.3f}" for g in GROUPS) + " |")
        levels = sorted({n for per_t in sp.values() for n in per_t}, reverse=True)
        side = {n: "x".join(map(str, token_grid((s["size"] // pipe.vae_factor,) * 2, n))) for n in levels}
        print(f"\n{folder}: weight on the reference token at the query's own place / mean weight per "
              "reference token (1 = position plays no part)\n")
        print("| t | " + " | ".join(f"{side[n]} tokens" for n in levels) + " |")
        print("|---" * (len(levels) + 1) + "|")
        for t in args.timesteps:
            print(f"| {t} | " + " | ".join(f"{np.mean(sp[t][n]):.2f}" for n in levels) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
