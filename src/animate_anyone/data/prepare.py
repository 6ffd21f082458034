"""Prepare real videos for training: pose extraction for every video of a folder, then a meta file.

Layout written next to the meta file (``OUT`` = the meta file's folder)::

    OUT/keypoints/<relative path>.json   exact keypoints (PoseSequence, smoothed)
    OUT/poses/<relative path>.mp4        the rendered pose video (same frame count and fps)
    OUT/face_upper/<relative path>.mp4   with ``face_maps``: the upper-face landmark map (face reenactment)
    OUT/face_mouth/<relative path>.mp4   with ``face_maps``: the re-centred mouth map
    OUT/<meta name>.json                 [{"video_path", "kps_path", "pose_path", "split"?,
                                           "face_upper_path"?, "face_mouth_path"?}, ...]

With ``face_maps`` (``data prepare --face``, for talking-head videos) a video is usable only when a
face is found in at least ``min_face_rate`` of its frames; the frames in between are interpolated.

Resumable: a video whose keypoints and pose video both exist is skipped; each file is written
atomically, and the meta file last, so an interrupted run loses at most the video in progress.
Videos where nobody is found, or that cannot be decoded, are reported and left out.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from .video_io import VIDEO_SUFFIXES, atomic_path, read_video, write_video


def find_videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def prepare_videos(video_dir: str | Path, meta_path: str | Path, *, face: bool = True, hands: bool = True,
                   split: str | None = None, face_maps: bool = False, min_face_rate: float = 0.5,
                   log: Callable[[str], None] | None = None) -> dict:
    """Extract poses for every video under ``video_dir``; write the meta file. Returns a summary
    ``{"done": n, "skipped": n, "failed": {video: reason}}``."""
    from ..pose.extract import extract_poses
    from ..pose.face import face_maps as draw_face_maps
    from ..pose.keypoints import save_keypoints
    from ..pose.render import render_sequence

    log = log or (lambda m: print(m, file=sys.stderr))
    root, meta_path = Path(video_dir), Path(meta_path)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of videos")
    videos = find_videos(root)
    if not videos:
        raise InputError(f"{root}: no videos found ({', '.join(sorted(VIDEO_SUFFIXES))})")
    out = meta_path.parent
    entries, failed, done, skipped = [], {}, 0, 0
    for n, video in enumerate(videos, 1):
        rel = video.relative_to(root)
        kps = out / "keypoints" / rel.with_suffix(".json")
        pose = out / "poses" / rel.with_suffix(".mp4")
        upper = out / "face_upper" / rel.with_suffix(".mp4")
        mouth = out / "face_mouth" / rel.with_suffix(".mp4")
        needed = [kps, pose] + ([upper, mouth] if face_maps else [])
        if all(p.is_file() for p in needed):
            skipped += 1
        else:
            try:
                clip = read_video(video)
                seq, report = extract_poses(clip.frames, clip.fps, source=str(video))
                if face_maps and report.face_detection_rate < min_face_rate:
                    raise InputError(f"face found in only {report.face_detection_rate:.0%} of the frames")
                maps = render_sequence(seq, draw_face=face, draw_hands=hands)
                write_video(pose, maps, fps=clip.fps)
                if face_maps:
                    up, mo = draw_face_maps(seq)
                    write_video(upper, up, fps=clip.fps)
                    write_video(mouth, mo, fps=clip.fps)
                save_keypoints(seq, kps)  # last: its presence marks the video as done
                done += 1
                what = f"face in {len(seq) - len(report.face_missed)}" if face_maps else f"person in {int(seq.detected.sum())}"
                log(f"[{n}/{len(videos)}] {rel}: {len(seq)} frames, {what}")
            except (InputError, OSError, ValueError) as exc:
                failed[str(rel)] = str(exc)
                log(f"[{n}/{len(videos)}] {rel}: skipped ({exc})")
                continue
        entry = {"video_path": os.path.relpath(video.resolve(), out.resolve()),
                 "kps_path": os.path.relpath(kps, out), "pose_path": os.path.relpath(pose, out)}  # fmt: skip
        if face_maps:
            entry["face_upper_path"] = os.path.relpath(upper, out)
            entry["face_mouth_path"] = os.path.relpath(mouth, out)
        if split:
            entry["split"] = split
        entries.append(entry)
    if not entries:
        raise InputError(f"{root}: no usable video (every one failed; see the messages above)")
    with atomic_path(meta_path) as tmp:
        Path(tmp).write_text(json.dumps(entries, indent=1))
    return {"done": done, "skipped": skipped, "failed": failed, "meta": str(meta_path), "entries": len(entries)}
