"""A tiny anti-aliased 2-D rasteriser on signed distances (NumPy only).

Every shape is a signed-distance field in pixels (negative inside), evaluated only inside the
shape's bounding box; coverage is ``clip(0.5 - d, 0, 1)``, which anti-aliases edges at any size.
Shapes are painted in order onto a :class:`Canvas` (painter's algorithm). Shapes also return
local coordinates (``t`` along, ``s`` across) so clothing patterns stick to the body part.

Pixel convention: pixel ``(row j, column i)`` covers ``[i, i+1) × [j, j+1)``; its centre is
``(i + 0.5, j + 0.5)``, the convention of the pose renderer (which draws a point at ``int(x)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Field:
    """A shape evaluated on the pixels of a box ``rows y0:y1, columns x0:x1``.

    ``d``: signed distance in pixels (negative inside); ``t``: position along the shape's axis
    (0 at the start, 1 at the end); ``s``: position across in [-1, 1] (0 on the axis).
    """

    y0: int
    y1: int
    x0: int
    x1: int
    d: np.ndarray
    t: np.ndarray | None = None
    s: np.ndarray | None = None

    def coverage(self) -> np.ndarray:
        return np.clip(0.5 - self.d, 0.0, 1.0)


class Canvas:
    """An RGB float image in [0, 1] plus the coverage of everything painted (the character mask)."""

    def __init__(self, background: np.ndarray):
        self.image = np.array(background, dtype=np.float32, copy=True)
        self.height, self.width = self.image.shape[:2]
        self.alpha = np.zeros((self.height, self.width), np.float32)
        self._xs = np.arange(self.width, dtype=np.float32) + 0.5
        self._ys = np.arange(self.height, dtype=np.float32) + 0.5

    def grid(self, lo: np.ndarray, hi: np.ndarray, pad: float = 1.5):
        """Pixel-centre grids of the box around ``lo``..``hi`` (clipped to the frame) or None."""
        x0, y0 = max(int(np.floor(lo[0] - pad)), 0), max(int(np.floor(lo[1] - pad)), 0)
        x1 = min(int(np.ceil(hi[0] + pad)) + 1, self.width)
        y1 = min(int(np.ceil(hi[1] + pad)) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return (y0, y1, x0, x1), self._xs[None, x0:x1], self._ys[y0:y1, None]

    def paint(self, field: Field | None, color, outline=None, outline_width: float = 0.0,
              mask: bool = True, opacity: float = 1.0) -> None:
        """Composite ``color`` (RGB triple or per-pixel ``[h, w, 3]``) over the field's inside,
        with an optional outline band of ``outline_width`` pixels along the edge."""
        if field is None:
            return
        cov = np.minimum(np.maximum(0.5 - field.d, 0.0), 1.0)
        if opacity != 1.0:
            cov *= opacity
        if not cov.any():
            return
        col = np.asarray(color, np.float32)
        if outline is not None and outline_width > 0:
            k = np.minimum(np.maximum(field.d + (outline_width + 0.5), 0.0), 1.0)[..., None]
            col = col + (np.asarray(outline, np.float32) - col) * k
        img = self.image[field.y0:field.y1, field.x0:field.x1]
        img += (col - img) * cov[..., None]  # in place: over-compositing
        if mask:
            alpha = self.alpha[field.y0:field.y1, field.x0:field.x1]
            alpha += cov * (1 - alpha)

    def to_uint8(self) -> np.ndarray:
        return (np.clip(self.image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def capsule(canvas: Canvas, a, b, ra: float, rb: float | None = None) -> Field | None:
    """A segment ``a``→``b`` thickened to radius ``ra`` at ``a`` and ``rb`` at ``b`` (round ends)."""
    rb = ra if rb is None else rb
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    r = max(ra, rb)
    g = canvas.grid(np.minimum(a, b) - r, np.maximum(a, b) + r)
    if g is None:
        return None
    (y0, y1, x0, x1), xs, ys = g
    ab = b - a
    ll = float(ab @ ab)
    px, py = xs - a[0], ys - a[1]
    t = (px * ab[0] + py * ab[1]) / ll if ll > 1e-9 else np.zeros_like(px + py)
    tc = np.clip(t, 0.0, 1.0)
    dx, dy = px - tc * ab[0], py - tc * ab[1]
    rad = ra + tc * (rb - ra)
    dist = np.sqrt(dx * dx + dy * dy)
    across = (px * ab[1] - py * ab[0]) / np.sqrt(ll) if ll > 1e-9 else dx
    return Field(y0, y1, x0, x1, dist - rad, t, np.clip(across / np.maximum(rad, 1e-3), -1, 1))


def capsules(canvas: Canvas, a, b, ra, rb) -> Field | None:
    """The union of many capsules ``a[k]``→``b[k]`` (``[n, 2]``, radii ``[n]``), in one pass."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ra = np.broadcast_to(np.asarray(ra, np.float32), (len(a),))
    rb = np.broadcast_to(np.asarray(rb, np.float32), (len(a),))
    r = np.maximum(ra, rb)[:, None]
    g = canvas.grid((np.minimum(a, b) - r).min(0), (np.maximum(a, b) + r).max(0))
    if g is None:
        return None
    (y0, y1, x0, x1), xs, ys = g
    ab = b - a  # (n, 2)
    ll = np.maximum((ab * ab).sum(1), 1e-9)[:, None, None]
    px = xs[None] - a[:, 0, None, None]  # (n, 1, w)
    py = ys[None] - a[:, 1, None, None]  # (n, h, 1)
    t = np.minimum(np.maximum((px * ab[:, 0, None, None] + py * ab[:, 1, None, None]) / ll, 0.0), 1.0)
    dx, dy = px - t * ab[:, 0, None, None], py - t * ab[:, 1, None, None]
    d = np.sqrt(dx * dx + dy * dy) - (ra[:, None, None] + t * (rb - ra)[:, None, None])
    return Field(y0, y1, x0, x1, d.min(0))


