"""Seconds per denoising step and peak memory of `AnimateAnyonePipeline`.

Random weights of a preset (``tiny``, ``small`` = the shared fixture's model, ``sd15``), a synthetic
reference image and pose frames; the pipeline runs once to warm up, then ``--repeats`` times.

    python benchmarks/pipeline_speed.py --preset small --size 128 128 --frames 24 --steps 10
    python benchmarks/pipeline_speed.py --preset sd15 --size 512 768 --frames 24 --dtype bf16 --device cuda

Prints one table row per configuration. ``--compare-moore`` adds the reference implementation's
published CPU baselines for the ``small`` model (24 frames, 10 steps, guidance 3.5, fp32, 2 vCPUs):
4.3 s per call at 128×128 and 26.6 s at 256×256; the ratio is only meaningful on a comparable
2-vCPU machine (the baselines were measured on one; say so when you quote it).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image

from animate_anyone.models.presets import get_preset
from animate_anyone.pipelines import AnimateAnyonePipeline

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


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads) if args.threads else None
    pipe = AnimateAnyonePipeline.from_config(get_preset(args.preset), seed=0)
    pipe.to(args.device, DTYPES[args.dtype], offload=args.offload)
    rows = []
    for width, height in args.sizes:
        ref, poses = synthetic_inputs(width, height, args.frames)
        kwargs = dict(width=width, height=height, num_inference_steps=args.steps, guidance_scale=args.guidance,
                      context_frames=args.context_frames, context_overlap=args.context_overlap,
                      sequential_cfg=args.sequential_cfg, progress=False)
        step_times: list[float] = []

        def on_step(i, t, latents, step_times=step_times):
            if latents.device.type == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter())

        with torch.inference_mode():
            pipe(ref, poses, **kwargs)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            calls = []
            for _ in range(args.repeats):
                step_times.clear()
                start = time.perf_counter()
                pipe(ref, poses, callback=on_step, **kwargs)
                calls.append(time.perf_counter() - start)
                per_step = np.diff([start, *step_times])[1:]  # drop step 0 (includes the reference pass)
        row = {
            "preset": args.preset, "size": f"{width}x{height}", "frames": args.frames, "steps": args.steps,
            "dtype": args.dtype, "device": args.device, "call_s": float(np.median(calls)),
            "step_s": float(np.median(per_step)) if len(per_step) else float("nan"),
            "peak_mib": (torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda")
                         else peak_rss_mib()),
            "memory": "GPU allocated" if args.device.startswith("cuda") else "process RSS",
        }  # fmt: skip
        base = MOORE_CPU_BASELINE_S.get((width, height))
        if args.compare_moore and base and args.preset == "small":
            row["moore_call_s"] = base
            row["speedup"] = base / row["call_s"]
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    s = (f"{r['preset']:>5} {r['size']:>9} F={r['frames']:<3} steps={r['steps']:<3} {r['dtype']:>4} {r['device']:>5}"
         f" | call {r['call_s']:7.2f} s | step {r['step_s']:6.3f} s | peak {r['peak_mib']:8.0f} MiB ({r['memory']})")  # fmt: skip
    if "speedup" in r:
        s += f" | reference {r['moore_call_s']:.1f} s -> {r['speedup']:.2f}x"
    return s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "sd15"])
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
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compare-moore", action="store_true", help="print the reference CPU baselines beside")
    args = p.parse_args(argv)
    args.sizes = args.sizes or [(128, 128), (256, 256)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}", flush=True)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
