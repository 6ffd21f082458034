"""Driving video -> pose maps for the pipeline: extract, clean, align to the reference, render."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .align import AlignReport, align_pose
from .keypoints import PoseSequence, load_keypoints
from .render import render_sequence
from .smooth import CleaningReport


@dataclass
class DrivingReport:
    """What :func:`prepare_driving_pose` did (printable)."""

    cleaning: CleaningReport
    alignment: AlignReport | None = None
    notes: list[str] = field(default_factory=list)
    keypoints: PoseSequence | None = None  # the driving keypoints the maps were drawn from
    reference: PoseSequence | None = None  # the reference image's keypoints (None: not read, or nobody found)

    @property
    def warnings(self) -> list[str]:
        return list(self.alignment.warnings) if self.alignment else []

    def __str__(self) -> str:
        lines = [str(self.cleaning)]
        lines.append(str(self.alignment) if self.alignment else "align: off (driving skeleton used as extracted)")
        return "\n".join(lines + self.notes)


def reference_pose(
    image: Image.Image | np.ndarray,
    ref_pose: str | Path | PoseSequence | None = None,
    backend: str = "mediapipe",
    dwpose_dir: str | Path | None = None,
) -> PoseSequence | None:
    """The reference character's pose: from ``ref_pose`` (a keypoints file or sequence) if given,
    else extracted from ``image``; None when nobody is found in the image."""
    from .extract import NoPersonError, extract_poses

    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if ref_pose is not None:
        seq = ref_pose if isinstance(ref_pose, PoseSequence) else load_keypoints(ref_pose)
        return seq.scaled(arr.shape[1], arr.shape[0]) if (seq.width, seq.height) != arr.shape[1::-1] else seq
    try:
        seq, _ = extract_poses(arr[None], 1.0, backend=backend, dwpose_dir=dwpose_dir, static=True,
                               smooth=False, source="reference image")  # fmt: skip
    except NoPersonError:
        return None
    return seq


def driving_keypoints(
    driving: str | Path | PoseSequence,
    ref_image: Image.Image | np.ndarray | None,
    *,
    align: bool = True,
    ref_pose: str | Path | PoseSequence | None = None,
    backend: str = "mediapipe",
    dwpose_dir: str | Path | None = None,
    smooth: bool = True,
    max_frames: int | None = None,
) -> tuple[PoseSequence, DrivingReport]:
    """Keypoints of a driving video (or a keypoints file), aligned to the reference unless ``align``
    is False; only the first ``max_frames`` frames if given."""
    from .extract import extract_from_path

    if isinstance(driving, PoseSequence) or Path(driving).suffix.lower() in (".json", ".npz"):
        seq = driving if isinstance(driving, PoseSequence) else load_keypoints(driving)
        if max_frames is not None:
            seq = seq.frames(slice(0, max_frames))
        cleaning = CleaningReport(len(seq), missed=np.flatnonzero(~seq.detected).tolist())
    else:
        seq, cleaning = extract_from_path(driving, max_frames=max_frames, backend=backend, dwpose_dir=dwpose_dir,
                                          smooth=smooth)  # fmt: skip
    report = DrivingReport(cleaning)
    if align:
        if ref_image is None:
            raise InputError("alignment needs the reference image")
        ref = reference_pose(ref_image, ref_pose, backend=backend, dwpose_dir=dwpose_dir)
        arr = np.asarray(ref_image.convert("RGB") if isinstance(ref_image, Image.Image) else ref_image)
        seq, report.alignment = align_pose(seq, ref, ref_image=arr, ref_size=(arr.shape[1], arr.shape[0]))
        report.reference = ref
    report.keypoints = seq
    return seq, report


def prepare_driving_pose(
    driving: str | Path,
    ref_image: Image.Image | np.ndarray,
    align: bool = True,
    *,
    ref_pose: str | Path | None = None,
    backend: str = "mediapipe",
    dwpose_dir: str | Path | None = None,
    draw_face: bool = True,
    draw_hands: bool = True,
    max_frames: int | None = None,
) -> tuple[np.ndarray, float, DrivingReport]:
    """Pose maps ``[T, height, width, 3]`` uint8 for the pipeline from a driving video (or keypoints
    file), its fps, and a report. Aligned maps are drawn at the reference image's size, unaligned ones
    at the video's. ``max_frames``: use only the first frames of the video."""
    seq, report = driving_keypoints(driving, ref_image, align=align, ref_pose=ref_pose, backend=backend,
                                    dwpose_dir=dwpose_dir, max_frames=max_frames)  # fmt: skip
    frames = render_sequence(seq, draw_face=draw_face, draw_hands=draw_hands)
    return frames, seq.fps, report
