"""``animate-anyone animate``: reference image + pose video (or driving video) -> mp4."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", help="animate a reference image with a pose video")
    p.add_argument("--ref", required=True, help="reference image of the character")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pose", help="pose-skeleton video, or a folder of pose images (file-name order)")
    src.add_argument("--driving", help="real video of a person: poses are extracted and aligned to --ref")
    p.add_argument("--no-align", action="store_true", help="with --driving: do not retarget the skeleton")
    p.add_argument("--ref-pose", help="with --driving: reference keypoints (.json/.npz) instead of detecting them in --ref")
    p.add_argument("--dwpose-dir", help="with --driving: extract with the DWPose ONNX models in this folder")
    p.add_argument("--no-face", action="store_true", help="with --driving: do not draw face points in the pose maps")
    p.add_argument("--no-hands", action="store_true", help="with --driving: do not draw hands in the pose maps")
    p.add_argument("--weights", required=True, help="weights folder (Moore, MusePose or native layout)")
    p.add_argument("--output", "-o", required=True, help="output .mp4")
    add_setting_arguments(p, ANIMATE_DEFAULTS)
    p.add_argument("--num-frames", type=int, default=None, help="default: every pose frame")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--wrap-around", action="store_true", help="let the last context window wrap to the start")
    p.add_argument("--compat", choices=["none", "moore"], default="none",
                   help="'moore': reproduce the reference implementation's long pipeline, quirks included")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: fp16 on CUDA, fp32 on CPU")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--sequential-cfg", action="store_true", help="lower memory: guidance halves one after another")
    p.add_argument("--offload", action="store_true", help="lower GPU memory: components visit the GPU only when used")
    p.add_argument("--compile", action="store_true",
                   help="compile the denoising UNet with torch.compile first: minutes of compiling (less "
                        "once inductor's disk cache holds the shapes), then faster steps (for long "
                        "videos only; docs/performance.md)")
    p.add_argument("--decode-chunk-size", type=int, default=4, help="frames per VAE decode call (lower: less GPU memory)")
    p.add_argument("--fps", type=float, default=None, help="default: the pose video's frame rate")
    p.add_argument("--grid", action="store_true", help="also write OUTPUT_grid.mp4: reference | pose | result")
    p.add_argument("--save-array", help="also save the float frames (frames, height, width, 3) in [0, 1] as .npy")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_animate)


# the reference implementation's app; a weights folder's demo.json may recommend others
ANIMATE_DEFAULTS = {"width": 512, "height": 768, "steps": 25, "guidance_scale": 3.5, "context_frames": 24,
                    "context_overlap": 4, "strength": 1.0, "hold_steps": 0.0, "keep_steps": 0.0}  # fmt: skip
_SETTING_HELP = {
    "width": ("--width", int, "frame width"),
    "height": ("--height", int, "frame height"),
    "steps": ("--steps", int, "DDIM steps"),
    "guidance_scale": ("--guidance-scale", float, "classifier-free guidance scale (1 = off)"),
    "context_frames": ("--context-frames", int, "frames per context window"),
    "context_overlap": ("--context-overlap", int, "frames shared by neighbouring windows"),
    "strength": ("--strength", float, "fraction of the DDIM schedule to run; below 1 every frame starts from the "
                 "noised reference latent (keeps a static background; 1.0 = pure noise, as the reference code)"),
    "hold_steps": ("--hold-steps", float, "with --driving: fraction of the steps during which frames whose figure "
                   "faces away from the reference's view do not read the reference's face, so it is not painted "
                   "on the back of the head (0 = off, as the reference code)"),
    "keep_steps": ("--keep-steps", float, "with --driving: fraction of the steps during which the reference latent "
                   "is kept wherever the poses say nothing moved (the background away from the figure, parts that "
                   "stay still), so it does not flicker; meant for a still camera (0 = off, as the reference code)"),
}


def add_setting_arguments(p: argparse.ArgumentParser, defaults: dict) -> None:
    """The flags whose default a weights folder may recommend (its ``demo.json``)."""
    for name, default in defaults.items():
        flag, kind, text = _SETTING_HELP[name]
        p.add_argument(flag, type=kind, default=None,
                       help=f"{text} (default: the weights folder's demo.json setting, else {default:g})")


def resolve_settings(args: argparse.Namespace, defaults: dict) -> str | None:
    """Fill every setting flag the user left out: from the weights folder's recommended settings
    (``demo.json``) where it has one, else from ``defaults``. Returns a line naming what came from
    the folder, or None."""
    from ..weights.layouts import CALL_ARGUMENTS, SETTINGS_FILE, recommended_call_arguments

    # call argument -> setting name, where the flag is named after the demo.json key (--steps, --hold-steps)
    flag_of = {arg: key for key, arg in CALL_ARGUMENTS.items() if key in defaults}
    offered = {flag_of.get(arg, arg): value for arg, value in recommended_call_arguments(args.weights).items()}
    taken = []
    for name, default in defaults.items():
        if getattr(args, name) is not None:
            continue
        if name in offered:
            setattr(args, name, offered[name])
            taken.append(name)
        else:
            setattr(args, name, default)
    if not taken:
        return None
    both = "width" in taken and "height" in taken
    shown = [f"{args.width}x{args.height}"] if both else []
    shown += [f"{_SETTING_HELP[n][0].lstrip('-')} {getattr(args, n):g}" for n in taken if not both or n not in ("width", "height")]
    return f"settings from {Path(args.weights) / SETTINGS_FILE}: {', '.join(shown)} (a flag overrides each)"


def _grid(ref, poses, result, width, height):
    import numpy as np
    from PIL import Image

    ref_arr = np.asarray(ref.resize((width, height), Image.LANCZOS))
    rows = []
    for pose, frame in zip(poses, result):
        pose_arr = np.asarray(Image.fromarray(pose).resize((width, height), Image.LANCZOS))
        rows.append(np.concatenate([ref_arr, pose_arr, frame], axis=1))
    return np.stack(rows)


def _driving_reference(report, ref_image, args):
    """The reference's keypoints (read now where ``--no-align`` skipped them), or None: no body."""
    from ..pose.driving import reference_pose

    if report.reference is None and report.alignment is None:  # --no-align: the reference was not read yet
        return reference_pose(ref_image, args.ref_pose, backend="dwpose" if args.dwpose_dir else "mediapipe",
                              dwpose_dir=args.dwpose_dir)  # fmt: skip
    return report.reference


