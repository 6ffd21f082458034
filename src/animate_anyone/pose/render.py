"""Draw keypoints as pose maps in the convention the released checkpoints were trained on.

The convention (DWPose's drawing of OpenPose-style maps, architecture.md §12), on black:

* body: each of the 17 limbs a filled ellipse of half-width 4 px between its two joints, in the
  limb's colour of :data:`BODY_COLORS`; after all limbs the whole layer is multiplied by 0.6 (and
  floored); then every found joint as a filled radius-4 disc in the joint's colour;
* hands: 20 bones as 2-px lines whose colour is the HSV hue ``bone / 20`` (full saturation and
  value), then every point as a radius-4 blue (0, 0, 255) disc;
* face: every point as a radius-3 white disc.

A point is drawn when its score is at least ``threshold`` (0.3, as DWPose). Sizes are in pixels of
a frame whose short side is 512, the size DWPose draws at; at other sizes they scale with the
short side (``size_scale``) so a map drawn directly at 128×128 looks like a 512 map shrunk.
Pure NumPy + Pillow (no OpenCV), so the synthetic lab and training need no pose extras.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from .keypoints import BODY_LIMBS, HAND_EDGES, PoseSequence

# OpenPose's 18 colours (RGB); limb i and joint i both use colour i.
BODY_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
HAND_COLORS = tuple(
    tuple(int(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)) for i in range(len(HAND_EDGES))
)
HAND_POINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
LIMB_DIM = 0.6
THRESHOLD = 0.3


# per-degree tables computed with `math` so the vertices equal those of a scalar loop bit for bit
_COS = np.array([math.cos(math.radians(d)) for d in range(360)])
_SIN = np.array([math.sin(math.radians(d)) for d in range(360)])


def _ellipse_polygon(cx: float, cy: float, half_len: float, half_width: float, angle_deg: float):
    """Vertices of an ellipse with axes ``half_len`` (along ``angle``) and ``half_width``, one per degree."""
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    x, y = half_len * _COS, half_width * _SIN
    # sums in the centre's precision (float32 for keypoint arrays), left to right, as scalar code does
    dtype = np.result_type(cx, cy, 1.0)
    px = (np.asarray(cx, dtype) + (x * ca).astype(dtype)) - (y * sa).astype(dtype)
    py = (np.asarray(cy, dtype) + (x * sa).astype(dtype)) + (y * ca).astype(dtype)
    px, py = np.round(px).astype(int), np.round(py).astype(int)
    return list(zip(px.tolist(), py.tolist()))


def _disc(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, color) -> None:
    x, y = int(x), int(y)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=color)


def draw_pose(
    body: np.ndarray,
    hands: np.ndarray | None,
    face: np.ndarray | None,
    width: int,
    height: int,
    *,
    draw_body: bool = True,
    draw_hands: bool = True,
    draw_face: bool = True,
    threshold: float = THRESHOLD,
    size_scale: float | None = None,
) -> np.ndarray:
    """One pose map ``[height, width, 3]`` uint8 RGB from one frame's keypoints (pixel coordinates
    of a ``width`` × ``height`` frame; see :mod:`.keypoints`)."""
    s = min(width, height) / 512.0 if size_scale is None else size_scale
    stick, radius = max(4 * s, 1.0), max(int(round(4 * s)), 1)
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    body = np.asarray(body, np.float32)
    if draw_body:
        ok = body[:, 2] >= threshold
        for i, (a, b) in enumerate(BODY_LIMBS):
            if not (ok[a] and ok[b]):
                continue
            (xa, ya), (xb, yb) = body[a, :2], body[b, :2]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            poly = _ellipse_polygon((xa + xb) / 2, (ya + yb) / 2, length / 2, stick, angle)
            draw.polygon(poly, fill=BODY_COLORS[i])
        arr = (np.asarray(canvas, np.float32) * LIMB_DIM).astype(np.uint8)
        canvas = Image.fromarray(arr)
        draw = ImageDraw.Draw(canvas)
        for i in range(len(body)):
            if ok[i]:
                _disc(draw, body[i, 0], body[i, 1], radius, BODY_COLORS[i])
    if draw_hands and hands is not None:
        line = max(int(round(2 * s)), 1)
        for hand in np.asarray(hands, np.float32):
            ok = hand[:, 2] >= threshold
            for i, (a, b) in enumerate(HAND_EDGES):
                if ok[a] and ok[b]:
                    draw.line([tuple(hand[a, :2]), tuple(hand[b, :2])], fill=HAND_COLORS[i], width=line)
            for p in hand[ok]:
                _disc(draw, p[0], p[1], radius, HAND_POINT_COLOR)
    if draw_face and face is not None:
        r = max(int(round(3 * s)), 1)
        for p in np.asarray(face, np.float32):
            if p[2] >= threshold:
                _disc(draw, p[0], p[1], r, FACE_COLOR)
    return np.asarray(canvas, np.uint8).copy()


def render_sequence(
    seq: PoseSequence,
    width: int | None = None,
    height: int | None = None,
    **kwargs,
) -> np.ndarray:
    """Pose maps ``[T, height, width, 3]`` uint8 for every frame (default: the keypoints' frame size;
    another size rescales the coordinates)."""
    width, height = width or seq.width, height or seq.height
    if (width, height) != (seq.width, seq.height):
        seq = seq.scaled(width, height)
    out = np.zeros((len(seq), height, width, 3), np.uint8)
    for t in range(len(seq)):
        out[t] = draw_pose(seq.body[t], seq.hands[t], seq.face[t], width, height, **kwargs)
    return out
