"""Clips of the lab: a character performing a motion, with exact keypoints, pose maps and masks.

Everything is a pure function of integers (character id, clip index, motion variant), so the same
arguments always give byte-identical frames. See :mod:`.split` for the held-out split and
:func:`plan_clips` for which clips a data set holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..pose.keypoints import PoseSequence
from .background import render_background, sample_background
from .character import CharacterSpec, sample_character, stable_rng
from .draw import View, draw_character
from .motion import MotionSpec, motion_state, parse_motion_id, sample_motion
from .raster import Canvas
from .skeleton import Rig, build_rig


@dataclass
class LabClip:
    """One generated clip.

    ``frames``: ``[T, H, W, 3]`` uint8 RGB; ``masks``: ``[T, H, W]`` uint8 character coverage
    (255 = character); ``poses``: exact keypoints (:class:`PoseSequence`, pixel coordinates of the
    frame); ``meta``: ids and parameters (JSON-able).
    """

    frames: np.ndarray
    masks: np.ndarray
    poses: PoseSequence
    character: CharacterSpec
    motion: MotionSpec
    fps: float
    meta: dict = field(default_factory=dict)

    def pose_maps(self, face: bool = True, hands: bool = True) -> np.ndarray:
        """The pose video ``[T, H, W, 3]`` uint8 (DWPose convention, see :mod:`animate_anyone.pose.render`);
        ``face`` / ``hands``: draw those keypoints (the body is always drawn)."""
        from ..pose.render import render_sequence

        return render_sequence(self.poses, draw_face=face, draw_hands=hands)


def _extent_points(ch: CharacterSpec, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Every point the drawing can reach ``[N, 3]`` and the margin around each ``[N]`` (body units)."""
    t = len(rig.head)
    groups = [
        (rig.head.reshape(-1, 3), ch.head_radius * max(ch.head_aspect, 1.0) * (1.75 if ch.category == "robot" else 1.3)),
        (rig.shoulders.reshape(-1, 3), ch.arm_radius * 1.3),
        (rig.elbows.reshape(-1, 3), ch.arm_radius * 1.3),
        (rig.hands.reshape(-1, 3), 0.02),
        (rig.knees.reshape(-1, 3), ch.leg_radius * 1.3),
        (rig.ankles.reshape(-1, 3), ch.leg_radius * 1.3),
        (rig.toes.reshape(-1, 3), ch.leg_radius),
        (rig.hips.reshape(-1, 3), 0.15 if ch.bottom == "skirt" else ch.leg_radius * 1.3),
    ]
    if ch.hair_style == "long":
        groups.append((rig.neck.reshape(-1, 3), ch.head_radius * 1.2 + 0.1))
    pts = np.concatenate([g for g, _ in groups])
    margin = np.concatenate([np.full(len(g), m) for g, m in groups])
    assert len(pts) == len(margin) and t > 0
    return pts, margin


def fit_view(ch: CharacterSpec, rig: Rig, width: int, height: int, rng: np.random.Generator) -> View:
    """A camera for the whole clip: the character fills 72-90 % of the height when it fits, never
    leaves the frame, stands on a ground line near the bottom, and sits at a random place left-right."""
    pts, margin = _extent_points(ch, rig)
    x_lo, x_hi = float((pts[:, 0] - margin).min()), float((pts[:, 0] + margin).max())
    y_top = float((pts[:, 1] + margin).max())
    bottom = rng.uniform(0.03, 0.09) * height
    top = 0.02 * height
    scale = rng.uniform(0.72, 0.9) * height / ch.height
    scale = min(scale, (height - bottom - top) / y_top, 0.96 * width / max(x_hi - x_lo, 1e-6))
    slack = max(0.96 * width - scale * (x_hi - x_lo), 0.0) / 2
    cx = width / 2 - scale * (x_lo + x_hi) / 2 + rng.uniform(-0.6, 0.6) * slack
    return View(scale, cx, height - bottom)


def face_view(rig: Rig, width: int, height: int, rng: np.random.Generator) -> View:
    """A portrait camera for the whole clip (talking-head data for face reenactment): the face
    landmarks (brows to chin) fill 40-50 % of the frame height, their median centre a little above
    the frame centre; fixed over the clip, so head motion shows as motion."""
    face = rig.face  # [T, 68, 2] body units, y up
    lo, hi = face.min(1), face.max(1)  # [T, 2]
    size = float(np.median(hi[:, 1] - lo[:, 1]))
    centre = np.median((lo + hi) / 2, axis=0)
    scale = rng.uniform(0.4, 0.5) * height / max(size, 1e-6)
    cx = width / 2 - scale * centre[0] + rng.uniform(-0.05, 0.05) * width
    cy = height * rng.uniform(0.45, 0.52)
    return View(scale, cx, cy + scale * centre[1])


