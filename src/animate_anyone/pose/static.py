"""Where a frame shows exactly what the reference shows: the parts of the picture that no keypoint
moved away from or into.

A driving pose tells not only where the figure goes but also where nothing happens: a talking figure
keeps its body, a waving one its legs, and the background away from the figure stays as the
reference shows it. The denoiser redraws all of that from noise, and a small model redraws it a
little differently in every frame (the "background flicker" users of every Animate Anyone report).
:func:`static_mask` marks, per driving frame, the pixels that lie away from every keypoint that
moved between the reference's pose and the frame's, and away from every bone with such an end, in
both poses (where the part was and where it went). The pipeline's ``reference_keep`` then carries
the reference latent through the denoising there (:class:`~animate_anyone.pipelines.pipeline_animate.AnimationPipeline`).

It is only as good as the keypoints: a part that moves without a keypoint (long hair swinging, a
skirt) is not seen, so the margin around every moved point is generous, and the reading is
meant for exact keypoints (the lab) or a good extractor with a still camera.
"""

from __future__ import annotations

import numpy as np

from .facing import HEAD, MIN_SCORE, NECK, NOSE, _torso
from .keypoints import BODY_LIMBS, HAND_EDGES


def _moved(ref: np.ndarray, drv: np.ndarray, tol: float) -> np.ndarray:
    """Per point of ``(K, 3)`` poses: moved by more than ``tol``, or seen in one pose only."""
    seen_r, seen_d = ref[:, 2] >= MIN_SCORE, drv[:, 2] >= MIN_SCORE
    dist = np.linalg.norm(drv[:, :2] - ref[:, :2], axis=1)
    return (seen_r != seen_d) | (seen_r & seen_d & (dist > tol))


def _paint(out: np.ndarray, xx: np.ndarray, yy: np.ndarray, a, b, radius: float) -> None:
    """Mark ``out`` within ``radius`` of the segment ``a``-``b`` (a point when they coincide)."""
    ax, ay = float(a[0]), float(a[1])
    dx, dy = float(b[0]) - ax, float(b[1]) - ay
    length2 = dx * dx + dy * dy
    if length2 > 0:
        s = np.clip(((xx - ax) * dx + (yy - ay) * dy) / length2, 0.0, 1.0)
    else:
        s = 0.0
    out |= (xx - ax - s * dx) ** 2 + (yy - ay - s * dy) ** 2 <= radius * radius


def _paint_part(out, xx, yy, ref, drv, edges, moved, radius) -> None:
    """Paint, in both poses, every moved point and every edge with a moved end."""
    for pose in (ref, drv):
        seen = pose[:, 2] >= MIN_SCORE
        for k in np.flatnonzero(moved & seen):
            _paint(out, xx, yy, pose[k], pose[k], radius)
        for a, b in edges:
            if (moved[a] or moved[b]) and seen[a] and seen[b]:
                _paint(out, xx, yy, pose[a], pose[b], radius)


def _head_axis(pose: np.ndarray, torso: float):
    """The neck and a point above the head's top (the nose's side of the neck, 2.5 times as far;
    the eyes' and ears' middle where the nose is hidden; straight up by half the torso without
    either), or None without a neck: what a robot's antenna or a tall hairdo sticks out along."""
    if pose[NECK, 2] < MIN_SCORE:
        return None
    neck = pose[NECK, :2]
    seen = [k for k in HEAD if pose[k, 2] >= MIN_SCORE]
    if NOSE in seen:
        centre = pose[NOSE, :2]
    elif seen:
        centre = pose[seen, :2].mean(0)
    else:
        return neck, neck - np.array([0.0, 0.5 * torso])
    return neck, neck + 2.5 * (centre - neck)


def static_mask(reference: dict, driving: dict, size: tuple[int, int], *, tolerance: float = 0.004,
                margin: float = 0.35) -> np.ndarray:
    """``(T, H, W)`` bool: True where driving frame ``t`` shows the picture as the reference does.

    Args:
        reference: the reference's keypoints, ``{"body": (18, 3)}`` in pixels of the output size
            with a score column, optionally ``"hands": (2, 21, 3)`` and ``"face": (K, 3)``.
        driving: the frames' keypoints, the same names with a leading ``T`` axis.
        size: ``(H, W)`` of the output frames.
        tolerance: a point moved when it moved by more than this fraction of ``max(H, W)``.
        margin: radius painted around a moved body point or bone, as a fraction of the reference's
            torso (neck to hips); hands and face get half of it. Where a head point moved, the head
            is painted along the line from the neck to past its top (:func:`_head_axis`), at least
            1.6 times the neck-to-nose distance wide (hair, a robot's antenna).

    A frame whose pose cannot be compared (no torso in the reference) is marked static nowhere.
    """
    h, w = int(size[0]), int(size[1])
    ref_body = np.asarray(reference["body"], dtype=np.float64)
    drv_body = np.asarray(driving["body"], dtype=np.float64)
    frames = len(drv_body)
    out = np.zeros((frames, h, w), dtype=bool)
    torso = _torso(ref_body)
    if not np.isfinite(torso) or torso <= 0:
        return out
    tol = tolerance * max(h, w)
    radius = margin * torso
    head_radius = radius
    if ref_body[NOSE, 2] >= MIN_SCORE and ref_body[NECK, 2] >= MIN_SCORE:
        head_radius = max(radius, 1.6 * float(np.linalg.norm(ref_body[NOSE, :2] - ref_body[NECK, :2])))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    head = np.zeros(18, dtype=bool)
    head[list(HEAD)] = True
    for t in range(frames):
        moving = np.zeros((h, w), dtype=bool)
        moved = _moved(ref_body, drv_body[t], tol)
        _paint_part(moving, xx, yy, ref_body, drv_body[t], BODY_LIMBS, moved & ~head, radius)
        _paint_part(moving, xx, yy, ref_body, drv_body[t], (), moved & head, head_radius)
        if (moved & head).any():
            for pose in (ref_body, drv_body[t]):
                axis = _head_axis(pose, torso)
                if axis is not None:
                    _paint(moving, xx, yy, axis[0], axis[1], head_radius)
        for name, edges in (("hands", HAND_EDGES), ("face", ())):
            if name not in reference or name not in driving:
                continue
            ref_part = np.asarray(reference[name], dtype=np.float64)
            ref_part = ref_part.reshape(-1, 21, 3) if name == "hands" else ref_part.reshape(1, -1, 3)
            drv_part = np.asarray(driving[name], dtype=np.float64)[t].reshape(ref_part.shape)
            for r, d in zip(ref_part, drv_part):
                _paint_part(moving, xx, yy, r, d, edges, _moved(r, d, tol), radius / 2)
        out[t] = ~moving
    return out
