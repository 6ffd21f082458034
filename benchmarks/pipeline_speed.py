"""Seconds per denoising step and peak memory of `AnimateAnyonePipeline`.

Random weights of a preset (``tiny``, ``small`` = the shared fixture's model, ``sd15``), a synthetic
reference image and pose frames; the pipeline runs once to warm up, then ``--repeats`` times.

    python benchmarks/pipeline_speed.py --preset small --size 128 128 --frames 24 --steps 10
    python benchmarks/pipeline_speed.py --preset sd15 --size 512 768 --frames 24 --dtype bf16 --device cuda

Prints one table row per configuration. ``--compare-moore`` adds the reference implementation's
published CPU baselines for the ``small`` model (24 frames, 10 steps, guidance 3.5, fp32, 2 vCPUs):
4.3 s per call at 128×128 and 26.6 s at 256×256; the ratio is only meaningful on a comparable
2-vCPU machine (the baselines were measured on one; say so when you quote it).

``--reference-style`` adds, measured side by side in the same process on the same weights, the
reference implementation's *way of computing* the same video (architecture.md §6, §8, §10): the
reference bank rounded to fp16 and its key/value projections recomputed at every step for every
frame (the bank is repeated over the frames and then projected, as its concatenation does), the
unconditional half attending to the bank and then recomputed without it, latents in the model
dtype, VAE decoding one frame at a time, and the motion modules' frame attention through PyTorch's
SDPA as diffusers' default processor runs it (ours computes short fp32 sequences on the CPU with
batched matrix products instead: ``models/temporal_attention.py``; on a GPU both are SDPA), and the
cross-attention to the one CLIP token as a full attention (queries, keys, softmax), where ours
broadcasts that token's projected value (``models/cross_attention.py``). Otherwise it
runs our kernels, so the ratio isolates what the algorithm and that kernel choice save; it is not the
reference code itself.

``--compile`` adds a third variant: ours with the denoising UNet compiled by ``torch.compile``
(inductor; ``nn.Module.compile``, in place) — the fusion of the element-wise glue (norms,
activations, casts, adds) that a GPU profile of a step shows as about 40 % of its time. Its
warm-up call includes compiling (every row records its warm-up as ``warmup_s``); the largest
difference of its frames from the uncompiled call's is ``max_diff``. Random-weight models are badly
conditioned (the tiny preset's denoiser already differs by 1e-2 between fp32 and fp64 eager on one
call), so there ``max_diff`` reaches 1e-1; on the trained demo model the compiled call matches
eager within 2e-6 (``tests/models/test_model_core.py``, slow).

``--full-cross-attention`` adds ours with the cross-attention to the one CLIP token computed in
full by diffusers' processor instead of broadcasting that token's value (``models/cross_attention.py``):
what that exact shortcut saves, side by side, and the largest difference of the frames.

``--memory-limit-gib N`` caps what the CUDA caching allocator may take
(``torch.cuda.set_per_process_memory_fraction``): a configuration that needs more fails with
out-of-memory instead of reporting a peak that a smaller card could not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image

from animate_anyone.models.cross_attention import (
    SingleTokenCrossAttnProcessor,
    spatial_cross_attention_modules,
)
from animate_anyone.models.presets import PRESETS, get_preset
from animate_anyone.models.reference_attention import (
    ReferenceReadProcessor,
    _attend,
    spatial_self_attention_paths,
)
from animate_anyone.models.temporal_attention import TemporalAttnProcessor
from animate_anyone.models.unets import motion_module_paths
from animate_anyone.pipelines import AnimateAnyonePipeline
from animate_anyone.pipelines.pipeline_animate import prefer_expandable_segments

MOORE_CPU_BASELINE_S = {(128, 128): 4.3, (256, 256): 26.6}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_inputs(width: int, height: int, frames: int):
    rng = np.random.default_rng(0)
    ref = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    poses = np.zeros((frames, height, width, 3), np.uint8)
    for t in range(frames):  # a moving bar, so that pose features differ per frame
        x = int((t / max(frames - 1, 1)) * (width - 8))
        poses[t, height // 4 : 3 * height // 4, x : x + 8] = (255, 85, 0)
    return ref, list(poses)


class ReferenceStyleRead(ReferenceReadProcessor):
    """Reference attention computed as the reference implementation does: every row projects its
    own copy of the bank (no cached projections), and the unconditional rows attend to the bank
    before being recomputed without it. Same result as :class:`ReferenceReadProcessor`."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        tokens = self.bank.features.get(self.path)
        if tokens is None:
            return super().__call__(attn, hidden_states)
        rows = hidden_states.shape[0]
        kv_in = torch.cat([hidden_states, tokens.to(hidden_states.dtype).repeat_interleave(rows // len(tokens), 0)], 1)
        out = _attend(attn, attn.to_q(hidden_states), attn.to_k(kv_in), attn.to_v(kv_in))
        plain = self.bank.uncond_samples * self.bank.num_frames
        if plain:
            h = hidden_states[:plain]
            out = torch.cat([_attend(attn, attn.to_q(h), attn.to_k(h), attn.to_v(h)), out[plain:]])
        return out


def use_reference_style(pipe: AnimateAnyonePipeline, on: bool) -> None:
    unet, bank = pipe.model.denoising_unet, pipe.model.bank
    modules = dict(unet.named_modules())
    for path in spatial_self_attention_paths(unet):
        modules[path + ".attn1"].set_processor((ReferenceStyleRead if on else ReferenceReadProcessor)(bank, path))
    for attn in spatial_cross_attention_modules(unet):  # the full cross-attention over the one CLIP token
        attn.set_processor(AttnProcessor2_0() if on else SingleTokenCrossAttnProcessor())
    for path in motion_module_paths(unet):
        for block in unet.get_submodule(path).transformer_blocks:
            for attn in (block.attn1, block.attn2):
                attn.set_processor(AttnProcessor2_0() if on else TemporalAttnProcessor())


def build(args) -> AnimateAnyonePipeline:
    """Random weights, created directly on the device (a GPU initialises sd15 in seconds)."""
    on_device = args.device.startswith("cuda") and not args.offload
    with torch.device(args.device if on_device else "cpu"):
        pipe = AnimateAnyonePipeline.from_config(get_preset(args.preset), seed=0)
    return pipe.to(args.device, DTYPES[args.dtype], offload=args.offload)


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads) if args.threads else None
    if args.memory_limit_gib and args.device.startswith("cuda"):
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_limit_gib * 2**30 / total))
    pipe = build(args)
    rows = []
    for width, height in args.sizes:
        ref, poses = synthetic_inputs(width, height, args.frames)
        kwargs = dict(width=width, height=height, num_inference_steps=args.steps, guidance_scale=args.guidance,
                      context_frames=args.context_frames, context_overlap=args.context_overlap,
                      sequential_cfg=args.sequential_cfg, decode_chunk_size=args.decode_chunk_size, progress=False)
        variants = [("ours", {})]
        if args.reference_style:
            variants.append(("reference-style", {"compat": "moore", "decode_chunk_size": 1}))
        if args.full_cross_attention:
            variants.append(("full-cross-attn", {}))
        if args.compile:
            variants.append(("ours+compile", {}))
        videos = {}
        for variant, extra in variants:
            use_reference_style(pipe, variant == "reference-style")
            if variant == "full-cross-attn":  # ours, but attn2 as diffusers computes it
                for attn in spatial_cross_attention_modules(pipe.model.denoising_unet):
                    attn.set_processor(AttnProcessor2_0())
            compiled = variant.endswith("+compile")
            set_compiled(pipe, compiled)
            row = time_calls(pipe, ref, poses, {**kwargs, **extra}, args)
            videos[variant] = row.pop("video")
            if compiled:
                row["max_diff"] = float(np.abs(videos[variant] - videos["ours"]).max())
                ref_row = next((r for r in rows if r["variant"] == "reference-style" and r["size"] == f"{width}x{height}"), None)
                if ref_row is not None:
                    row["compiled_vs_reference_style"] = ref_row["call_s"] / row["call_s"]
            row.update(size=f"{width}x{height}", variant=variant)
            base = MOORE_CPU_BASELINE_S.get((width, height))
            if args.compare_moore and base and args.preset == "small" and variant == "ours":
                row["moore_call_s"] = base
                row["speedup"] = base / row["call_s"]
            if variant == "reference-style":
                row["speedup_vs_reference_style"] = row["call_s"] / rows[-1]["call_s"]
            if variant == "full-cross-attn":  # what the one-token shortcut saves, and that it changes nothing
                ours = next(r for r in reversed(rows) if r["variant"] == "ours")
                row["shortcut_speedup"] = row["call_s"] / ours["call_s"]
                row["shortcut_max_diff"] = float(np.abs(videos[variant] - videos["ours"]).max())
            rows.append(row)
            print(format_row(row), flush=True)
            if args.profile and variant == "ours":
                profile_call(pipe, ref, poses, kwargs, args.profile)
        use_reference_style(pipe, False)
        set_compiled(pipe, False)
    return rows


