"""Keypoints, pose-map rendering and (with the ``pose`` extra) extraction from video."""

from .keypoints import PoseSequence, load_keypoints, save_keypoints
from .render import draw_pose, render_sequence

__all__ = ["PoseSequence", "draw_pose", "load_keypoints", "render_sequence", "save_keypoints"]
