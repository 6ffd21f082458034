"""Procedural characters: proportions and appearance drawn from a character id.

A character is a :class:`CharacterSpec`, a pure function of its integer id
(:func:`sample_character`). Lengths are in *body units*: a character standing straight is about
1.0 tall from sole to the top of the head. Colours are RGB floats in [0, 1].

Categories:

* ``human``: about 7 heads tall, natural skin tones, thin outline;
* ``cartoon``: big head (3-4 heads tall), short thick limbs, big eyes, thick dark outline;
* ``robot``: boxy torso, limbs and head, metallic colours, visor eyes, an antenna.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import asdict, dataclass

import numpy as np

CATEGORIES = ("human", "cartoon", "robot")
PATTERNS = ("plain", "hstripes", "vstripes", "dots", "checker")
HAIR_STYLES = ("short", "long", "bangs", "bald", "bun")
SKIN_TONES = (
    (0.98, 0.87, 0.77), (0.94, 0.78, 0.65), (0.87, 0.69, 0.53), (0.76, 0.57, 0.42),
    (0.62, 0.44, 0.31), (0.47, 0.32, 0.22), (0.36, 0.24, 0.17),
)  # fmt: skip
FANTASY_SKIN = ((0.62, 0.85, 0.55), (0.55, 0.75, 0.95), (0.80, 0.65, 0.95), (1.0, 0.75, 0.80))
HAIR_COLORS = (
    (0.10, 0.08, 0.07), (0.30, 0.18, 0.10), (0.55, 0.35, 0.18), (0.85, 0.70, 0.40),
    (0.70, 0.25, 0.10), (0.75, 0.75, 0.78), (0.20, 0.30, 0.75), (0.85, 0.35, 0.60),
)  # fmt: skip


def stable_rng(*key) -> np.random.Generator:
    """A NumPy generator seeded from ``key`` through SHA-256 (stable across runs and platforms)."""
    digest = hashlib.sha256(":".join(str(k) for k in key).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32).tolist())


@dataclass(frozen=True)
class CharacterSpec:
    """Everything that defines one character's look (see the module docstring for units)."""

    character_id: int
    category: str
    # proportions (body units)
    head_radius: float
    head_aspect: float  # vertical / horizontal radius
    neck_length: float
    torso_length: float
    shoulder_half: float
    hip_half: float
    torso_depth: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    ankle_height: float
    foot_length: float
    arm_radius: float
    leg_radius: float
    hand_size: float
    # appearance
    skin: tuple
    hair_color: tuple
    hair_style: str
    top_color: tuple
    top_color2: tuple
    top_pattern: str
    sleeves: float  # fraction of the arm the top covers: 0 none ... 1 long
    bottom: str  # "pants" | "shorts" | "skirt"
    bottom_color: tuple
    shoe_color: tuple
    accent: tuple
    eye_color: tuple
    eye_size: float
    mouth_width: float
    outline: tuple
    outline_width: float  # body units

    @property
    def hip_height(self) -> float:
        return self.thigh + self.shin + self.ankle_height

    @property
    def height(self) -> float:
        return self.hip_height + self.torso_length + self.neck_length + 2 * self.head_radius * self.head_aspect

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _jitter(rng, color, amount=0.06):
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 1)) for c in color)


def _random_color(rng, sat=(0.35, 0.9), val=(0.35, 0.95)):
    h = rng.uniform()
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val)))


def _contrast(rng, color):
    """A colour clearly different from ``color`` (hue shifted, value flipped)."""
    h, s, v = colorsys.rgb_to_hsv(*color)
    h = (h + rng.uniform(0.25, 0.75)) % 1.0
    v = 0.9 if v < 0.55 else 0.3
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, max(s, 0.4), v))