def set_compiled(pipe: AnimateAnyonePipeline, on: bool) -> None:
    """Compile the denoising UNet in place (``nn.Module.compile``), or go back to eager."""
    unet = pipe.model.denoising_unet
    if on and getattr(unet, "_compiled_call_impl", None) is None:
        pipe.compile()
    elif not on:
        unet._compiled_call_impl = None


def time_calls(pipe, ref, poses, kwargs, args) -> dict:
    """One warm-up call, then ``args.repeats`` timed calls: median call and step time, peak memory."""
    step_times: list[float] = []

    def on_step(i, t, latents, step_times=step_times):
        if latents.device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter())

    with torch.inference_mode():
        start = time.perf_counter()
        warm = pipe(ref, poses, **kwargs).frames  # warm-up (compiles, for a compiled variant)
        warm_s = time.perf_counter() - start
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        calls = []
        for _ in range(args.repeats):
            step_times.clear()
            start = time.perf_counter()
            pipe(ref, poses, callback=on_step, **kwargs)
            calls.append(time.perf_counter() - start)
            per_step = np.diff([start, *step_times])[1:]  # drop step 0 (includes the reference pass)
    cuda = args.device.startswith("cuda")
    return {
        "preset": args.preset, "frames": args.frames, "steps": args.steps, "dtype": args.dtype,
        "device": args.device, "offload": args.offload, "sequential_cfg": args.sequential_cfg,
        "decode_chunk_size": kwargs["decode_chunk_size"],
        "call_s": float(np.median(calls)),
        "step_s": float(np.median(per_step)) if len(per_step) else float("nan"),
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib(),
        "reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else float("nan"),
        "memory": "GPU allocated" if cuda else "process RSS",
        "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
        "warmup_s": warm_s, "video": np.asarray(warm, dtype=np.float32),
    }  # fmt: skip


