"""``animate-anyone reenact``: a portrait driven by the face of a driving video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import add_setting_arguments, resolve_settings

# the released reenactment model's resolution; a weights folder's demo.json may recommend others
REENACT_DEFAULTS = {"width": 512, "height": 512, "steps": 20, "guidance_scale": 3.5, "context_frames": 24,
                    "context_overlap": 4}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reenact", help="face reenactment: animate a portrait with a driving video's face")
    p.add_argument("--ref", required=True, help="source face image")
    p.add_argument("--driving", required=True, help="driving video (a talking head)")
    p.add_argument("--weights", required=True, help="the reenactment weights folder (reenact/ of the release)")
    p.add_argument("--output", "-o", required=True, help="output .mp4")
    add_setting_arguments(p, REENACT_DEFAULTS)
    p.add_argument("--num-frames", type=int, default=None, help="default: every driving frame")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--mask-ratio", type=float, default=0.55, help="upper-face map: rows below this fraction blanked")
    p.add_argument("--no-retarget", action="store_true", help="draw the driving landmarks where they are")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--grid", action="store_true", help="also write OUTPUT_grid.mp4: reference | upper | mouth | result")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_reenact)


def run_reenact(args: argparse.Namespace) -> int:
    import contextlib

    import numpy as np
    import torch
    from PIL import Image

    from ..data.video_io import atomic_path, read_image, read_video, write_video
    from ..errors import InputError
    from ..pose.extract import NoPersonError, extract_poses
    from ..pose.face import face_maps, retarget_face
    from ..weights.layouts import load_reenact_pipeline
    from .pipeline_animate import check_call_arguments, prefer_expandable_segments

    prefer_expandable_segments()
    out = Path(args.output)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: output must be an .mp4 file")
    if not 0 < args.mask_ratio <= 1:
        raise InputError("--mask-ratio must be in (0, 1]")
    from_weights = resolve_settings(args, REENACT_DEFAULTS)
    if from_weights:
        print(from_weights, flush=True)
    ref = read_image(args.ref)
    video = read_video(args.driving, max_frames=args.num_frames)
    try:
        check_call_arguments(len(video.frames), args.width, args.height, args.num_frames or len(video.frames),
                             args.steps, args.guidance_scale, args.context_frames, args.context_overlap, "none", 32)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        src, _ = extract_poses(np.asarray(ref)[None], 1.0, source=args.ref)
    except NoPersonError:
        raise InputError(f"{args.ref}: no face found in the source image") from None
    if not (src.face[0, :, 2] >= 0.3).any():
        raise InputError(f"{args.ref}: no face found in the source image")
    try:
        drv, report = extract_poses(video.frames, video.fps, source=args.driving)
    except NoPersonError:
        raise InputError(f"{args.driving}: no face found in the driving video") from None
    if len(report.face_missed) == len(drv):
        raise InputError(f"{args.driving}: no face found in the driving video")
    if not args.quiet or report.face_missed:
        print(report.face_summary(), file=sys.stderr)
    if not args.no_retarget:
        drv = retarget_face(drv, src.face[0], src.width, src.height)
    upper, mouth = face_maps(drv, src.width, src.height, mask_ratio=args.mask_ratio)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        args.dtype or ("fp16" if device.startswith("cuda") else "fp32")]
    pipe = load_reenact_pipeline(args.weights, device=device, dtype=dtype)
    with torch.inference_mode():
        frames = pipe(ref, list(upper), list(mouth), width=args.width, height=args.height,
                      num_inference_steps=args.steps, guidance_scale=args.guidance_scale, seed=args.seed,
                      context_frames=args.context_frames, context_overlap=args.context_overlap,
                      progress=not args.quiet).to_uint8()
    with contextlib.ExitStack() as stack:
        write_video(stack.enter_context(atomic_path(out)), frames, video.fps)
        if args.grid:
            size = (args.width, args.height)
            r = np.asarray(ref.resize(size, Image.LANCZOS))
            rows = [np.concatenate([r, np.asarray(Image.fromarray(u).resize(size)), np.asarray(Image.fromarray(m).resize(size)), f], 1)
                    for u, m, f in zip(upper, mouth, frames)]
            write_video(stack.enter_context(atomic_path(out.with_name(out.stem + "_grid.mp4"))), np.stack(rows), video.fps)
    print(f"wrote {out} ({len(frames)} frames)")
    return 0
