"""Face reenactment on held-out lab talking heads: does the mouth and do the eyes follow the driver?

For each of ``--sequences`` held-out characters (never trained on) with a held-out talking motion,
rendered as a portrait (``generate_clip(..., framing="face")``), frame 0 is the source face and
the next ``--frames`` frames (after a gap) are the ground truth; their exact landmarks, drawn as
the upper-face and mouth maps, drive the model. Measured per method against the ground truth:

* ``mouth L1`` / ``eyes L1``: mean absolute error (0-255 scale) inside the mouth box and the eyes
  box (the ground truth's landmarks 48-67 and 36-47, padded by half their size, per frame);
* ``mouth corr``: Pearson correlation, over frames, between how much the mouth region differs
  from the source face in the result and in the ground truth: 1 when the mouth opens and closes
  with the driver, 0 for a static mouth (copy-reference has no change at all: reported as 0);
* ``PSNR``: the whole frame, for context;
* landmark errors read by the lab **face probe** (``animate_anyone.lab.pose_probe``, kind ``face``,
  trained on train-split lab portraits), against the driver's exact landmarks, in % of the face
  size (diagonal of the box around the true landmarks): ``mouth NME`` / ``eyes NME``, the mean
  distance of the mouth (48-67) and eye (36-47) points (the average keypoint distance of the
  reenactment literature), and ``mouth open err`` / ``eyes open err``, the error of the opening
  (mean inner-lip / eyelid gap): expression alone, head position aside. The ``ground-truth`` row
  is the probe on the true frames (its own error, the floor);
* the states read by the lab **expression probe** (``animate_anyone.lab.expression_probe``,
  trained on train-split lab portraits) against the exact ones the lab animated the driver with:
  ``eyes state err`` / ``mouth state err``, the mean absolute error of ``eye_open`` (0 closed … 1
  open) and ``mouth_open`` (0 … 1 wide open), in percentage points. Landmarks are too coarse for
  a blink (an eye is a few pixels tall at 128×128); this reads the state itself. Its
  ``ground-truth`` row is again the reader's own error on the true frames.

Methods, all in this run: ``model`` (the given reenactment weights), ``copy-reference`` (the
source face repeated: what a model that ignores the driver gets) and ``autoencoder`` (the ground
truth encoded and decoded by the model's own autoencoder: the best any denoiser in its latent
space can do, and a check that the probes read decoded frames as well as true ones).

    python benchmarks/reenact_quality.py --weights runs/reenact/stage1/final --sequences 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from PIL import Image

MOUTH = slice(48, 68)
EYES = slice(36, 48)


def heldout_portrait(i: int, size: int, frames: int, gap: int):
    """(source face, upper maps, mouth maps, ground truth, face landmarks [T, 68, 3], info); ``info``
    also holds ``states``, the true ``[T, 2]`` (eye_open, mouth_open) of the ground truth."""
    from animate_anyone.lab.expression_probe import clip_states
    from animate_anyone.lab.generate import generate_clip
    from animate_anyone.lab.split import character_ids, clip_motion
    from animate_anyone.pose.face import face_maps

    cid = character_ids("heldout", i + 1)[i]
    motion = clip_motion(cid, 0, "heldout", ("talk",))
    clip = generate_clip(cid, motion, num_frames=1 + gap + frames, width=size, height=size, view_seed=0, framing="face")
    upper, mouth = face_maps(clip.poses)
    sl = slice(1 + gap, 1 + gap + frames)
    info = {"character_id": cid, "category": clip.character.category, "motion": motion, "states": clip_states(clip, sl)}
    return clip.frames[0], upper[sl], mouth[sl], clip.frames[sl], clip.poses.face[sl], info


def region_boxes(face: np.ndarray, part: slice, width: int, height: int) -> list[tuple[int, int, int, int] | None]:
    """Per frame, the padded box ``(x0, y0, x1, y1)`` around the visible landmarks of ``part``."""
    boxes = []
    for pts in face[:, part]:
        ok = pts[:, 2] > 0
        if not ok.any():
            boxes.append(None)
            continue
        lo, hi = pts[ok, :2].min(0), pts[ok, :2].max(0)
        pad = np.maximum((hi - lo) / 2, 2.0)
        x0, y0 = np.floor(lo - pad).astype(int)
        x1, y1 = np.ceil(hi + pad).astype(int)
        boxes.append((max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)))
    return boxes


def region_l1(pred: np.ndarray, gt: np.ndarray, boxes) -> np.ndarray:
    out = np.full(len(gt), np.nan)
    for t, b in enumerate(boxes):
        if b is not None:
            x0, y0, x1, y1 = b
            out[t] = np.abs(pred[t, y0:y1, x0:x1].astype(float) - gt[t, y0:y1, x0:x1]).mean()
    return out


def motion_corr(pred: np.ndarray, gt: np.ndarray, ref: np.ndarray, boxes) -> float:
    refs = np.repeat(ref[None], len(gt), 0)
    a, b = region_l1(pred, refs, boxes), region_l1(gt, refs, boxes)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() < 1e-9 or b[ok].std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="face-reenactment weights (native folder with pose_guider2/)")
    p.add_argument("--sequences", type=int, default=20)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--gap", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-probe", action="store_true", help="skip the face-probe and expression-probe errors")
    p.add_argument("--json", help="also write the per-sequence numbers here")
    args = p.parse_args(argv)

    from animate_anyone.demo import frame_metrics
    from animate_anyone.evaluation.pose_metrics import expression_errors
    from animate_anyone.lab.expression_probe import state_errors
    from animate_anyone.weights.layouts import load_reenact_pipeline

    pipe = load_reenact_pipeline(args.weights)
    probe = reader = None
    if not args.no_probe:
        try:
            from animate_anyone.lab.pose_probe import probe_detector

            probe = probe_detector(kind="face")
        except Exception as exc:  # noqa: BLE001 - report and go on without the landmark errors
            print(f"landmark errors off: {exc}", file=sys.stderr)
        try:
            from animate_anyone.lab.expression_probe import expression_reader

            reader = expression_reader()
        except Exception as exc:  # noqa: BLE001 - report and go on without the state errors
            print(f"state errors off: {exc}", file=sys.stderr)
    rows: dict[str, list[dict]] = {"model": [], "copy-reference": [], "autoencoder": [], "ground-truth": []}
    t0 = time.perf_counter()
    for i in range(args.sequences):
        ref, upper, mouth, gt, face, info = heldout_portrait(i, args.size, args.frames, args.gap)
        states = info.pop("states")
        with torch.inference_mode():
            result = pipe(Image.fromarray(ref), list(upper), list(mouth), width=args.size, height=args.size,
                          num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
                          context_frames=8, context_overlap=2, progress=False).to_uint8()
        outs = {"model": result, "copy-reference": np.repeat(ref[None], len(gt), axis=0),
                "autoencoder": pipe.autoencode(gt), "ground-truth": gt}
        mouth_boxes = region_boxes(face, MOUTH, args.size, args.size)
        eye_boxes = region_boxes(face, EYES, args.size, args.size)
        for name, frames in outs.items():
            r = {
                "mouth_l1": float(np.nanmean(region_l1(frames, gt, mouth_boxes))),
                "eyes_l1": float(np.nanmean(region_l1(frames, gt, eye_boxes))),
                "mouth_corr": motion_corr(frames, gt, ref, mouth_boxes),
                "psnr": frame_metrics(frames, gt)["psnr"],
                **info,
            }
            if probe is not None:
                r.update(expression_errors(probe(frames).face, face))
            if reader is not None:
                r.update(state_errors(reader(frames), states))
            rows[name].append(r)
        m, c = rows["model"][-1], rows["copy-reference"][-1]
        print(f"[{i + 1}/{args.sequences}] {info['category']:8s} mouth L1 model {m['mouth_l1']:.1f} | copy "
              f"{c['mouth_l1']:.1f}; eyes L1 model {m['eyes_l1']:.1f} | copy {c['eyes_l1']:.1f}; "
              f"mouth corr {m['mouth_corr']:.2f}", flush=True)  # fmt: skip
    print(f"\n{args.sequences} held-out talking heads, {args.frames} frames at {args.size}x{args.size}, "
          f"{args.steps} steps, guidance {args.guidance}, {time.perf_counter() - t0:.0f} s\n")
    keys = ["mouth_l1", "eyes_l1", "mouth_corr", "psnr"]
    heads = ["mouth L1 ↓", "eyes L1 ↓", "mouth corr ↑", "PSNR (dB) ↑"]
    if probe is not None:
        keys += ["mouth_nme", "eyes_nme", "mouth_open_err", "eyes_open_err"]
        heads += ["mouth NME % ↓", "eyes NME % ↓", "mouth open err % ↓", "eyes open err % ↓"]
    if reader is not None:
        keys += ["mouth_state_err", "eyes_state_err"]
        heads += ["mouth state err ↓", "eyes state err ↓"]
    print("| method | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for name, rs in rows.items():
        cells = []
        for k in keys:
            if name == "ground-truth" and k in ("mouth_l1", "eyes_l1", "mouth_corr", "psnr"):
                cells.append("–")
                continue
            vals = [r[k] for r in rs if np.isfinite(r[k])]
            cells.append(f"{np.mean(vals):.2f}" if vals else "–")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\npaired over sequences, model − copy-reference: mean ± standard error (sequences where the model is better)")
    for k, head in zip(keys, heads):
        if k == "mouth_corr":
            continue
        pairs = [(m[k], c[k]) for m, c in zip(rows["model"], rows["copy-reference"]) if np.isfinite(m[k]) and np.isfinite(c[k])]
        if len(pairs) < 2:
            continue
        d = np.array([m - c for m, c in pairs])
        better = int((d > 0).sum() if "↑" in head else (d < 0).sum())
        print(f"  {head[:-2]}: {d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f} ({better}/{len(d)})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
