"""Static backgrounds: plain, gradients, stripes, checker, dots, smooth noise, wall + floor.

Sizes of patterns are fractions of the frame, so the same clip rendered at another size looks alike.
"""

from __future__ import annotations

import colorsys

import numpy as np

BACKGROUNDS = ("plain", "gradient", "radial", "stripes", "checker", "dots", "noise", "floor")
# Repeating fine patterns (a period of 6-20 % of the frame): static texture that copying the reference
# reproduces exactly and a model has to rebuild from the reference; the others are smooth.
PATTERNED_BACKGROUNDS = ("stripes", "checker", "dots")


def _color(rng, sat=(0.05, 0.5), val=(0.45, 0.97)):
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def sample_background(rng: np.random.Generator) -> dict:
    """Parameters of a random background (kind, colours, angle, period)."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    a = _color(rng)
    b = np.clip(a + rng.uniform(-0.3, 0.3, 3), 0, 1).astype(np.float32) if rng.uniform() < 0.6 else _color(rng)
    return {
        "kind": kind,
        "a": a.tolist(),
        "b": b.tolist(),
        "angle": float(rng.uniform(0, np.pi)),
        "period": float(rng.uniform(0.06, 0.2)),
        "horizon": float(rng.uniform(0.55, 0.8)),
        "seed": int(rng.integers(1 << 30)),
    }


def render_background(params: dict, width: int, height: int) -> np.ndarray:
    """The background ``[height, width, 3]`` float32 in [0, 1]."""
    kind = params["kind"]
    a, b = np.asarray(params["a"], np.float32), np.asarray(params["b"], np.float32)
    scale = float(min(width, height))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    x, y = x / scale, y / scale
    ca, sa = np.cos(params["angle"]), np.sin(params["angle"])
    along = x * ca + y * sa
    p = params["period"]
    if kind == "plain":
        m = np.zeros_like(x)
    elif kind == "gradient":
        m = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    elif kind == "radial":
        cx, cy = width / scale / 2, height / scale / 2
        m = np.clip(np.hypot(x - cx, y - cy) / 0.75, 0, 1)
    elif kind == "stripes":
        m = 0.5 + 0.5 * np.tanh(6 * np.sin(2 * np.pi * along / p))
        m *= 0.5
    elif kind == "checker":
        m = ((np.floor(x / p) + np.floor(y / p)) % 2) * 0.4
    elif kind == "dots":
        fx, fy = (x / p) % 1 - 0.5, (y / p) % 1 - 0.5
        m = np.clip((0.25 - np.hypot(fx, fy)) * 20, 0, 1) * 0.6
    elif kind == "noise":
        rng = np.random.default_rng(params["seed"])
        coarse = rng.uniform(0, 1, (6, 6)).astype(np.float32)
        gy = np.linspace(0, 5, height, dtype=np.float32)
        gx = np.linspace(0, 5, width, dtype=np.float32)
        i0, j0 = np.minimum(gy.astype(int), 4), np.minimum(gx.astype(int), 4)
        fy, fx = (gy - i0)[:, None], (gx - j0)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
        c00, c01 = coarse[i0][:, j0], coarse[i0][:, j0 + 1]
        c10, c11 = coarse[i0 + 1][:, j0], coarse[i0 + 1][:, j0 + 1]
        m = (c00 * (1 - fx) + c01 * fx) * (1 - fy) + (c10 * (1 - fx) + c11 * fx) * fy
    elif kind == "floor":
        h = params["horizon"] * height / scale
        m = (y > h).astype(np.float32) * (0.8 + 0.2 * np.clip((y - h) * 3, 0, 1))
    else:
        raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUNDS}")
    m = m[..., None]
    return (a * (1 - m) + b * m).astype(np.float32)