def sample_character(character_id: int, category: str | None = None) -> CharacterSpec:
    """The character with this id (its category too, unless ``category`` forces one)."""
    rng = stable_rng("lab-character", int(character_id))
    cat = category or CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    if cat not in CATEGORIES:
        raise ValueError(f"unknown character category {cat!r}; expected one of {CATEGORIES}")
    u = rng.uniform
    if cat == "human":
        head_r, aspect = u(0.058, 0.07), u(1.12, 1.25)
        legs, arm_r, leg_r = u(0.46, 0.52), u(0.022, 0.032), u(0.03, 0.045)
        shoulder, hip, hand = u(0.095, 0.13), u(0.055, 0.08), u(0.055, 0.065)
        skin = _jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 0.03)
        outline_w, eye, mouth = 0.004, u(0.22, 0.27), u(0.42, 0.5)
    elif cat == "cartoon":
        head_r, aspect = u(0.12, 0.145), u(0.9, 1.05)
        legs, arm_r, leg_r = u(0.3, 0.36), u(0.03, 0.042), u(0.04, 0.055)
        shoulder, hip, hand = u(0.09, 0.12), u(0.065, 0.09), u(0.06, 0.075)
        pool = SKIN_TONES + FANTASY_SKIN
        skin = _jitter(rng, pool[int(rng.integers(len(pool)))], 0.03)
        outline_w, eye, mouth = 0.008, u(0.3, 0.38), u(0.45, 0.6)
    else:
        head_r, aspect = u(0.075, 0.095), u(0.95, 1.15)
        legs, arm_r, leg_r = u(0.4, 0.47), u(0.028, 0.038), u(0.035, 0.05)
        shoulder, hip, hand = u(0.12, 0.15), u(0.07, 0.09), u(0.06, 0.075)
        skin = _random_color(rng, sat=(0.0, 0.25), val=(0.55, 0.85))  # the metal
        outline_w, eye, mouth = 0.005, u(0.26, 0.32), u(0.4, 0.55)
    shin_frac = u(0.46, 0.52)
    ankle = 0.035
    thigh, shin = (legs - ankle) * (1 - shin_frac), (legs - ankle) * shin_frac
    head_h = 2 * head_r * aspect
    neck = u(0.02, 0.035) if cat != "cartoon" else u(0.01, 0.02)
    torso = max(1.0 - legs - head_h - neck, 0.18)
    arm_total = u(0.38, 0.44) * (torso + legs) / 0.8
    upper = arm_total * u(0.52, 0.56)
    robot = cat == "robot"
    top = _random_color(rng) if not robot else _random_color(rng, sat=(0.5, 0.95), val=(0.5, 0.95))
    bottom_kind = ("pants", "shorts", "skirt")[int(rng.choice(3, p=[0.5, 0.25, 0.25]))] if not robot else "pants"
    hair_p = [0.3, 0.25, 0.2, 0.1, 0.15]  # short, long, bangs, bald, bun
    hair_style = HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=hair_p))] if not robot else "bald"
    return CharacterSpec(
        character_id=int(character_id),
        category=cat,
        head_radius=float(head_r),
        head_aspect=float(aspect),
        neck_length=float(neck),
        torso_length=float(torso),
        shoulder_half=float(shoulder),
        hip_half=float(hip),
        torso_depth=float(shoulder * u(0.9, 1.2)),
        upper_arm=float(upper),
        forearm=float(arm_total - upper),
        thigh=float(thigh),
        shin=float(shin),
        ankle_height=ankle,
        foot_length=float(u(0.06, 0.08) if cat != "cartoon" else u(0.07, 0.09)),
        arm_radius=float(arm_r),
        leg_radius=float(leg_r),
        hand_size=float(hand),
        skin=skin,
        hair_color=HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))],
        hair_style=hair_style,
        top_color=top,
        top_color2=_contrast(rng, top),
        top_pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        sleeves=float(rng.choice([0.0, 0.35, 0.6, 1.0])) if not robot else 1.0,
        bottom=bottom_kind,
        bottom_color=_random_color(rng, sat=(0.2, 0.8), val=(0.15, 0.7)),
        shoe_color=_random_color(rng, sat=(0.0, 0.8), val=(0.1, 0.9)),
        accent=_random_color(rng, sat=(0.7, 1.0), val=(0.8, 1.0)),
        eye_color=_random_color(rng, sat=(0.4, 0.9), val=(0.2, 0.6)) if not robot else (0.3, 1.0, 1.0),
        eye_size=float(eye),
        mouth_width=float(mouth),
        outline=(0.08, 0.07, 0.1) if cat == "cartoon" else (0.2, 0.18, 0.2),
        outline_width=float(outline_w),
    )