def _static_keep(report, ref, args):
    """``(masks or None, report line)``: where each driving frame shows what the reference shows
    (:func:`~animate_anyone.pose.static.static_mask`), over the reference image."""
    from ..pose.static import static_mask

    if ref is None:
        return None, "reference keep: off (no body found in the reference image)"
    seq = report.keypoints
    parts = ("body", "hands", "face")
    masks = static_mask({k: getattr(ref, k)[0] for k in parts}, {k: getattr(seq, k) for k in parts},
                        (ref.height, ref.width))  # fmt: skip
    return masks, (f"reference keep: {masks.mean():.0%} of the picture stays as the reference shows it (mean over "
                   f"frames), kept for the first {args.keep_steps:g} of the steps")


def _facing_hold(report, ref, args):
    """``(masks or None, report line)``: the reference's face, hidden from the driving frames that
    face away from it (:func:`~animate_anyone.pose.facing.reference_hold`), over the reference image
    (the pipeline stretches the masks onto its reference latent as it does the image)."""
    from ..pose.facing import reference_hold

    seq = report.keypoints
    if ref is None:
        return None, "reference hold: off (no body found in the reference image)"
    masks = reference_hold(ref.body[0], seq.body, (ref.height, ref.width), face=ref.face[0])
    away = int(masks.any(axis=(1, 2)).sum())
    return masks, (f"reference hold: {away} of {len(masks)} frames face away from the reference; they do not "
                   f"read its face for the first {args.hold_steps:g} of the steps")