def keypoints_from_rig(rig: Rig, view: View, width: int, height: int, fps: float) -> PoseSequence:
    """Exact OpenPose-18 body, hands (left then right) and iBUG-68 face keypoints in pixels."""
    t = len(rig.head)
    P = view  # noqa: N806
    sh, el, wr, hp, kn, an = (P(getattr(rig, n)) for n in ("shoulders", "elbows", "wrists", "hips", "knees", "ankles"))
    face2d = P(rig.face)
    R, L = 0, 1  # noqa: N806 - rig index of the right and left limb
    body_xy = np.stack([
        face2d[:, 30], sh.mean(1), sh[:, R], el[:, R], wr[:, R], sh[:, L], el[:, L], wr[:, L],
        hp[:, R], kn[:, R], an[:, R], hp[:, L], kn[:, L], an[:, L],
        P(rig.eyes[:, R]), P(rig.eyes[:, L]), P(rig.ears[:, R]), P(rig.ears[:, L]),
    ], axis=1)  # fmt: skip
    body_score = np.ones((t, 18))
    body_score[:, 0] = rig.face_visible[:, 30]
    body_score[:, 14] = rig.face_visible[:, 36:42].all(1)
    body_score[:, 15] = rig.face_visible[:, 42:48].all(1)
    body_score[:, 16:18] = rig.ear_facing > -0.25
    hands_xy = P(rig.hands[:, [L, R]])  # the schema stores the left hand first
    hand_score = np.ones(hands_xy.shape[:-1])
    face_score = rig.face_visible.astype(float)

    def pack(xy, score):
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
        score = np.where(inside, score, 0.0)
        xy = np.where(score[..., None] > 0, xy, 0.0)
        return np.concatenate([xy, score[..., None]], -1).astype(np.float32)

    return PoseSequence(
        body=pack(body_xy, body_score), hands=pack(hands_xy, hand_score), face=pack(face2d, face_score),
        width=width, height=height, fps=fps, detected=np.ones(t, bool),
    )  # fmt: skip


def generate_clip(
    character: int | CharacterSpec,
    motion: str | MotionSpec,
    num_frames: int = 24,
    width: int = 128,
    height: int = 128,
    fps: float = 24.0,
    view_seed: int = 0,
    start_time: float = 0.0,
    framing: str = "body",
) -> LabClip:
    """Render ``character`` (id or spec) performing ``motion`` (id like ``"dance-00042"`` or spec).

    ``view_seed`` picks the background and the framing; ``start_time`` (seconds) offsets the motion;
    ``framing``: ``"body"`` (the whole character) or ``"face"`` (a talking-head portrait).
    """
    if num_frames < 1 or width < 8 or height < 8 or fps <= 0:
        raise ValueError(f"bad clip size: {num_frames} frames of {width}x{height} at {fps} fps")
    if framing not in ("body", "face"):
        raise ValueError(f"framing must be 'body' or 'face', got {framing!r}")
    ch = character if isinstance(character, CharacterSpec) else sample_character(int(character))
    mo = motion if isinstance(motion, MotionSpec) else sample_motion(*parse_motion_id(motion))
    times = start_time + np.arange(num_frames) / fps
    rig = build_rig(ch, motion_state(mo, times))
    rng = stable_rng("lab-view", ch.character_id, mo.motion_id, int(view_seed), width, height)
    view = fit_view(ch, rig, width, height, rng) if framing == "body" else face_view(rig, width, height, rng)
    bg_params = sample_background(rng)
    bg = render_background(bg_params, width, height)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.empty((num_frames, height, width), np.uint8)
    for i in range(num_frames):
        canvas = Canvas(bg)
        draw_character(canvas, ch, rig, i, view)
        frames[i] = canvas.to_uint8()
        masks[i] = (np.clip(canvas.alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
    poses = keypoints_from_rig(rig, view, width, height, fps)
    meta = {
        "source": "animate-anyone lab",
        "character_id": ch.character_id,
        "category": ch.category,
        "motion_id": mo.motion_id,
        "motion": mo.motion_type,
        "view_seed": int(view_seed),
        "framing": framing,
        "background": bg_params["kind"],
    }
    poses.meta = dict(meta)
    return LabClip(frames, masks, poses, ch, mo, float(fps), meta)
