"""``animate-anyone pose extract|render|align``: keypoints from video, pose maps from keypoints,
retargeting to a reference character. Every command writes all of its outputs or none."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

KEYPOINT_SUFFIXES = (".json", ".npz")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["mediapipe", "dwpose"], default=None,
                   help="pose estimator (default: mediapipe, or dwpose when --dwpose-dir is given)")
    p.add_argument("--dwpose-dir", help="folder with the DWPose ONNX files (yolox_l.onnx, dw-ll_ucoco_384.onnx)")


def _add_render_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-face", action="store_true", help="do not draw the face points")
    p.add_argument("--no-hands", action="store_true", help="do not draw the hands")


def _add_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", required=True, help="keypoints file (.json or .npz)")
    p.add_argument("--video", help="rendered pose video (default: OUTPUT with .mp4, or .png for one frame)")
    p.add_argument("--no-video", action="store_true", help="write only the keypoints")
    _add_render_flags(p)


def register(sub: argparse._SubParsersAction) -> None:
    pose = sub.add_parser("pose", help="pose keypoints: extract from video, render, align to a reference")
    psub = pose.add_subparsers(dest="pose_command", required=True)

    p = psub.add_parser("extract", help="keypoints (+ pose video) of the person in a video, image folder or image")
    p.add_argument("input", help="video file, folder of frames, or image")
    _add_outputs(p)
    _add_backend(p)
    p.add_argument("--no-smooth", action="store_true", help="no temporal smoothing (gaps are still filled)")
    p.add_argument("--max-gap", type=float, default=0.5,
                   help="longest gap (seconds) of missed frames to interpolate (default 0.5)")
    p.set_defaults(func=run_extract)

    p = psub.add_parser("render", help="draw stored keypoints as a pose video or image")
    p.add_argument("keypoints", help="keypoints file (.json or .npz)")
    p.add_argument("--output", "-o", required=True, help="output .mp4 (or an image for a one-frame file)")
    p.add_argument("--width", type=int, default=None, help="default: the keypoints' frame width")
    p.add_argument("--height", type=int, default=None, help="default: the keypoints' frame height")
    p.add_argument("--fps", type=float, default=None, help="default: the keypoints' frame rate")
    _add_render_flags(p)
    p.set_defaults(func=run_render)

    p = psub.add_parser("align", help="retarget driving keypoints to the character of a reference image")
    p.add_argument("--ref", required=True, help="reference image of the character")
    p.add_argument("--pose", required=True, help="driving keypoints (.json/.npz) or a driving video")
    p.add_argument("--ref-pose", help="reference keypoints file to use instead of detecting the pose in --ref")
    _add_outputs(p)
    _add_backend(p)
    p.set_defaults(func=run_align)


def _backend(args) -> str:
    return args.backend or ("dwpose" if args.dwpose_dir else "mediapipe")


def _check_keypoint_output(path: str) -> Path:
    from ..errors import InputError

    out = Path(path)
    if out.suffix.lower() not in KEYPOINT_SUFFIXES:
        raise InputError(f"{out}: keypoints output must end in .json or .npz")
    return out


def _video_path(args, out: Path, num_frames: int) -> Path | None:
    from ..data.video_io import IMAGE_SUFFIXES
    from ..errors import InputError

    if args.no_video:
        return None
    if args.video is None:
        return out.with_suffix(".png" if num_frames == 1 else ".mp4")
    video = Path(args.video)
    allowed = {".mp4"} | (IMAGE_SUFFIXES if num_frames == 1 else set())
    if video.suffix.lower() not in allowed:
        raise InputError(f"{video}: pose video must be an .mp4" + (" or an image" if num_frames == 1 else ""))
    return video


def _write_all(seq, out: Path, video: Path | None, frames) -> None:
    """Keypoints and rendering, each under a temporary name, renamed only when both are written."""
    from ..data.video_io import atomic_path, write_image, write_video
    from .keypoints import save_keypoints

    with contextlib.ExitStack() as stack:
        if video is not None:
            tmp = stack.enter_context(atomic_path(video))
            if video.suffix.lower() == ".mp4":
                write_video(tmp, frames, seq.fps)
            else:
                write_image(tmp, frames[0])
        save_keypoints(seq, stack.enter_context(atomic_path(out)))


def _render(seq, args, width=None, height=None):
    from .render import render_sequence

    return render_sequence(seq, width, height, draw_face=not args.no_face, draw_hands=not args.no_hands)


def _frames(n: int) -> str:
    return f"{n} frame" + ("s" if n != 1 else "")


def _warn(lines) -> None:
    for line in lines:
        print(f"animate-anyone: warning: {line}", file=sys.stderr)


def run_extract(args: argparse.Namespace) -> int:
    from .extract import extract_from_path

    out = _check_keypoint_output(args.output)
    if args.max_gap < 0:
        from ..errors import InputError

        raise InputError(f"--max-gap must be 0 or more seconds, got {args.max_gap}")
    seq, report = extract_from_path(args.input, backend=_backend(args), dwpose_dir=args.dwpose_dir,
                                    smooth=not args.no_smooth, max_gap_seconds=args.max_gap)  # fmt: skip
    video = _video_path(args, out, len(seq))
    frames = _render(seq, args) if video is not None else None
    _write_all(seq, out, video, frames)
    print(report)
    print(f"wrote {out}" + (f" and {video}" if video else "") + f" ({_frames(len(seq))}, {seq.width}x{seq.height}, "
          f"{seq.fps:g} fps)")  # fmt: skip
    return 0


def run_render(args: argparse.Namespace) -> int:
    from ..data.video_io import IMAGE_SUFFIXES, write_image, write_video
    from ..errors import InputError
    from .keypoints import load_keypoints

    seq = load_keypoints(args.keypoints)
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix != ".mp4" and not (suffix in IMAGE_SUFFIXES and len(seq) == 1):
        raise InputError(f"{out}: output must be an .mp4" + (" or an image" if len(seq) == 1 else ""))
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and not 8 <= value <= 8192:
            raise InputError(f"--{name} must be between 8 and 8192, got {value}")
    if args.fps is not None and args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    frames = _render(seq, args, args.width, args.height)
    if suffix == ".mp4":
        write_video(out, frames, args.fps or seq.fps)
    else:
        write_image(out, frames[0])
    print(f"wrote {out} ({_frames(len(frames))}, {frames.shape[2]}x{frames.shape[1]})")
    return 0


def run_align(args: argparse.Namespace) -> int:
    from ..data.video_io import read_image
    from .driving import driving_keypoints

    out = _check_keypoint_output(args.output)
    ref = read_image(args.ref)
    seq, report = driving_keypoints(args.pose, ref, align=True, ref_pose=args.ref_pose, backend=_backend(args),
                                    dwpose_dir=args.dwpose_dir)  # fmt: skip
    _warn(report.warnings)
    video = _video_path(args, out, len(seq))
    frames = _render(seq, args) if video is not None else None
    _write_all(seq, out, video, frames)
    print(report)
    print(f"wrote {out}" + (f" and {video}" if video else "") + f" ({_frames(len(seq))}, {seq.width}x{seq.height})")
    return 0
