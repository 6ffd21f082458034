"""Quality of a lab-trained model on held-out lab sequences, next to two baselines.

For each of ``--sequences`` held-out characters (never trained on) performing a held-out motion,
the first frame is the reference image and the next ``--frames`` frames (after a gap) are the
ground truth; their exact keypoints, drawn as pose maps, drive the model. Printed per method:
SSIM, PSNR (textbook, dB) and L1 against the ground truth, and pose fidelity (PCK@0.1 of the
re-detected body pose, with the bundled mediapipe estimator when the ``pose`` extra is installed).

Methods, all measured in this run:
* ``model``            the model as shipped;
* ``no-referencenet``  the same model and seed with the ReferenceNet switched off (empty bank);
* ``copy-reference``   the reference image repeated (what a model that ignores the pose gets);
* ``autoencoder``      the ground truth encoded and decoded by the model's autoencoder: the
                       ceiling any denoiser working in its latent space can reach;
* ``ground-truth``     (pose fidelity only) how well the detector does on the true frames.

    python benchmarks/lab_quality.py                      # the shipped demo model
    python benchmarks/lab_quality.py --weights runs/demo/stage2/final --sequences 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from PIL import Image

from animate_anyone.demo import default_weights, demo_settings, frame_metrics, heldout_example
from animate_anyone.pipelines import AnimationOutput


def pose_score(frames, seq, detector):
    if detector is None:
        return float("nan")
    from animate_anyone.evaluation.pose_metrics import pose_fidelity

    return pose_fidelity(frames, seq, detector=detector).pck[0.1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="model folder (default: the shipped demo model)")
    p.add_argument("--sequences", type=int, default=20)
    p.add_argument("--steps", type=int, help="DDIM steps (default: the model's demo setting)")
    p.add_argument("--strength", type=float,
                   help="fraction of the schedule run from the noised reference latent, for the model and "
                        "no-referencenet rows alike (default: the model's demo setting, 1.0 = pure noise)")
    p.add_argument("--no-pose", action="store_true", help="skip pose fidelity")
    p.add_argument("--json", help="also write the per-sequence numbers here")
    args = p.parse_args(argv)

    from animate_anyone.lab.generate import generate_clip  # noqa: F401  (fail early without the lab)
    from animate_anyone.weights.layouts import load_pipeline

    weights = args.weights or default_weights()
    s = demo_settings(__import__("pathlib").Path(weights))
    if args.steps:
        s["steps"] = args.steps
    if args.strength is not None:
        s["strength"] = args.strength
    detector = None
    if not args.no_pose:
        try:
            from animate_anyone.evaluation.pose_metrics import default_detector

            detector = default_detector()
        except Exception as exc:  # noqa: BLE001 - report and go on without pose fidelity
            print(f"pose fidelity off: {exc}", file=sys.stderr)
    pipe = load_pipeline(weights)
    rows: dict[str, list[dict]] = {m: [] for m in ("model", "no-referencenet", "copy-reference", "autoencoder", "ground-truth")}
    t0 = time.perf_counter()
    for i in range(args.sequences):
        ref, poses, gt, info = heldout_example(i, s["size"], s["frames"], s["gap"])
        seq = _keypoints(i, s)
        kw = dict(width=s["size"], height=s["size"], num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                  seed=s["seed"], context_frames=s["context_frames"], context_overlap=s["context_overlap"],
                  strength=s["strength"], progress=False)  # fmt: skip
        with torch.inference_mode():
            outs = {
                "model": pipe(Image.fromarray(ref), list(poses), **kw).to_uint8(),
                "no-referencenet": pipe(Image.fromarray(ref), list(poses), use_reference=False, **kw).to_uint8(),
            }
        outs["copy-reference"] = np.repeat(ref[None], len(gt), axis=0)
        outs["autoencoder"] = _reconstruct(pipe, gt)
        for name, frames in outs.items():
            r = frame_metrics(frames, gt)
            r["pck@0.1"] = pose_score(frames, seq, detector)
            r.update(info)
            rows[name].append(r)
        rows["ground-truth"].append({"pck@0.1": pose_score(gt, seq, detector), **info})
        print(f"[{i + 1}/{args.sequences}] {info['category']:8s} {info['motion']:14s} "
              f"SSIM model {rows['model'][-1]['ssim']:.3f} | no-ref {rows['no-referencenet'][-1]['ssim']:.3f} | "
              f"copy {rows['copy-reference'][-1]['ssim']:.3f}", flush=True)  # fmt: skip
    print(f"\n{args.sequences} held-out sequences, {s['frames']} frames at {s['size']}x{s['size']}, "
          f"{s['steps']} steps, guidance {s['guidance']}, strength {s['strength']}, {time.perf_counter() - t0:.0f} s\n")
    print("| method | SSIM ↑ | PSNR (dB) ↑ | L1 ↓ | pose PCK@0.1 ↑ |")
    print("|---|---|---|---|---|")
    for name, rs in rows.items():
        cells = [f"{_mean(rs, 'ssim'):.3f}", f"{_mean(rs, 'psnr'):.2f}", f"{_mean(rs, 'l1'):.4f}",
                 f"{_mean(rs, 'pck@0.1'):.3f}"]
        print(f"| {name} | " + " | ".join("–" if c == "nan" else c for c in cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"settings": s, "rows": rows}, fh, indent=1, default=float)
    return 0


@torch.inference_mode()
def _reconstruct(pipe, frames: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> the same frames through the autoencoder: encoded (posterior mean)
    as the pipeline encodes its reference, decoded by the pipeline's own ``decode_latents``."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(pipe.device, pipe.vae.dtype)
    latents = torch.cat([pipe.vae.encode(c).latent_dist.mean for c in x.split(8)]) * pipe.model.config.vae_scaling_factor
    return AnimationOutput(frames=pipe.decode_latents(latents.transpose(0, 1).unsqueeze(0))).to_uint8()


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def _keypoints(i: int, s: dict):
    """The exact driving keypoints of held-out example ``i`` (same clip as heldout_example)."""
    from animate_anyone.lab.generate import generate_clip
    from animate_anyone.lab.split import character_ids, clip_motion

    cid = character_ids("heldout", i + 1)[i]
    clip = generate_clip(cid, clip_motion(cid, 0, "heldout"), num_frames=1 + s["gap"] + s["frames"],
                         width=s["size"], height=s["size"], view_seed=0)
    return clip.poses.frames(slice(1 + s["gap"], 1 + s["gap"] + s["frames"]))


if __name__ == "__main__":
    sys.exit(main())
