"""Forward kinematics: character + pose parameters -> 3-D joints, hand and face points.

World frame (body units): ``X`` to the character's left when it faces the viewer (= image right),
``Y`` up, ``Z`` towards the viewer; the ground is ``Y = 0``. The drawing is an orthographic view
along ``Z`` (:func:`project`), so turning the body narrows the shoulders and moves limbs in depth,
which decides their drawing order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .character import CharacterSpec
from .motion import PoseState


def rot_x(a: np.ndarray) -> np.ndarray:
    """``[T, 3, 3]`` rotations about X; positive tips +Y towards +Z (a forward lean / a nod down)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations about Y; positive turns +Z (the facing direction) towards +X (image right)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``r`` ``[T, 3, 3]`` applied to ``v`` ``[T, ..., 3]``."""
    return np.einsum("tij,t...j->t...i", r, v)


def _unit(v: np.ndarray, fallback=(0.0, 1.0, 0.0)) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-8, v / np.maximum(n, 1e-8), np.asarray(fallback))


def limb_direction(flex: np.ndarray, abd: np.ndarray, side: float) -> np.ndarray:
    """Unit vectors ``[T, 3]``: straight down, swung forward by ``flex`` and outward by ``abd``."""
    return np.stack([side * np.cos(flex) * np.sin(abd), -np.cos(flex) * np.cos(abd), np.sin(flex)], -1)


# The iBUG-68 face on a unit face (x to the character's left = image right when facing the viewer,
# y up), neutral expression; eyes and mouth are moved by `face_template`.
_JAW = [(-0.93 * np.cos(a), -0.93 * np.sin(a) * 1.02) for a in np.linspace(0.05, np.pi - 0.05, 17)]
_BROWS = [(x, 0.33 + 0.07 * np.sin(np.pi * (i / 4))) for i, x in enumerate(np.linspace(-0.66, -0.14, 5))] + [
    (x, 0.33 + 0.07 * np.sin(np.pi * (i / 4))) for i, x in enumerate(np.linspace(0.14, 0.66, 5))
]
_NOSE = [(0.0, 0.2), (0.0, 0.08), (0.0, -0.04), (0.0, -0.16)] + [
    (-0.14, -0.24), (-0.07, -0.27), (0.0, -0.28), (0.07, -0.27), (0.14, -0.24)
]


def face_template(eye_open: np.ndarray, mouth_open: np.ndarray, brow_raise: np.ndarray, smile: np.ndarray,
                  eye_size: float, mouth_width: float) -> np.ndarray:
    """Face points ``[T, 68, 2]`` on the unit face for per-frame eye/mouth/brow states."""
    n = len(eye_open)
    out = np.zeros((n, 68, 2))
    out[:, 0:17] = _JAW
    out[:, 17:27] = _BROWS
    out[:, 17:27, 1] += 0.08 * brow_raise[:, None]
    out[:, 27:36] = _NOSE
    w, h = eye_size, eye_size * 0.62
    o = np.clip(eye_open, 0, 1)[:, None]
    for side, base in ((-1, 36), (1, 42)):
        cx, cy = side * 0.36, 0.08
        # both eyes run left to right in the image along the upper lid, then back along the lower
        xs = np.array([-w / 2, -w / 6, w / 6, w / 2, w / 6, -w / 6])
        upper = cy - 0.3 * h + 0.8 * h * o
        lower = cy - 0.3 * h - 0.2 * h * o
        ys = np.concatenate([cy - 0.3 * h + 0 * o, upper, upper, cy - 0.3 * h + 0 * o, lower, lower], axis=1)
        ys[:, 0] = ys[:, 3] = cy - 0.3 * h + 0.3 * h * o[:, 0]
        out[:, base:base + 6, 0] = cx + xs
        out[:, base:base + 6, 1] = ys
    mw = mouth_width / 2
    my = -0.52
    lt = 0.07
    op = 0.3 * np.clip(mouth_open, 0, 1)[:, None]
    sm = 0.06 * smile[:, None]
    ox = mw * np.array([-1, -0.6, -0.25, 0, 0.25, 0.6, 1, 0.6, 0.25, 0, -0.25, -0.6])
    oy_upper = np.array([0, 0.8, 1.1, 0.9, 1.1, 0.8]) * lt
    oy_lower = np.array([0, -1.0, -1.15, -1.2, -1.15, -1.0]) * lt
    out[:, 48:60, 0] = ox
    out[:, 48:54, 1] = my + oy_upper
    out[:, 54:60, 1] = my + oy_lower - op
    out[:, [48, 54], 1] = my + sm - op * 0.3
    ix = mw * np.array([-0.8, -0.35, 0, 0.35, 0.8, 0.35, 0, -0.35])
    out[:, 60:68, 0] = ix
    out[:, 60:65, 1] = my + np.array([0, 0.1, 0.15, 0.1, 0]) * lt
    out[:, 65:68, 1] = my - op - np.array([0.1, 0.15, 0.1]) * lt
    out[:, [60, 64], 1] = my + sm - op * 0.3
    out[:, 61:64, 1] += sm * 0.3
    return out


@dataclass
class Rig:
    """3-D points of one clip, world frame, ``[T, ...]``; ``index 0/1`` = right/left."""

    pelvis: np.ndarray  # [T, 3]
    neck: np.ndarray
    head: np.ndarray  # head centre
    head_rot: np.ndarray  # [T, 3, 3] head frame -> world
    body_rot: np.ndarray  # [T, 3, 3] upper-body frame -> world
    yaw_rot: np.ndarray  # [T, 3, 3] hips frame -> world
    shoulders: np.ndarray  # [T, 2, 3]
    elbows: np.ndarray
    wrists: np.ndarray
    hips: np.ndarray
    knees: np.ndarray
    ankles: np.ndarray
    toes: np.ndarray
    hands: np.ndarray  # [T, 2, 21, 3]
    palm_normals: np.ndarray  # [T, 2, 3]
    face: np.ndarray  # [T, 68, 3]
    face_visible: np.ndarray  # [T, 68] bool
    ears: np.ndarray  # [T, 2, 3]
    ear_facing: np.ndarray  # [T, 2] z of the ear's outward normal
    eyes: np.ndarray  # [T, 2, 3]
    state: PoseState


SIDES = (-1.0, 1.0)  # right side is -X, left side +X


def build_rig(ch: CharacterSpec, st: PoseState) -> Rig:
    """Forward kinematics for every frame; feet are kept on the ground (``Y = 0``)."""
    t = len(st.yaw)
    r_yaw = rot_y(st.yaw)
    r_body = r_yaw @ rot_z(st.lean_side) @ rot_x(st.lean_forward)
    r_head = r_body @ rot_y(st.head_yaw) @ rot_x(st.head_pitch) @ rot_z(st.head_roll)
    zeros = np.zeros((t, 3))

    def up(v):
        return np.broadcast_to(np.asarray(v, float), (t, 3))

    neck = _apply(r_body, up((0, ch.torso_length, 0)))
    head = neck + _apply(r_body, up((0, ch.neck_length, 0))) + _apply(r_head, up((0, ch.head_radius * ch.head_aspect, 0)))
    sh, el, wr, hp, kn, an, to, hands, normals = ([] for _ in range(9))
    for i, s in enumerate(SIDES):
        shoulder = neck + _apply(r_body, up((s * ch.shoulder_half, -0.025, 0)))
        elbow = shoulder + ch.upper_arm * _apply(r_body, limb_direction(st.arm_flex[:, i], st.arm_abd[:, i], s))
        fdir = _apply(r_body, limb_direction(st.forearm_flex[:, i], st.forearm_abd[:, i], s))
        wrist = elbow + ch.forearm * fdir
        hip = _apply(r_yaw, up((s * ch.hip_half, 0, 0)))
        knee = hip + ch.thigh * _apply(r_yaw, limb_direction(st.leg_flex[:, i], st.leg_abd[:, i], s))
        ankle = knee + ch.shin * _apply(r_yaw, limb_direction(st.shin_flex[:, i], st.shin_abd[:, i], s))
        toe = ankle + _apply(r_yaw, up((s * 0.15 * ch.foot_length, -0.6 * ch.ankle_height, ch.foot_length)))
        pts, n = _hand_points(ch, wrist, fdir, r_body, st.palm_inward[:, i], st.hand_curl[:, i], s)
        for lst, v in zip((sh, el, wr, hp, kn, an, to, hands, normals), (shoulder, elbow, wrist, hip, knee, ankle, toe, pts, n)):
            lst.append(v)
    stack = [np.stack(v, axis=1) for v in (sh, el, wr, hp, kn, an, to, hands, normals)]
    sh, el, wr, hp, kn, an, to, hands, normals = stack
    # Ground contact: the lowest of soles and toes touches Y = 0; plus the horizontal drift.
    sole = np.minimum((an[..., 1] - ch.ankle_height).min(1), to[..., 1].min(1))
    shift = np.stack([st.root_x, -sole, np.zeros(t)], -1)
    # Face and ears on the head ellipsoid.
    rx, ry, rz = ch.head_radius, ch.head_radius * ch.head_aspect, ch.head_radius * 0.95
    tmpl = face_template(st.eye_open, st.mouth_open, st.brow_raise, st.smile, ch.eye_size, ch.mouth_width)
    a, b = tmpl[..., 0], tmpl[..., 1]
    nz = np.sqrt(np.clip(1 - a * a - b * b, 0.0, None))
    local = np.stack([a * rx, b * ry, nz * rz], -1)  # [T, 68, 3]
    protrude = {"human": 0.14, "cartoon": 0.1, "robot": 0.0}[ch.category] * ch.head_radius
    local[:, 30, 2] += protrude
    local[:, 29, 2] += protrude * 0.5
    face = head[:, None] + _apply(r_head, local)
    normal_z = _apply(r_head, _unit(np.stack([a, b, np.maximum(nz, 0.05)], -1)))[..., 2]
    face_visible = normal_z > 0.12
    ear_local = np.array([[s * rx * 0.97, 0.02 * ry, -0.08 * rz] for s in SIDES])
    ears = head[:, None] + _apply(r_head, np.broadcast_to(ear_local, (t, 2, 3)))
    ear_facing = _apply(r_head, np.broadcast_to(np.array([[s, 0, 0.3] for s in SIDES]), (t, 2, 3)))[..., 2]
    eyes = np.stack([face[:, 36:42].mean(1), face[:, 42:48].mean(1)], axis=1)
    pelvis = zeros
    out = Rig(
        pelvis=pelvis, neck=neck, head=head, head_rot=r_head, body_rot=r_body, yaw_rot=r_yaw,
        shoulders=sh, elbows=el, wrists=wr, hips=hp, knees=kn, ankles=an, toes=to, hands=hands,
        palm_normals=normals, face=face, face_visible=face_visible, ears=ears, ear_facing=ear_facing,
        eyes=eyes, state=st,
    )  # fmt: skip
    for name in ("pelvis", "neck", "head", "shoulders", "elbows", "wrists", "hips", "knees", "ankles", "toes",
                 "hands", "face", "ears", "eyes"):
        arr = getattr(out, name)
        setattr(out, name, arr + shift.reshape((t,) + (1,) * (arr.ndim - 2) + (3,)))
    return out


def _hand_points(ch, wrist, h, r_body, palm_inward, curl, side):
    """21 hand points ``[T, 21, 3]`` (wrist, then thumb..little base to tip) and the palm normal."""
    t = len(wrist)
    fwd = _apply(r_body, np.broadcast_to(np.array([0.0, 0.0, 1.0]), (t, 3)))
    lat = _apply(r_body, np.broadcast_to(np.array([1.0, 0.0, 0.0]), (t, 3)))
    psi = (np.pi / 2 * palm_inward)[:, None]
    n = np.cos(psi) * fwd - np.sin(psi) * side * lat
    n = _unit(n - (n * h).sum(-1, keepdims=True) * h, fallback=(0.0, 0.0, 1.0))
    thumb_side = _unit(side * np.cross(n, h), fallback=(1.0, 0.0, 0.0))
    hs = ch.hand_size
    palm, half_w = 0.45 * hs, 0.2 * hs
    c = curl[:, None]
    pts = [wrist]
    # thumb: CMC, MCP, IP, tip
    cmc = wrist + 0.12 * hs * h + 0.6 * half_w * thumb_side
    d0 = _unit(0.55 * h + 0.85 * thumb_side - 0.25 * n)
    dc = _unit(-0.5 * thumb_side + 0.3 * h - 0.8 * n)
    p = cmc
    pts.append(p)
    for g, frac in zip((25, 55, 85), (0.35, 0.3, 0.25)):
        gam = np.radians(g) * c
        p = p + 0.5 * hs * frac * _unit(np.cos(gam) * d0 + np.sin(gam) * dc)
        pts.append(p)
    for off, length in zip((0.75, 0.25, -0.25, -0.7), (0.9, 1.0, 0.95, 0.78)):
        base = wrist + palm * h + off * half_w * thumb_side
        d = _unit(h + 0.35 * off * (1 - 0.7 * c) * thumb_side)
        p = base
        pts.append(p)
        for ang, frac in zip((60, 130, 180), (0.45, 0.3, 0.25)):
            beta = np.radians(ang) * c
            p = p + 0.55 * hs * length * frac * (np.cos(beta) * d - np.sin(beta) * n)
            pts.append(p)
    return np.stack(pts, axis=1), n


def project(points: np.ndarray, scale: float, cx: float, ground_y: float) -> np.ndarray:
    """World points ``[..., 3]`` -> pixel ``[..., 2]`` (x right, y down); ``ground_y`` = pixel row of Y = 0."""
    return np.stack([cx + scale * points[..., 0], ground_y - scale * points[..., 1]], -1)