def box_segment(canvas: Canvas, a, b, half_width: float, corner: float = 0.0, extend: float = 0.0) -> Field | None:
    """A rectangle along ``a``→``b`` (half width ``half_width``, ends pushed out by ``extend``),
    corners rounded by ``corner`` pixels."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b - a
    length = float(np.hypot(*ab))
    u = ab / length if length > 1e-6 else np.array([0.0, 1.0], np.float32)
    n = np.array([-u[1], u[0]], np.float32)
    half_len = length / 2 + extend
    c = (a + b) / 2
    r = half_len + half_width
    g = canvas.grid(c - r, c + r)
    if g is None:
        return None
    (y0, y1, x0, x1), xs, ys = g
    px, py = xs - c[0], ys - c[1]
    lu = px * u[0] + py * u[1]
    ln = px * n[0] + py * n[1]
    qx = np.abs(lu) - (half_len - corner)
    qy = np.abs(ln) - (half_width - corner)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    d = outside + np.minimum(np.maximum(qx, qy), 0) - corner
    t = (lu + length / 2) / max(length, 1e-6)
    return Field(y0, y1, x0, x1, d, t, np.clip(ln / max(half_width, 1e-3), -1, 1))


def ellipse(canvas: Canvas, center, rx: float, ry: float, angle: float = 0.0) -> Field | None:
    """An ellipse (approximate distance, exact on the axes); ``t``, ``s`` = normalised y, x."""
    c = np.asarray(center, np.float32)
    r = max(rx, ry)
    g = canvas.grid(c - r, c + r)
    if g is None:
        return None
    (y0, y1, x0, x1), xs, ys = g
    px, py = xs - c[0], ys - c[1]
    ca, sa = np.cos(angle), np.sin(angle)
    lx, ly = (px * ca + py * sa) / max(rx, 1e-3), (-px * sa + py * ca) / max(ry, 1e-3)
    q = np.sqrt(lx * lx + ly * ly)
    d = (q - 1.0) * min(rx, ry)
    return Field(y0, y1, x0, x1, d, ly, lx)


def polygon(canvas: Canvas, points) -> Field | None:
    """A closed polygon (any simple polygon; even-odd rule) given as ``(n, 2)`` pixel points."""
    pts = np.asarray(points, np.float32)
    g = canvas.grid(pts.min(0), pts.max(0))
    if g is None:
        return None
    (y0, y1, x0, x1), xs, ys = g
    a, b = pts, np.roll(pts, -1, axis=0)  # edges a[k] -> b[k], (n, 2)
    e = (b - a)[:, :, None, None]  # (n, 2, 1, 1)
    ee = np.maximum((e * e).sum(1), 1e-12)  # (n, 1, 1)
    wx = xs[None] - a[:, 0, None, None]  # (n, 1, w)
    wy = ys[None] - a[:, 1, None, None]  # (n, h, 1)
    h = np.minimum(np.maximum((wx * e[:, 0] + wy * e[:, 1]) / ee, 0.0), 1.0)  # (n, h, w)
    qx, qy = wx - h * e[:, 0], wy - h * e[:, 1]
    d = np.sqrt((qx * qx + qy * qy).min(0))
    # even-odd rule: count the edges crossed by a ray to the left of each pixel
    ay, by = a[:, 1, None, None], b[:, 1, None, None]
    crosses = (ys[None] >= ay) != (ys[None] >= by)  # (n, h, 1)
    slope = np.where(by != ay, e[:, 0] / np.where(by != ay, e[:, 1], 1.0), 0.0)
    inside = (crosses & (xs[None] < a[:, 0, None, None] + (ys[None] - ay) * slope)).sum(0) % 2 == 1
    return Field(y0, y1, x0, x1, np.where(inside, -d, d))


def union(*fields: Field | None) -> Field | None:
    """The union of fields (their boxes merged, distance = min); ``t``/``s`` are dropped."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    y0, x0 = min(f.y0 for f in fields), min(f.x0 for f in fields)
    y1, x1 = max(f.y1 for f in fields), max(f.x1 for f in fields)
    d = np.full((y1 - y0, x1 - x0), 1e4, np.float32)
    for f in fields:
        sl = (slice(f.y0 - y0, f.y1 - y0), slice(f.x0 - x0, f.x1 - x0))
        d[sl] = np.minimum(d[sl], f.d)
    return Field(y0, y1, x0, x1, d)


def intersect_coverage(field: Field | None, clip: Field | None) -> Field | None:
    """``field`` restricted to the inside of ``clip`` (distance = max of both)."""
    if field is None or clip is None:
        return None
    y0, y1 = max(field.y0, clip.y0), min(field.y1, clip.y1)
    x0, x1 = max(field.x0, clip.x0), min(field.x1, clip.x1)
    if y1 <= y0 or x1 <= x0:
        return None
    a = field.d[y0 - field.y0:y1 - field.y0, x0 - field.x0:x1 - field.x0]
    b = clip.d[y0 - clip.y0:y1 - clip.y0, x0 - clip.x0:x1 - clip.x0]
    return Field(y0, y1, x0, x1, np.maximum(a, b))
