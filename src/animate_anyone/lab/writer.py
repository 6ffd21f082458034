"""Write lab clips in the on-disk format of prepared data (see ``docs/data.md``).

::

    DIR/meta.json                 list of clip entries, paths relative to DIR
    DIR/lab_config.json           the arguments that produced DIR
    DIR/videos/<clip_id>.mp4      the character video   (.npz with --lossless)
    DIR/poses/<clip_id>.mp4       rendered pose maps    (.npz with --lossless)
    DIR/keypoints/<clip_id>.json  exact keypoints (PoseSequence JSON)
    DIR/masks/<clip_id>.npz       character coverage, only with masks=True

Every file is written under a temporary name and renamed when complete; ``meta.json`` is written
last, so a folder with a ``meta.json`` is complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..data.video_io import atomic_path, write_npz_video, write_video
from ..pose.keypoints import save_keypoints
from .generate import generate_clip
from .split import ClipPlan

FORMAT_VERSION = 1


def write_clip(out_dir: Path, plan: ClipPlan, num_frames: int, width: int, height: int, fps: float,
               lossless: bool = False, masks: bool = False, framing: str = "body", pose_face: bool = True,
               pose_hands: bool = True) -> dict:
    """Generate one clip, write its files, return its ``meta.json`` entry. ``framing="face"``:
    talking-head portraits, with the face-reenactment landmark maps (``face_upper/``, ``face_mouth/``).
    ``pose_face`` / ``pose_hands``: draw those keypoints in the pose video (the keypoints file always
    has them)."""
    clip = generate_clip(plan.character_id, plan.motion_id, num_frames, width, height, fps, view_seed=plan.view_seed,
                         framing=framing)
    ext = "npz" if lossless else "mp4"
    video = Path("videos") / f"{plan.clip_id}.{ext}"
    pose = Path("poses") / f"{plan.clip_id}.{ext}"
    kps = Path("keypoints") / f"{plan.clip_id}.json"
    write = write_npz_video if lossless else write_video
    write(out_dir / video, clip.frames, fps)
    write(out_dir / pose, clip.pose_maps(face=pose_face, hands=pose_hands), fps)
    clip.poses.meta.update(split=plan.split, clip_id=plan.clip_id)
    save_keypoints(clip.poses, out_dir / kps)
    entry = {
        "video_path": video.as_posix(),
        "kps_path": kps.as_posix(),
        "pose_path": pose.as_posix(),
        "character_id": plan.character_id,
        "category": clip.character.category,
        "motion": clip.motion.motion_type,
        "split": plan.split,
        "clip_id": plan.clip_id,
        "motion_id": plan.motion_id,
        "num_frames": num_frames,
        "width": width,
        "height": height,
        "fps": fps,
        "background": clip.meta["background"],
    }
    if framing == "face":
        from ..pose.face import face_maps

        upper, mouth = face_maps(clip.poses)
        for key, folder, maps in (("face_upper_path", "face_upper", upper), ("face_mouth_path", "face_mouth", mouth)):
            path = Path(folder) / f"{plan.clip_id}.{ext}"
            write(out_dir / path, maps, fps)
            entry[key] = path.as_posix()
        entry["framing"] = "face"
    if masks:
        mask = Path("masks") / f"{plan.clip_id}.npz"
        with atomic_path(out_dir / mask) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, masks=clip.masks)
        entry["mask_path"] = mask.as_posix()
    return entry


def write_dataset(out_dir: str | Path, plans: Iterable[ClipPlan], num_frames: int = 24, width: int = 128,
                  height: int = 128, fps: float = 24.0, lossless: bool = False, masks: bool = False,
                  framing: str = "body", config: dict | None = None, progress: Callable[[int, dict], None] | None = None,
                  pose_face: bool = True, pose_hands: bool = True) -> Path:
    """Write every planned clip and then ``meta.json``; returns the meta file's path (``pose_face`` /
    ``pose_hands``: as :func:`write_clip`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    start = time.perf_counter()
    for n, plan in enumerate(plans):
        entries.append(write_clip(out_dir, plan, num_frames, width, height, fps, lossless, masks, framing,
                                  pose_face, pose_hands))
        if progress is not None:
            progress(n + 1, entries[-1])
    cfg = {"format_version": FORMAT_VERSION, "num_clips": len(entries), "seconds": round(time.perf_counter() - start, 2)}
    cfg.update(config or {})
    with atomic_path(out_dir / "lab_config.json") as tmp:
        tmp.write_text(json.dumps(cfg, indent=1))
    meta = out_dir / "meta.json"
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(entries, indent=1))
    return meta
