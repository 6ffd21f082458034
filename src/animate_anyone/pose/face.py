"""Facial landmark maps for face reenactment (architecture.md §13), drawn correctly.

Landmarks: the 68 iBUG points of :class:`~.keypoints.PoseSequence` ``face`` plus two pupils, which
we place at the centroid of each eye contour (points 36-41 and 42-47) when no iris landmark is
available. The reference implementation's layout (OpenSeeFace) is 66 face points — the 68 without
the inner mouth corners 60 and 64 — then the pupils (66, 67); :data:`MOORE_66_FROM_68` is that map.

Two maps per frame, on black, 1-px-radius dots, green (0, 255, 0) for face points and
(255, 255, 0) for the pupils:

* **upper** (→ ``pose_guider``: head pose, eyes, blinks): every point, then all rows from
  ``int(H · mask_ratio)`` down blanked (``mask_ratio`` 0.55);
* **mouth** (→ ``pose_guider2``): the mouth points only (iBUG 48-67 minus 60 and 64), translated so
  that the centroid of *all* landmarks lands at the frame centre — x to W/2 and y to H/2 (the
  reference implementation mixes the two axes, which is only right for square frames), for every
  frame including frame 0 (which it draws from normalised coordinates).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .keypoints import PoseSequence

MOORE_66_FROM_68 = tuple(i for i in range(68) if i not in (60, 64))
MOUTH_68 = tuple(i for i in range(48, 68) if i not in (60, 64))
FACE_COLOR = (0, 255, 0)
PUPIL_COLOR = (255, 255, 0)
MASK_RATIO = 0.55
THRESHOLD = 0.3


def face_points(seq: PoseSequence) -> np.ndarray:
    """``[T, 70, 3]``: the 68 face points then the right and left pupils (eye-contour centroids)."""
    face = seq.face
    pupils = np.zeros((len(seq), 2, 3), np.float32)
    for k, (a, b) in enumerate(((36, 42), (42, 48))):
        eye = face[:, a:b]
        ok = eye[..., 2] >= THRESHOLD
        n = ok.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pupils[:, k, :2] = np.where(n[:, None] > 0, (eye[..., :2] * ok[..., None]).sum(1) / n[:, None], 0)
        pupils[:, k, 2] = np.where(n > 0, eye[..., 2].max(1), 0)
    return np.concatenate([face, pupils], axis=1)


def _dots(points: np.ndarray, width: int, height: int, colors) -> np.ndarray:
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for (x, y, score), color in zip(points, colors):
        if score >= THRESHOLD:
            x, y = int(round(float(x))), int(round(float(y)))
            draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=color)
    return np.asarray(img, np.uint8).copy()


def draw_face_maps(points: np.ndarray, width: int, height: int, mask_ratio: float = MASK_RATIO):
    """One frame's (upper, mouth) maps ``[H, W, 3]`` uint8 from ``points`` ``[70, 3]`` (68 + pupils)."""
    colors = [FACE_COLOR] * 68 + [PUPIL_COLOR] * 2
    keep = [i for i in range(70) if i not in (60, 64)]
    upper = _dots(points[keep], width, height, [colors[i] for i in keep])
    upper[int(height * mask_ratio):] = 0
    found = points[keep][points[keep, 2] >= THRESHOLD]
    mouth_pts = points[list(MOUTH_68)].copy()
    if len(found):
        centroid = found[:, :2].mean(0)
        mouth_pts[:, 0] += width / 2 - centroid[0]
        mouth_pts[:, 1] += height / 2 - centroid[1]
    mouth = _dots(mouth_pts, width, height, [FACE_COLOR] * len(MOUTH_68))
    return upper, mouth


def face_maps(seq: PoseSequence, width: int | None = None, height: int | None = None,
              mask_ratio: float = MASK_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """(upper, mouth) map videos ``[T, H, W, 3]`` for every frame of ``seq``."""
    width, height = width or seq.width, height or seq.height
    if (width, height) != (seq.width, seq.height):
        seq = seq.scaled(width, height)
    pts = face_points(seq)
    upper = np.zeros((len(seq), height, width, 3), np.uint8)
    mouth = np.zeros_like(upper)
    for t in range(len(seq)):
        upper[t], mouth[t] = draw_face_maps(pts[t], width, height, mask_ratio)
    return upper, mouth


def retarget_face(driving: PoseSequence, source_face: np.ndarray, width: int, height: int) -> PoseSequence:
    """Move the driving landmarks onto the source face: one similarity (scale + shift), the same for
    every frame, mapping the driving face's median box onto the source face's box (``source_face``
    ``[68, 3]`` in pixels of a ``width`` × ``height`` image). Expressions and head motion relative to
    the first frames are kept; face size and position become the source's."""

    def box(points):
        ok = points[..., 2] >= THRESHOLD
        xy = points[..., :2][ok]
        if len(xy) == 0:
            return None
        return xy.min(0), xy.max(0)

    src = box(np.asarray(source_face, np.float32))
    if src is None:
        raise ValueError("no face landmarks in the source image")
    per_frame = [box(f) for f in driving.face]
    per_frame = [b for b in per_frame if b is not None]
    if not per_frame:
        raise ValueError("no face landmarks in the driving video")
    d_lo = np.median([b[0] for b in per_frame], axis=0)
    d_hi = np.median([b[1] for b in per_frame], axis=0)
    s_lo, s_hi = src
    scale = float(np.mean((s_hi - s_lo) / np.maximum(d_hi - d_lo, 1e-6)))
    shift = (s_lo + s_hi) / 2 - scale * (d_lo + d_hi) / 2
    out = driving.scaled(driving.width, driving.height)  # a copy
    for arr in (out.body, out.hands, out.face):
        arr[..., :2] = arr[..., :2] * scale + shift
    out.width, out.height = int(width), int(height)
    return out