def run_animate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..data.video_io import atomic_path, read_image, read_video, write_video
    from ..errors import InputError
    from ..weights.layouts import load_pipeline
    from .pipeline_animate import check_call_arguments, prefer_expandable_segments

    prefer_expandable_segments()
    out = Path(args.output)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: output must be an .mp4 file")
    from_weights = resolve_settings(args, ANIMATE_DEFAULTS)
    if from_weights:
        print(from_weights, flush=True)
    for flag, value in (("--hold-steps", args.hold_steps), ("--keep-steps", args.keep_steps)):
        if not 0.0 <= value <= 1.0:  # before any pose is extracted
            raise InputError(f"{flag} must be in [0, 1], got {value:g}")
    ref = read_image(args.ref)
    report_lines = []
    hold = keep = None
    if args.pose and (args.ref_pose or args.dwpose_dir or args.no_align):
        raise InputError("--ref-pose, --dwpose-dir and --no-align only apply with --driving")
    if args.pose:
        pose_video = read_video(args.pose)
        poses, fps = pose_video.frames, pose_video.fps
    else:
        from ..pose import prepare_driving_pose

        poses, fps, report = prepare_driving_pose(
            args.driving, ref, align=not args.no_align, ref_pose=args.ref_pose,
            backend="dwpose" if args.dwpose_dir else "mediapipe", dwpose_dir=args.dwpose_dir,
            draw_face=not args.no_face, draw_hands=not args.no_hands, max_frames=args.num_frames,
        )  # fmt: skip
        for warning in report.warnings:
            print(f"animate-anyone: warning: {warning}", file=sys.stderr)
        report_lines.append(str(report))
        if args.hold_steps > 0 or args.keep_steps > 0:
            ref_keypoints = _driving_reference(report, ref, args)
        if args.hold_steps > 0:
            hold, line = _facing_hold(report, ref_keypoints, args)
            report_lines.append(line)
        if args.keep_steps > 0:
            keep, line = _static_keep(report, ref_keypoints, args)
            report_lines.append(line)
    if args.pose and args.hold_steps > 0:
        report_lines.append("reference hold: off (a rendered pose video has no keypoints to tell which way the figure faces)")
    if args.pose and args.keep_steps > 0:
        report_lines.append("reference keep: off (a rendered pose video has no keypoints to tell what stays still)")
    num_frames = args.num_frames or len(poses)
    if num_frames > len(poses):
        raise InputError(f"--num-frames {num_frames} exceeds the {len(poses)} pose frames given")
    try:  # cheap checks before any weights are read
        check_call_arguments(len(poses), args.width, args.height, num_frames, args.steps, args.guidance_scale,
                             args.context_frames, args.context_overlap, args.compat, strength=args.strength)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
    dtype = getattr(torch, DTYPES[dtype_name])
    pipe = load_pipeline(args.weights, device=device, dtype=dtype)
    pipe.to(offload=args.offload)
    if args.compile:
        pipe.compile()
    try:
        result = pipe(
            ref, poses[:num_frames], width=args.width, height=args.height, num_frames=num_frames,
            num_inference_steps=args.steps, guidance_scale=args.guidance_scale, seed=args.seed,
            context_frames=args.context_frames, context_overlap=args.context_overlap,
            wrap_around=True if args.wrap_around else None, compat=args.compat,
            sequential_cfg=args.sequential_cfg, decode_chunk_size=args.decode_chunk_size, progress=not args.quiet,
            strength=args.strength, reference_hold=None if hold is None else hold[:num_frames],
            reference_hold_steps=args.hold_steps, reference_keep=None if keep is None else keep[:num_frames],
            reference_keep_steps=args.keep_steps,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except torch._dynamo.exc.BackendCompilerFailed as exc:  # only with --compile (e.g. no C++ compiler)
        inner = getattr(exc, "inner_exception", None) or exc
        reason = next((line for line in str(inner).splitlines() if line.strip()), type(inner).__name__)
        raise InputError(f"--compile: torch.compile could not compile the denoising UNet ({reason}); "
                         "run without --compile") from None
    frames = result.to_uint8()
    fps = args.fps or fps
    with contextlib.ExitStack() as stack:
        # every output is written under a temporary name and renamed only if all succeed
        write_video(stack.enter_context(atomic_path(out)), frames, fps)
        if args.grid:
            grid_path = out.with_name(out.stem + "_grid.mp4")
            write_video(stack.enter_context(atomic_path(grid_path)), _grid(ref, poses, frames, args.width, args.height), fps)
        if args.save_array:
            with open(stack.enter_context(atomic_path(args.save_array)), "wb") as fh:
                np.save(fh, result.frames)
    for line in report_lines:
        print(line)
    print(f"wrote {out} ({len(frames)} frames, {args.width}x{args.height}, {fps:g} fps)")
    return 0
