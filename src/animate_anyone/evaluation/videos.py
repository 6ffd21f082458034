"""Pairing generated and ground-truth videos, and the common-size rule.

The rule (also written into every report):

1. **Length**: both videos are cut to the shorter one's frame count (first frames kept). Frame
   rates are not resampled; a difference is reported.
2. **Size**: the generated video is resized to the ground truth's width × height (or both to
   ``size`` when given), each axis independently, with PIL's Lanczos filter (antialiased, so it
   behaves like area averaging when shrinking). Generation pipelines stretch the pose maps to the
   output size, so stretching back is the inverse; an aspect-ratio difference above 1 % is noted.
3. Driving keypoints are scaled to the same size and cut to the same length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..errors import InputError

COMMON_SIZE_RULE = (
    "both videos cut to the shorter frame count (first frames kept, no frame-rate resampling); the "
    "generated video resized to the ground truth's width x height (or both to --size) per axis with "
    "PIL Lanczos; driving keypoints scaled and cut the same way"
)


@dataclass
class Alignment:
    """What the common-size rule did to one pair (goes into metrics.json)."""

    pred_size: tuple[int, int]
    gt_size: tuple[int, int]
    eval_size: tuple[int, int]
    pred_frames: int
    gt_frames: int
    eval_frames: int
    pred_fps: float
    gt_fps: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(frames, height, width, 3)`` uint8 resized with PIL Lanczos (a no-op at the same size)."""
    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.LANCZOS)) for f in frames])


def bring_to_common(pred: np.ndarray, gt: np.ndarray, pred_fps: float = 0.0, gt_fps: float = 0.0,
                    size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, Alignment]:  # fmt: skip
    """Apply the common-size rule to uint8 videos ``(frames, height, width, 3)``; ``size`` is
    ``(width, height)``. Returns the two aligned videos and what was done."""
    n = min(len(pred), len(gt))
    if n == 0:
        raise InputError("a video has no frames")
    ph, pw, gh, gw = pred.shape[1], pred.shape[2], gt.shape[1], gt.shape[2]
    width, height = size if size is not None else (gw, gh)
    info = Alignment((pw, ph), (gw, gh), (width, height), len(pred), len(gt), n, float(pred_fps), float(gt_fps))
    if len(pred) != len(gt):
        info.notes.append(f"lengths differ ({len(pred)} generated vs {len(gt)} ground-truth frames): first {n} used")
    if pred_fps and gt_fps and abs(pred_fps - gt_fps) > 1e-3:
        info.notes.append(f"frame rates differ ({pred_fps:g} vs {gt_fps:g} fps): frames paired by index")
    if (pw, ph) != (gw, gh):
        info.notes.append(f"sizes differ ({pw}x{ph} generated vs {gw}x{gh} ground truth)")
        if abs((pw / ph) / (gw / gh) - 1) > 0.01:
            info.notes.append("aspect ratios differ by more than 1 %: the generated video is stretched")
    if size is not None and (width, height) != (gw, gh):
        info.notes.append(f"both resized to {width}x{height} for evaluation")
    return resize_frames(pred[:n], width, height), resize_frames(gt[:n], width, height), info


def list_media(folder: Path, suffixes: set[str], frame_folders: bool = False) -> dict[str, Path]:
    """``{stem: path}`` of the files with ``suffixes`` directly in ``folder``; with ``frame_folders``,
    sub-folders holding images count too (a video stored as frames)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        is_frames_dir = frame_folders and p.is_dir() and any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir())
        if (p.is_file() and p.suffix.lower() in suffixes) or is_frames_dir:
            if p.stem in out:
                raise InputError(f"{folder}: two entries named '{p.stem}' ({out[p.stem].name}, {p.name})")
            out[p.stem] = p
    return out


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def pair_videos(pred: str | Path, gt: str | Path) -> list[tuple[str, Path, Path]]:
    """``[(name, pred_path, gt_path)]``: two video files (or image folders) give one pair; two
    folders of videos are paired by file name without suffix, and every generated video needs a
    ground truth (extra ground truths are ignored)."""
    pred, gt = Path(pred), Path(gt)
    for p, what in ((pred, "--pred"), (gt, "--gt")):
        if not p.exists():
            raise InputError(f"{what} {p}: not found")
    pred_set = pred.is_dir() and not any(q.suffix.lower() in IMAGE_SUFFIXES for q in pred.iterdir())
    gt_set = gt.is_dir() and not any(q.suffix.lower() in IMAGE_SUFFIXES for q in gt.iterdir())
    if not pred_set and not gt_set:
        for p in (pred, gt):
            if p.is_file() and not _is_video_file(p):
                raise InputError(f"{p}: not a video file (expected one of {', '.join(sorted(VIDEO_SUFFIXES))})")
        return [(pred.stem, pred, gt)]
    if pred_set != gt_set:
        raise InputError(f"--pred {pred} and --gt {gt}: give two videos or two folders of videos")
    preds, gts = list_media(pred, VIDEO_SUFFIXES, True), list_media(gt, VIDEO_SUFFIXES, True)
    if not preds:
        raise InputError(f"{pred}: folder holds no videos")
    unmatched = sorted(set(preds) - set(gts))
    if unmatched:
        raise InputError(f"{gt}: no ground truth for {len(unmatched)} generated video(s), e.g. '{unmatched[0]}'")
    return [(name, preds[name], gts[name]) for name in sorted(preds)]


def find_companion(path: str | Path | None, name: str, suffixes: set[str], multi: bool) -> Path | None:
    """The driving/reference file for video ``name``: ``path`` itself for a single pair, else the
    file named ``name`` inside the folder ``path`` (None when the folder has none)."""
    if path is None:
        return None
    p = Path(path)
    if not multi or p.is_file():
        return p
    matches = list_media(p, suffixes)
    return matches.get(name)
