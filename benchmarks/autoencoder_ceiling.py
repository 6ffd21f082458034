"""How far can a denoiser in each model's latent space get? Autoencoders side by side.

For the held-out lab sequences of ``lab_quality.py`` (same characters, motions, frames and size),
the ground truth is encoded (posterior mean) and decoded by each given model's autoencoder (and
refined against the reference by a model's reference detail refiner, if it has one) and scored
against itself: SSIM, PSNR (dB) and L1. The copy-the-reference baseline of the same
sequences is printed as the bar a lab model has to clear (acceptance 1 of the demo model). Use it
to judge an autoencoder run before spending hours on the denoiser stages on top of it.

    python benchmarks/autoencoder_ceiling.py                                  # the shipped demo model
    python benchmarks/autoencoder_ceiling.py demo runs/vae_long/final --sequences 20

Each positional argument is a model folder (native weights, a training stage's ``final/``) or
``demo``; all are measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from animate_anyone.demo import default_weights, demo_settings, frame_metrics, heldout_example, load_pipelines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=["demo"], help="model folders, or 'demo' (default)")
    p.add_argument("--sequences", type=int, default=20)
    args = p.parse_args(argv)

    from animate_anyone.errors import AnimateAnyoneError

    try:
        folders, pipes = load_pipelines(args.models)
    except AnimateAnyoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = demo_settings(Path(default_weights()))
    rows: dict[str, list[dict]] = {"copy-reference": [], **{str(m): [] for m in args.models}}
    t0 = time.perf_counter()
    for i in range(args.sequences):
        ref, _, gt, info = heldout_example(i, s["size"], s["frames"], s["gap"])
        rows["copy-reference"].append(frame_metrics(np.repeat(ref[None], len(gt), axis=0), gt))
        for name, pipe in zip(args.models, pipes):
            rows[str(name)].append(frame_metrics(pipe.autoencode(gt, reference=ref), gt))
        print(f"[{i + 1}/{args.sequences}] {info['category']:8s} {info['motion']:14s} "
              + " | ".join(f"{n} {r[-1]['ssim']:.3f}" for n, r in rows.items()), flush=True)
    print(f"\n{args.sequences} held-out sequences, {s['frames']} frames at {s['size']}x{s['size']}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| autoencoder | SSIM ↑ | PSNR (dB) ↑ | L1 ↓ |")
    print("|---|---|---|---|")
    for name, rs in rows.items():
        print(f"| {name} | {np.mean([r['ssim'] for r in rs]):.3f} | {np.mean([r['psnr'] for r in rs]):.2f} "
              f"| {np.mean([r['l1'] for r in rs]):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
