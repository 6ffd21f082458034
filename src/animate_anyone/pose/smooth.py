"""Temporal clean-up of extracted keypoints: gap filling, One-Euro smoothing, and a jitter measure.

* **Gap filling** (:func:`fill_gaps`): a point (or a whole frame, when nobody was found) missing for
  at most ``max_gap`` frames between two frames where it was found is linearly interpolated, with
  the smaller of the two end scores. Longer gaps, and gaps at the start or end, stay empty.
  ``detected`` keeps saying False for frames where nobody was found, filled or not.
* **Smoothing** (:func:`one_euro`): the One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), a
  low-pass filter whose cut-off rises with speed: still points are smoothed hard, fast motion
  follows with little lag. Extraction is offline, so the filter is run forwards and backwards and
  the two passes are averaged, which cancels most of its lag. Coordinates are divided by the
  frame's long side first, so the parameters do not depend on the video size. Each run of frames
  where a point is found is filtered on its own.
* **Jitter** (:func:`jitter`): mean length of the second difference ``p[t+1] - 2 p[t] + p[t-1]`` of
  body points found in three consecutive frames, in units of the frame's long side. Real motion
  of a limb is smooth at video rates, so this is dominated by frame-to-frame detector noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .keypoints import PoseSequence
from .render import THRESHOLD

# One-Euro defaults, tuned on the real videos of shared/assets (docs/pose.md): min_cutoff in Hz,
# beta in 1/(frame long sides per second).
MIN_CUTOFF = 1.5
BETA = 4.0
D_CUTOFF = 1.0
FACE_FOUND = 0.5  # a frame has a face when at least this share of its 68 points score >= THRESHOLD


@dataclass
class CleaningReport:
    """What :func:`clean_sequence` did. ``missed``: frames where nobody was found; ``filled``: those
    of them that were interpolated from their neighbours; the rest stay empty."""

    num_frames: int
    missed: list[int] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)
    smoothed: bool = False
    jitter_before: float | None = None
    jitter_after: float | None = None
    face_missed: list[int] = field(default_factory=list)  # frames without a face (see FACE_FOUND)

    @property
    def detection_rate(self) -> float:
        return 1.0 - len(self.missed) / max(self.num_frames, 1)

    @property
    def face_detection_rate(self) -> float:
        """Share of frames where a face was found (at least half of its 68 points scored)."""
        return 1.0 - len(self.face_missed) / max(self.num_frames, 1)

    def face_summary(self) -> str:
        """One line for face-driven commands: where the face was missed and what was done."""
        n = self.num_frames
        text = f"face: found in {n - len(self.face_missed)}/{n} frames"
        if self.face_missed:
            text += f"; missed {_ranges(self.face_missed)} (landmarks interpolated from the neighbours)"
        return text

    def __str__(self) -> str:
        text = f"pose: person found in {self.num_frames - len(self.missed)}/{self.num_frames} frames"
        if self.missed:
            empty = sorted(set(self.missed) - set(self.filled))
            text += f"; missed {_ranges(self.missed)}"
            if self.filled:
                text += f" ({len(self.filled)} interpolated"
                text += f", {len(empty)} left empty)" if empty else ")"
        before, after = self.jitter_before, self.jitter_after
        if self.smoothed and before and after is not None and math.isfinite(before) and math.isfinite(after):
            text += f"; smoothing cut jitter by {100 * (1 - after / before):.0f} %"
        return text

    def to_dict(self) -> dict:
        def num(v):
            return None if v is None or math.isnan(v) else round(v, 7)

        return {
            "num_frames": self.num_frames, "missed": self.missed, "filled": self.filled, "smoothed": self.smoothed,
            "jitter_before": num(self.jitter_before), "jitter_after": num(self.jitter_after),
            "face_missed": self.face_missed,
        }  # fmt: skip


def _ranges(indices: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"frames 1-3, 7"``."""
    parts, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return "frame " + parts[0] if len(indices) == 1 else "frames " + ", ".join(parts[:10]) + (
        ", ..." if len(parts) > 10 else ""
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` runs of True in a 1-D boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def fill_gaps(points: np.ndarray, valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate short gaps of ``points`` ``[T, N, 3]`` where ``valid`` ``[T, N]`` is False.

    Returns the filled points and the new validity mask.
    """
    points, valid = points.copy(), valid.copy()
    for n in range(points.shape[1]):
        ok = valid[:, n]
        idx = np.flatnonzero(ok)
        if len(idx) < 2:
            continue
        gaps = np.flatnonzero(np.diff(idx) > 1)
        for g in gaps:
            a, b = idx[g], idx[g + 1]
            if b - a - 1 > max_gap:
                continue
            w = (np.arange(a + 1, b) - a) / (b - a)
            points[a + 1 : b, n, :2] = (1 - w)[:, None] * points[a, n, :2] + w[:, None] * points[b, n, :2]
            points[a + 1 : b, n, 2] = min(points[a, n, 2], points[b, n, 2])
            valid[a + 1 : b, n] = True
    return points, valid


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def _one_euro_pass(x: np.ndarray, dt: float, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """Causal One-Euro filter over axis 0 of ``x`` ``[T, ...]``."""
    out = np.empty_like(x)
    out[0] = x[0]
    dx_hat = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, dt)
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) / dt
        dx_hat = a_d * dx + (1 - a_d) * dx_hat
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)  # one cut-off per point, shared by x and y
        a = _alpha(min_cutoff + beta * speed, dt)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def one_euro(
    points: np.ndarray,
    valid: np.ndarray,
    fps: float,
    scale: float,
    min_cutoff: float = MIN_CUTOFF,
    beta: float = BETA,
    d_cutoff: float = D_CUTOFF,
) -> np.ndarray:
    """Zero-lag (forward + backward) One-Euro smoothing of ``points`` ``[T, N, 3]`` (x, y only) over
    each run of frames where the point is ``valid`` ``[T, N]``; ``scale`` is the frame's long side."""
    out = points.copy()
    dt = 1.0 / max(fps, 1e-3)
    for n in range(points.shape[1]):
        for a, b in _runs(valid[:, n]):
            if b - a < 3:
                continue
            xy = points[a:b, n, :2].astype(np.float64) / scale
            fwd = _one_euro_pass(xy, dt, min_cutoff, beta, d_cutoff)
            bwd = _one_euro_pass(xy[::-1], dt, min_cutoff, beta, d_cutoff)[::-1]
            out[a:b, n, :2] = ((fwd + bwd) / 2 * scale).astype(points.dtype)
    return out


def jitter(seq: PoseSequence, threshold: float = THRESHOLD, found: np.ndarray | None = None) -> float:
    """Mean second-difference magnitude of the body points (see the module docstring); NaN if no
    point is found in three consecutive frames. ``found`` ``[T, 18]`` overrides which points count
    (e.g. the raw detections, so that interpolated points do not flatter a cleaned sequence)."""
    ok = seq.body[..., 2] >= threshold if found is None else found  # [T, 18]
    if len(seq) < 3:
        return float("nan")
    xy = seq.body[..., :2] / max(seq.width, seq.height)
    acc = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1)  # [T-2, 18]
    both = ok[2:] & ok[1:-1] & ok[:-2]
    return float(acc[both].mean()) if both.any() else float("nan")


def clean_sequence(
    seq: PoseSequence,
    *,
    smooth: bool = True,
    max_gap_seconds: float = 0.5,
    min_cutoff: float = MIN_CUTOFF,
    beta: float = BETA,
) -> tuple[PoseSequence, CleaningReport]:
    """Fill short gaps and smooth every part of ``seq``; returns the new sequence and a report."""
    max_gap = int(round(max(max_gap_seconds, 0.0) * seq.fps))  # 0: no filling
    report = CleaningReport(len(seq), missed=np.flatnonzero(~seq.detected).tolist())
    face_found = (seq.face[..., 2] >= THRESHOLD).mean(axis=1) >= FACE_FOUND  # [T]
    report.face_missed = np.flatnonzero(~face_found).tolist()
    scale = float(max(seq.width, seq.height))
    parts = {}
    for name in ("body", "hands", "face"):
        arr = getattr(seq, name)
        shape = arr.shape
        flat = arr.reshape(shape[0], -1, 3)
        valid = flat[..., 2] > 0
        flat, valid = fill_gaps(flat, valid, max_gap)
        if smooth:
            flat = one_euro(flat, valid, seq.fps, scale, min_cutoff, beta)
        parts[name] = flat.reshape(shape)
    # a missed frame counts as filled when its body was interpolated
    report.filled = [t for t in report.missed if (parts["body"][t, :, 2] > 0).any()]
    out = PoseSequence(
        parts["body"], parts["hands"], parts["face"], seq.width, seq.height, seq.fps, seq.detected.copy(),
        dict(seq.meta),
    )  # fmt: skip
    report.smoothed = smooth
    found = seq.body[..., 2] >= THRESHOLD
    report.jitter_before, report.jitter_after = jitter(seq, found=found), jitter(out, found=found)
    out.meta["cleaning"] = report.to_dict()
    return out, report
