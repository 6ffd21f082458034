"""Motions: joint angles over time for the five motion families.

A motion is a :class:`MotionSpec` (family + integer variant); its parameters are a pure function
of both (:func:`sample_motion`), and :func:`motion_state` evaluates it at any times (seconds), so
a clip of any length or frame rate is available. Families:

* ``dance``: periodic loops (period 0.8-1.6 s) of arm pumps/swings, hip sway, knee bounce,
  side steps and torso roll, mirrored or alternating arms;
* ``walk``: a gait cycle (thigh swing, knee flexion in swing, counter-swinging arms), seen from a
  view angle between front and side, in place or drifting across the frame;
* ``wave``: one or both arms raised, the forearm oscillating, a slight body sway;
* ``turn``: the body yaws continuously or back and forth with stepping feet; the 2-D drawing
  follows (shoulders narrow, near and far limbs swap drawing order, the face disappears);
* ``talk``: a mostly still body with head nods, syllable-driven mouth opening, blinks, raised brows
  and hand gestures.

Angles (radians in :class:`PoseState`): *flexion* swings a limb forward (towards the viewer when
the body faces the viewer), *abduction* swings it outward, away from the body's midline; both are
absolute (relative to the torso), not relative to the parent limb. Index 0 = the right limb, 1 = left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .character import stable_rng

MOTION_TYPES = ("dance", "walk", "wave", "turn", "talk")
D = np.pi / 180.0


@dataclass
class PoseState:
    """Per-frame pose parameters; arrays of shape ``[T]`` or ``[T, 2]`` (right, left)."""

    yaw: np.ndarray  # body rotation about the vertical axis; 0 = facing the viewer, +: turns to image right
    lean_forward: np.ndarray
    lean_side: np.ndarray
    root_x: np.ndarray  # horizontal drift (body units)
    head_yaw: np.ndarray
    head_pitch: np.ndarray  # + = nod down
    head_roll: np.ndarray
    arm_flex: np.ndarray  # [T, 2] upper arm
    arm_abd: np.ndarray
    forearm_flex: np.ndarray
    forearm_abd: np.ndarray
    leg_flex: np.ndarray  # [T, 2] thigh
    leg_abd: np.ndarray
    shin_flex: np.ndarray
    shin_abd: np.ndarray
    palm_inward: np.ndarray  # [T, 2] 0 = palm faces forward, 1 = palm faces the body
    hand_curl: np.ndarray  # [T, 2] 0 open ... 1 fist
    eye_open: np.ndarray  # [T] 0 closed ... 1 open
    mouth_open: np.ndarray  # [T] 0 closed ... 1 wide open
    brow_raise: np.ndarray  # [T]
    smile: np.ndarray  # [T]

    @classmethod
    def idle(cls, t: np.ndarray) -> PoseState:
        n = len(t)
        z, z2 = np.zeros(n), np.zeros((n, 2))
        return cls(
            yaw=z.copy(), lean_forward=z.copy(), lean_side=z.copy(), root_x=z.copy(),
            head_yaw=z.copy(), head_pitch=z.copy(), head_roll=z.copy(),
            arm_flex=z2.copy(), arm_abd=z2 + 8 * D, forearm_flex=z2 + 12 * D, forearm_abd=z2 + 4 * D,
            leg_flex=z2.copy(), leg_abd=z2 + 3 * D, shin_flex=z2.copy(), shin_abd=z2 + 2 * D,
            palm_inward=z2 + 0.6, hand_curl=z2 + 0.25, eye_open=z + 1.0, mouth_open=z.copy(),
            brow_raise=z.copy(), smile=z + 0.3,
        )  # fmt: skip


@dataclass(frozen=True)
class MotionSpec:
    """One motion: family + variant; ``params`` are derived from both."""

    motion_type: str
    variant: int
    params: dict = field(default_factory=dict, compare=False)

    @property
    def motion_id(self) -> str:
        return f"{self.motion_type}-{self.variant:05d}"


def parse_motion_id(motion_id: str) -> tuple[str, int]:
    kind, _, num = motion_id.rpartition("-")
    if kind not in MOTION_TYPES or not num.isdigit():
        raise ValueError(f"bad motion id {motion_id!r}: expected '<{'|'.join(MOTION_TYPES)}>-<number>'")
    return kind, int(num)


def sample_motion(motion_type: str, variant: int) -> MotionSpec:
    """The motion ``motion_type``-``variant`` with its parameters."""
    if motion_type not in MOTION_TYPES:
        raise ValueError(f"unknown motion type {motion_type!r}; expected one of {MOTION_TYPES}")
    rng = stable_rng("lab-motion", motion_type, int(variant))
    u = rng.uniform
    p: dict = {
        "blink_rate": u(0.25, 0.6),  # blinks per second
        "blink_seed": int(rng.integers(1 << 30)),
        "phase": u(0, 1),
    }
    if motion_type == "dance":
        p.update(
            period=u(0.8, 1.6),
            base_yaw=float(rng.choice([0.0, 0.0, u(-35, 35)])) * D,
            yaw_amp=u(0, 20) * D,
            arm_base=[u(15, 110), u(15, 110)],
            arm_amp=[u(20, 65), u(20, 65)],
            arm_harm=int(rng.integers(1, 3)),
            arm_mode=str(rng.choice(["mirror", "alternate", "independent"])),
            arm_flex_base=u(-10, 40),
            arm_flex_amp=u(0, 30),
            elbow_base=u(10, 70),
            elbow_amp=u(0, 50),
            sway=u(0.0, 0.04),
            bounce=u(0, 25) * D,
            step=u(0, 25) * D,
            roll=u(0, 10) * D,
            nod=u(0, 8) * D,
            mouth=u(0, 0.3),
            curl=u(0, 1),
        )
        if p["arm_mode"] == "mirror":
            p["arm_base"][1], p["arm_amp"][1] = p["arm_base"][0], p["arm_amp"][0]
    elif motion_type == "walk":
        p.update(
            period=u(0.9, 1.3),
            yaw=float(rng.choice([90, -90, 60, -60, 35, -35, 0, 180])) * D + u(-8, 8) * D,
            thigh_amp=u(18, 30) * D,
            knee_amp=u(30, 55) * D,
            arm_amp=u(15, 35) * D,
            lean=u(2, 7) * D,
            drift=bool(rng.uniform() < 0.5),
        )
    elif motion_type == "wave":
        p.update(
            arms=str(rng.choice(["right", "left", "both"], p=[0.4, 0.4, 0.2])),
            freq=u(1.2, 2.8),
            amp=u(15, 35) * D,
            raise_=u(95, 150) * D,
            forearm=u(150, 185) * D,
            base_yaw=u(-30, 30) * D,
            sway=u(0, 0.02),
            other=str(rng.choice(["down", "hip"])),
            smile=u(0.4, 1.0),
        )
    elif motion_type == "turn":
        p.update(
            mode=str(rng.choice(["spin", "spin", "back_and_forth"])),
            speed=float(rng.choice([-1, 1])) * u(120, 260) * D,  # spin: rad/s
            amp=u(70, 180) * D,  # back_and_forth: rad
            freq=u(0.25, 0.5),
            start=u(-40, 40) * D,
            step=u(5, 15) * D,
            arm_amp=u(5, 20) * D,
        )
    else:  # talk
        p.update(
            base_yaw=u(-45, 45) * D,
            syllable_rate=u(3.0, 6.0),
            syllable_seed=int(rng.integers(1 << 30)),
            loudness=u(0.5, 1.0),
            nod=u(2, 8) * D,
            gesture=str(rng.choice(["none", "right", "left", "both"])),
            gesture_freq=u(0.3, 0.8),
            brows=u(0, 1),
        )
    return MotionSpec(motion_type, int(variant), p)


def _events(seed: int, rate: float, duration: float, lead: float = 2.0) -> np.ndarray:
    """Event onsets (seconds) of a Poisson-like process, from ``-lead`` to ``duration``."""
    rng = np.random.default_rng(seed)
    n = int((duration + lead) * rate * 2 + 8)
    gaps = rng.exponential(1.0 / rate, n) + 0.12
    return np.cumsum(gaps) - lead


def _bumps(t: np.ndarray, onsets: np.ndarray, width: float, heights=None) -> np.ndarray:
    """Sum of raised-cosine bumps of ``width`` seconds starting at ``onsets`` (clipped to 1)."""
    x = (t[:, None] - onsets[None, :]) / width  # (T, events)
    b = np.where((x >= 0) & (x <= 1), 0.5 - 0.5 * np.cos(2 * np.pi * x), 0.0)
    if heights is not None:
        b = b * heights[None, :]
    return np.clip(b.sum(axis=1), 0, 1)


def motion_state(spec: MotionSpec, t: np.ndarray) -> PoseState:
    """Evaluate the motion at times ``t`` (seconds, ``[T]``)."""
    t = np.asarray(t, np.float64)
    s = PoseState.idle(t)
    p = spec.params
    horizon = float(t.max(initial=0.0)) + 1.0
    blinks = _events(p["blink_seed"], p["blink_rate"], horizon)
    s.eye_open = 1.0 - _bumps(t, blinks, 0.18)
    kind = spec.motion_type
    two_pi = 2 * np.pi
    if kind == "dance":
        w = two_pi / p["period"]
        ph = two_pi * p["phase"]
        k = p["arm_harm"]
        offs = {"mirror": (0.0, 0.0), "alternate": (0.0, np.pi), "independent": (0.0, 1.9)}[p["arm_mode"]]
        for i in range(2):
            wave_i = np.sin(k * w * t + ph + offs[i])
            s.arm_abd[:, i] = (p["arm_base"][i] + p["arm_amp"][i] * wave_i) * D
            s.arm_flex[:, i] = (p["arm_flex_base"] + p["arm_flex_amp"] * np.cos(w * t + offs[i])) * D
            elbow = (p["elbow_base"] + p["elbow_amp"] * np.sin(w * t + ph + offs[i] + 1.0)) * D
            s.forearm_abd[:, i] = s.arm_abd[:, i] + elbow * 0.8
            s.forearm_flex[:, i] = s.arm_flex[:, i] + elbow * 0.6
            step = p["step"] * np.maximum(0.0, np.sin(w * t + ph + np.pi * i))
            s.leg_abd[:, i] += step
            s.shin_abd[:, i] += step * 0.8
        bounce = p["bounce"] * (0.5 - 0.5 * np.cos(2 * w * t + ph))
        s.leg_flex += bounce[:, None]
        s.shin_flex -= bounce[:, None] * 1.2
        s.root_x = p["sway"] * np.sin(w * t + ph)
        s.lean_side = p["roll"] * np.sin(w * t + ph)
        s.yaw = p["base_yaw"] + p["yaw_amp"] * np.sin(w * t / 2 + ph)
        s.head_pitch = p["nod"] * np.sin(2 * w * t + ph)
        s.head_roll = -0.5 * s.lean_side
        s.mouth_open = p["mouth"] * (0.5 + 0.5 * np.sin(w * t))
        s.hand_curl[:] = p["curl"]
        s.palm_inward[:] = 0.3
        s.smile[:] = 0.8
    elif kind == "walk":
        w = two_pi / p["period"]
        x = w * t + two_pi * p["phase"]
        swing = np.sin(x)
        for i, sign in enumerate((1.0, -1.0)):
            th = sign * p["thigh_amp"] * swing
            knee = 5 * D + p["knee_amp"] * np.maximum(0.0, np.cos(x - 0.4 + (0 if sign > 0 else np.pi))) ** 1.5
            s.leg_flex[:, i] = th
            s.shin_flex[:, i] = th - knee
            s.arm_flex[:, i] = -sign * p["arm_amp"] * swing
            s.forearm_flex[:, i] = s.arm_flex[:, i] + 15 * D + 0.5 * np.maximum(0, -sign * p["arm_amp"] * swing)
        s.yaw[:] = p["yaw"]
        s.lean_forward[:] = p["lean"]
        if p["drift"]:  # walk across the frame at about half the speed the stride implies
            speed = 0.5 * 4 * 0.45 * np.sin(p["thigh_amp"]) / p["period"]
            s.root_x = np.sin(p["yaw"]) * speed * (t - (horizon - 1.0) / 2)
        s.head_pitch[:] = 3 * D
    elif kind == "wave":
        w = two_pi * p["freq"]
        osc = p["amp"] * np.sin(w * t + two_pi * p["phase"])
        arms = {"right": (0,), "left": (1,), "both": (0, 1)}[p["arms"]]
        for i in range(2):
            if i in arms:
                s.arm_abd[:, i] = p["raise_"]
                s.arm_flex[:, i] = 10 * D
                s.forearm_abd[:, i] = p["forearm"] + osc
                s.forearm_flex[:, i] = 15 * D
                s.palm_inward[:, i] = 0.0
                s.hand_curl[:, i] = 0.05
            elif p["other"] == "hip":
                s.arm_abd[:, i] = 40 * D
                s.arm_flex[:, i] = -10 * D
                s.forearm_abd[:, i] = -45 * D
                s.forearm_flex[:, i] = 0.0
                s.hand_curl[:, i] = 0.7
        s.yaw[:] = p["base_yaw"]
        s.root_x = p["sway"] * np.sin(w * t / 2)
        s.lean_side = 3 * D * np.sin(w * t / 2) * (1 if arms != (0, 1) else 0)
        s.head_roll = 4 * D * np.sin(w * t / 2 + 0.5)
        s.smile[:] = p["smile"]
        s.mouth_open = 0.15 * p["smile"] * (0.5 + 0.5 * np.sin(0.7 * w * t))
    elif kind == "turn":
        if p["mode"] == "spin":
            s.yaw = p["start"] + p["speed"] * t
        else:
            s.yaw = p["start"] + p["amp"] * np.sin(two_pi * p["freq"] * t + two_pi * p["phase"])
        stepping = np.sin(two_pi * 1.6 * t)
        for i, sign in enumerate((1.0, -1.0)):
            lift = p["step"] * np.maximum(0.0, sign * stepping)
            s.leg_flex[:, i] = lift
            s.shin_flex[:, i] = -lift
            s.arm_flex[:, i] = -sign * p["arm_amp"] * stepping
        s.head_yaw = 8 * D * np.sign(p["speed"]) * (1 if p["mode"] == "spin" else 0)
    else:  # talk
        s.yaw[:] = p["base_yaw"]
        onsets = _events(p["syllable_seed"], p["syllable_rate"], horizon)
        heights = np.random.default_rng(p["syllable_seed"] + 1).uniform(0.35, 1.0, len(onsets))
        heights[np.random.default_rng(p["syllable_seed"] + 2).uniform(size=len(onsets)) < 0.15] = 0.0  # pauses
        s.mouth_open = p["loudness"] * _bumps(t, onsets, 0.9 / p["syllable_rate"] + 0.05, heights)
        s.head_pitch = p["nod"] * np.sin(two_pi * 0.7 * t + two_pi * p["phase"])
        s.head_yaw = 6 * D * np.sin(two_pi * 0.3 * t)
        s.brow_raise = p["brows"] * np.clip(np.sin(two_pi * 0.4 * t), 0, 1)
        s.eye_open = 1.0 - _bumps(t, _events(p["blink_seed"], p["blink_rate"] * 1.5, horizon), 0.18)
        hands = {"none": (), "right": (0,), "left": (1,), "both": (0, 1)}[p["gesture"]]
        for i in hands:
            g = 0.5 + 0.5 * np.sin(two_pi * p["gesture_freq"] * t + 1.3 * i)
            s.arm_flex[:, i] = 15 * D * g
            s.arm_abd[:, i] = (10 + 15 * g) * D
            s.forearm_flex[:, i] = (20 + 60 * g) * D
            s.forearm_abd[:, i] = (5 - 25 * g) * D
            s.palm_inward[:, i] = 0.2
            s.hand_curl[:, i] = 0.2
        s.smile[:] = 0.4
    return s