def profile_call(pipe, ref, poses, kwargs, top: int) -> None:
    """Operator self-time table of one call (``torch.profiler``, CPU and CUDA activities)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = pipe.device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode(), profile(activities=acts) as prof:
        pipe(ref, poses, **kwargs)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60), flush=True)


def format_row(r: dict) -> str:
    opts = "+".join(o for o in ("offload", "sequential_cfg") if r[o]) or "-"
    opts += f" dec{r['decode_chunk_size']}"
    s = (f"{r['variant']:>15} {r['preset']:>5} {r['size']:>9} F={r['frames']:<3} steps={r['steps']:<3} {r['dtype']:>4} "
         f"{r['device']:>5} {opts:>22} | call {r['call_s']:7.2f} s | step {r['step_s']:6.3f} s "
         f"| peak {r['peak_mib']:8.0f} MiB ({r['memory']})")  # fmt: skip
    if "speedup" in r:
        s += f" | reference {r['moore_call_s']:.1f} s -> {r['speedup']:.2f}x"
    if "speedup_vs_reference_style" in r:
        s += f" | ours {r['speedup_vs_reference_style']:.2f}x faster"
    if "max_diff" in r:
        s += f" | warm-up incl. compiling {r['warmup_s']:.1f} s, frames within {r['max_diff']:.1e} of eager"
    if "shortcut_speedup" in r:
        s += f" | ours (one-token cross-attention) {r['shortcut_speedup']:.3f}x faster, frames within {r['shortcut_max_diff']:.1e}"
    if "compiled_vs_reference_style" in r:
        s += f" | {r['compiled_vs_reference_style']:.2f}x faster than reference-style"
    return s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--size", dest="sizes", nargs=2, type=int, action="append", metavar=("W", "H"),
                   help="output size (repeatable); default 128 128 and 256 256")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=3.5)
    p.add_argument("--context-frames", type=int, default=24)
    p.add_argument("--context-overlap", type=int, default=4)
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--offload", action="store_true")
    p.add_argument("--sequential-cfg", action="store_true")
    p.add_argument("--decode-chunk-size", type=int, default=4, help="frames per VAE decode call")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile one call and print its N most expensive operators")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compare-moore", action="store_true", help="print the reference CPU baselines beside")
    p.add_argument("--reference-style", action="store_true",
                   help="also time the reference implementation's way of computing the same call (see above)")
    p.add_argument("--memory-limit-gib", type=float, default=0.0,
                   help="cap the CUDA allocator at this many GiB (e.g. 12 for a 12 GB card)")
    p.add_argument("--full-cross-attention", action="store_true",
                   help="also time ours with the cross-attention to the CLIP token computed in full (diffusers' "
                        "processor) instead of the one-token shortcut (models/cross_attention.py)")
    p.add_argument("--compile", action="store_true",
                   help="also time ours with the denoising UNet compiled by torch.compile (see above)")
    p.add_argument("--json", help="append the rows to this JSON-lines file")
    p.add_argument("--allocator", choices=["animate", "torch"], default="animate",
                   help="CUDA allocator settings: as `animate` runs (expandable segments unless "
                        "PYTORCH_CUDA_ALLOC_CONF is set) or PYTORCH_CUDA_ALLOC_CONF left as it is")
    args = p.parse_args(argv)
    if args.allocator == "animate":
        prefer_expandable_segments()
    args.sizes = args.sizes or [(128, 128), (256, 256)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}", flush=True)
    rows = run(args)
    if args.json:
        with open(args.json, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
