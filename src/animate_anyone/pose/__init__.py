"""Keypoints, pose-map rendering, smoothing, alignment to a reference, and (with the ``pose`` extra)
extraction from video. Importing this package needs neither mediapipe nor onnxruntime."""

from .align import AlignReport, align_pose
from .driving import DrivingReport, driving_keypoints, prepare_driving_pose
from .keypoints import PoseSequence, load_keypoints, save_keypoints
from .render import draw_pose, render_sequence
from .smooth import CleaningReport, clean_sequence, jitter

__all__ = [
    "AlignReport",
    "CleaningReport",
    "DrivingReport",
    "PoseSequence",
    "align_pose",
    "clean_sequence",
    "draw_pose",
    "driving_keypoints",
    "jitter",
    "load_keypoints",
    "prepare_driving_pose",
    "render_sequence",
    "save_keypoints",
]
