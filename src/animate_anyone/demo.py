"""``animate-anyone demo``: the shipped tiny lab model animates a held-out lab character.

The character and the motion both come from the lab's held-out split (never seen in training).
The reference image is the first frame of the clip; the following frames are the ground truth and
their exact keypoints, rendered as pose maps, drive the model. Outputs (written atomically):

* ``demo.mp4``: the generated video;
* ``demo_grid.png``: rows of reference | pose | result | ground truth;
* ``metrics.json``: SSIM, PSNR and L1 of the result against the ground truth, next to the
  copy-the-reference baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InputError

DEMO_WEIGHTS = "demo_weights"
# for a lab model whose folder recommends nothing: guidance off, as every lab model so far scored
# best without it (at 2.0 their colours drift green; README, "Demo model")
DEFAULT_SETTINGS = {"size": 128, "frames": 24, "gap": 8, "steps": 20, "guidance": 1.0, "context_frames": 8,
                    "context_overlap": 2, "seed": 42, "strength": 1.0, "hold_steps": 0.0, "keep_steps": 0.0}  # fmt: skip


def default_weights() -> Path:
    path = Path(str(resources.files("animate_anyone") / DEMO_WEIGHTS))
    if not (path / "model.json").is_file():
        raise InputError(f"the shipped demo model is missing ({path}); reinstall the package or pass --weights")
    return path


def load_pipelines(names) -> tuple[list[Path], list]:
    """``(folders, pipelines)`` for the model folders a benchmark is given (``demo``: the shipped
    model). An unusable folder raises :class:`~animate_anyone.errors.AnimateAnyoneError`."""
    from .weights.layouts import load_pipeline

    folders = [default_weights() if m == "demo" else Path(m) for m in names]
    return folders, [load_pipeline(f) for f in folders]


def demo_settings(weights: Path) -> dict:
    """The demo's settings: ``DEFAULT_SETTINGS`` updated by the model folder's ``demo.json``."""
    from .weights.layouts import recommended_settings

    settings = dict(DEFAULT_SETTINGS)
    settings.update(recommended_settings(weights))
    return settings


def heldout_clip(index: int, size: int, frames: int, gap: int):
    """The lab clip of held-out example ``index`` (frame 0 is the reference) and the slice of its
    ground-truth frames."""
    from .lab.generate import generate_clip
    from .lab.split import character_ids, clip_motion

    cid = character_ids("heldout", index + 1)[index]
    clip = generate_clip(cid, clip_motion(cid, 0, "heldout"), num_frames=1 + gap + frames, width=size, height=size,
                         view_seed=0)  # fmt: skip
    return clip, slice(1 + gap, 1 + gap + frames)


def heldout_example(index: int, size: int, frames: int, gap: int):
    """(reference image, pose maps, ground-truth frames, description) of held-out example ``index``."""
    return example_parts(*heldout_clip(index, size, frames, gap))


def lab_hold(clip, sl: slice, size: int, hold_steps: float):
    """The pipeline's ``reference_hold`` for a clip from :func:`heldout_clip`: the reference's (frame
    0's) face, hidden from the frames that face away from it, read from the exact keypoints; None
    when ``hold_steps`` is 0."""
    from .pose.facing import reference_hold

    if hold_steps <= 0:
        return None
    return reference_hold(clip.poses.body[0], clip.poses.body[sl], (size, size), face=clip.poses.face[0])


def lab_keep(clip, sl: slice, size: int, keep_steps: float):
    """The pipeline's ``reference_keep`` for a clip from :func:`heldout_clip`: where each frame shows
    what the reference (frame 0) shows, read from the exact keypoints
    (:func:`animate_anyone.pose.static.static_mask`); None when ``keep_steps`` is 0."""
    from .pose.static import static_mask

    if keep_steps <= 0:
        return None
    p = clip.poses
    ref = {"body": p.body[0], "hands": p.hands[0], "face": p.face[0]}
    return static_mask(ref, {"body": p.body[sl], "hands": p.hands[sl], "face": p.face[sl]}, (size, size))


def example_parts(clip, sl: slice):
    """(reference image, pose maps, ground-truth frames, description) of a clip from :func:`heldout_clip`."""
    info = {"character_id": clip.meta["character_id"], "category": clip.character.category,
            "motion": clip.meta["motion_id"], "background": clip.meta["background"]}  # fmt: skip
    return clip.frames[0], clip.pose_maps()[sl], clip.frames[sl], info


def lab_probe():
    """The shipped lab pose probe as a detector, or None when its weights are missing."""
    from .errors import InputError
    from .lab.pose_probe import probe_detector

    try:
        return probe_detector()
    except InputError:
        return None


def pose_score(frames: np.ndarray, truth, detect) -> float | None:
    """PCK@0.1 of ``frames`` against the exact keypoints ``truth`` read by ``detect`` (None without one)."""
    from .evaluation.pose_metrics import pose_fidelity

    return None if detect is None else pose_fidelity(frames, truth, detector=detect).pck[0.1]


def frame_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean SSIM / PSNR / L1 over frames (uint8 ``[T, H, W, 3]``; data range 255)."""
    from .evaluation.metrics import l1, psnr, ssim

    return {
        "ssim": float(np.mean(ssim(pred, gt, data_range=255))),
        "psnr": float(np.mean(psnr(pred, gt, data_range=255))),
        "l1": float(np.mean(l1(pred, gt, data_range=255))),
    }


def grid(ref, poses, result, gt, rows: int = 4) -> np.ndarray:
    picks = np.linspace(0, len(result) - 1, rows).round().astype(int)
    lines = [np.concatenate([ref, poses[i], result[i], gt[i]], axis=1) for i in picks]
    return np.concatenate(lines, axis=0)


def run_demo(out_dir: str | Path, weights: str | Path | None = None, example: int = 0, steps: int | None = None,
             device: str = "cpu", progress: bool = True) -> dict:
    import torch
    from PIL import Image

    from .data.video_io import atomic_path, write_image, write_video
    from .weights.layouts import load_pipeline

    weights = Path(weights) if weights else default_weights()
    s = demo_settings(weights)
    if steps is not None:
        s["steps"] = steps
    out = Path(out_dir)
    t0 = time.perf_counter()
    clip, sl = heldout_clip(example, s["size"], s["frames"], s["gap"])
    ref, poses, gt, info = example_parts(clip, sl)
    pipe = load_pipeline(weights, device=device)
    with torch.inference_mode():
        result = pipe(Image.fromarray(ref), list(poses), width=s["size"], height=s["size"],
                      num_inference_steps=s["steps"], guidance_scale=s["guidance"], seed=s["seed"],
                      context_frames=s["context_frames"], context_overlap=s["context_overlap"],
                      strength=s["strength"], reference_hold=lab_hold(clip, sl, s["size"], s["hold_steps"]),
                      reference_hold_steps=s["hold_steps"],
                      reference_keep=lab_keep(clip, sl, s["size"], s["keep_steps"]),
                      reference_keep_steps=s["keep_steps"], progress=progress).to_uint8()
    seconds = time.perf_counter() - t0
    copy = np.repeat(ref[None], len(gt), axis=0)
    truth, detect = clip.poses.frames(sl), lab_probe()
    metrics = {
        "example": info,
        "settings": s,
        "model": {**frame_metrics(result, gt), "pose_pck@0.1": pose_score(result, truth, detect)},
        "copy_reference_baseline": {**frame_metrics(copy, gt), "pose_pck@0.1": pose_score(copy, truth, detect)},
        "seconds": round(seconds, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "demo.mp4", result, fps=12)
    write_image(out / "demo_grid.png", grid(ref, poses, result, gt))
    with atomic_path(out / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=1))
    return metrics


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="animate a held-out lab character with the shipped tiny model (CPU, < 2 min)")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--weights", help="another model folder (default: the shipped demo model)")
    p.add_argument("--example", type=int, default=0, help="which held-out character (default 0)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the model's demo setting)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.example < 0:
        raise InputError("--example must be >= 0")
    m = run_demo(args.out, args.weights, args.example, args.steps, args.device)
    ex, model, base = m["example"], m["model"], m["copy_reference_baseline"]
    print(f"held-out {ex['category']} character {ex['character_id']}, motion {ex['motion']}: {m['seconds']} s")
    for name, r in (("model:         ", model), ("copy reference:", base)):
        pck = "" if r["pose_pck@0.1"] is None else f"  pose PCK@0.1 {r['pose_pck@0.1']:.3f}"
        print(f"  {name} SSIM {r['ssim']:.3f}  PSNR {r['psnr']:.2f} dB  L1 {r['l1']:.4f}{pck}")
    print(f"wrote {Path(args.out) / 'demo.mp4'}, demo_grid.png and metrics.json")
    return 0
