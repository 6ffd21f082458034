"""Draw one frame of a character from its :class:`~.skeleton.Rig` (painter's algorithm).

Every body part is a primitive with a depth key; primitives are painted in key order so the
layering is consistent from frame to frame: legs behind the pelvis, pelvis behind the torso, arms in
front of the torso unless turned away (their key follows their depth), the head group (ears,
head with hair, face features) after the torso, long hair in front of everything only when the
character shows its back. Clothing patterns are computed in each part's own coordinates, so
stripes and dots move with the body.
"""

from __future__ import annotations

import numpy as np

from ..pose.keypoints import HAND_EDGES
from . import raster
from .character import CharacterSpec
from .raster import Canvas, Field
from .skeleton import SIDES, Rig


class View:
    """The clip's camera: body units -> pixels (``x = cx + scale·X``, ``y = ground_y - scale·Y``)."""

    def __init__(self, scale: float, cx: float, ground_y: float):
        self.scale, self.cx, self.ground_y = float(scale), float(cx), float(ground_y)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        return np.stack([self.cx + self.scale * p[..., 0], self.ground_y - self.scale * p[..., 1]], -1)


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """1 where the second colour shows, for part coordinates ``u`` (along) and ``v`` (across) in body units."""
    if kind == "hstripes":
        return (np.floor(u / period) % 2).astype(np.float32)
    if kind == "vstripes":
        return (np.floor(v / period + 0.5) % 2).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u / period) + np.floor(v / period + 0.5)) % 2).astype(np.float32)
    if kind == "dots":
        fu, fv = (u / period) % 1 - 0.5, (v / period + 0.5) % 1 - 0.5
        return np.clip((0.3 - np.sqrt(fu * fu + fv * fv)) * 8, 0, 1).astype(np.float32)
    return np.zeros_like(u, np.float32)


def _cloth(ch: CharacterSpec, f: Field, length: float, width: float, shade: float, cover=None) -> np.ndarray:
    """Per-pixel colour of a clothed part (top colours + pattern), cylinder-shaded."""
    m = _pattern(ch.top_pattern, f.t * length, f.s * width, 0.035)[..., None]
    col = np.asarray(ch.top_color) * (1 - m) + np.asarray(ch.top_color2) * m
    if cover is not None:  # skin where the sleeve ends
        c = cover[..., None]
        col = col * c + np.asarray(ch.skin) * (1 - c)
    return col * (shade * (1 - 0.18 * f.s * f.s))[..., None]


def _solid(color, f: Field, shade: float, curve: float = 0.18) -> np.ndarray:
    s = f.s if f.s is not None else 0.0
    return np.asarray(color)[None, None] * (shade * (1 - curve * s * s))[..., None]


def _limb(canvas, ch, a, b, ra, rb):
    if ch.category == "robot":
        return raster.box_segment(canvas, a, b, max(ra, rb), corner=0.35 * ra, extend=0.5 * ra)
    return raster.capsule(canvas, a, b, ra, rb)


def draw_character(canvas: Canvas, ch: CharacterSpec, rig: Rig, i: int, view: View) -> None:
    """Paint frame ``i`` of ``rig`` onto ``canvas``."""
    S = view.scale
    ow = max(ch.outline_width * S, 0.45)
    outline = ch.outline
    P = view  # noqa: N806 - projection shorthand
    items: list[tuple[float, int, object]] = []

    def add(key, fn):
        items.append((key, len(items), fn))

    yaw_fwd = rig.yaw_rot[i, 2, 2]  # z of the hips' facing direction: 1 facing, -1 back
    body_fwd = rig.body_rot[i, 2, 2]
    head_fwd = rig.head_rot[i, 2, 2]
    pelvis = 0.5 * (rig.hips[i, 0] + rig.hips[i, 1])
    # shadow on the ground
    feet = P(rig.ankles[i])
    shadow = raster.ellipse(canvas, (feet[:, 0].mean(), view.ground_y), (ch.hip_half + 0.09) * S, 0.022 * S + 0.6)
    canvas.paint(shadow, (0.0, 0.0, 0.0), mask=False, opacity=0.22)

    # --- legs ------------------------------------------------------------------------------
    leg_r = ch.leg_radius * S
    for k in range(2):
        zn = float(np.clip((rig.knees[i, k, 2] + rig.hips[i, k, 2] - 2 * pelvis[2]) / 2 / ch.hip_half, -1.5, 1.5))
        shade = 0.93 + 0.07 * float(np.clip(zn, -1, 1))

        def legs(k=k, shade=shade):
            hip, knee, ankle, toe = (P(rig.hips[i, k]), P(rig.knees[i, k]), P(rig.ankles[i, k]), P(rig.toes[i, k]))
            thigh = _limb(canvas, ch, hip, knee, leg_r, leg_r * 0.9)
            shin = _limb(canvas, ch, knee, ankle, leg_r * 0.9, leg_r * 0.75)
            pants = ch.bottom == "pants"
            shorts = ch.bottom == "shorts"
            for f, is_thigh in ((thigh, True), (shin, False)):
                if f is None:
                    continue
                if pants or (shorts and is_thigh):
                    cover = None if pants else (f.t < 0.55).astype(np.float32)
                    col = _solid(ch.bottom_color, f, shade)
                    if cover is not None:
                        col = col * cover[..., None] + _solid(ch.skin, f, shade) * (1 - cover[..., None])
                else:
                    col = _solid(ch.skin, f, shade)
                canvas.paint(f, col, outline, ow)
            foot_r = 0.6 * leg_r if ch.category != "cartoon" else 0.8 * leg_r
            if ch.category == "robot":
                foot = raster.box_segment(canvas, ankle + (0, 0.3 * foot_r), toe, foot_r, corner=0.3 * foot_r, extend=foot_r * 0.6)
            else:
                foot = raster.capsule(canvas, ankle + (0, 0.4 * foot_r), toe, foot_r, foot_r * 0.9)
            canvas.paint(foot, _solid(ch.shoe_color, foot, shade) if foot is not None else None, outline, ow)

        add(1.2 * zn - 0.5, legs)

    # --- pelvis / skirt ----------------------------------------------------------------------
    def hips_block():
        a, b = P(rig.hips[i, 0]), P(rig.hips[i, 1])
        up = P(pelvis + np.array([0, 0.03, 0])) - P(pelvis)
        f = _limb(canvas, ch, a + up, b + up, leg_r * 1.2, leg_r * 1.2)
        if f is not None:
            color = ch.bottom_color if ch.bottom != "skirt" else ch.top_color
            canvas.paint(f, _solid(color, f, 1.0, 0.0), outline, ow)

    add(0.9, hips_block)
    aw, ad = abs(yaw_fwd), abs(rig.yaw_rot[i, 0, 2])  # |cos|, |sin| of the hips' yaw

    if ch.bottom == "skirt":
        def skirt():
            top = P(pelvis + np.array([0, 0.04, 0]))
            knees = P(rig.knees[i]).mean(0)
            bottom = top * 0.2 + knees * 0.8 + np.array([0, 0.1 * ch.thigh * S])
            wt = (aw * (ch.hip_half + ch.leg_radius) + ad * ch.torso_depth * 0.5) * S
            wb = (aw * (ch.hip_half + 0.1) + ad * (ch.torso_depth * 0.5 + 0.06)) * S
            poly = [top + (-wt, 0), top + (wt, 0), bottom + (wb, 0), bottom + (-wb, 0)]
            f = raster.polygon(canvas, poly)
            canvas.paint(f, ch.bottom_color, outline, ow)

        add(0.92, skirt)

    # --- torso ----------------------------------------------------------------------------------
    bw, bd = abs(body_fwd), abs(rig.body_rot[i, 0, 2])

    def torso():
        top = P(rig.neck[i] + rig.body_rot[i] @ np.array([0, -0.015, 0]))
        bot = P(pelvis + np.array([0, 0.035, 0]))
        axis = bot - top
        length = float(np.hypot(*axis)) + 1e-6
        u = axis / length
        n = np.array([-u[1], u[0]])
        ws = (bw * ch.shoulder_half + bd * ch.torso_depth * 0.5) * S
        wh = (bw * ch.hip_half * 1.15 + bd * ch.torso_depth * 0.45) * S
        rc = min(ws, wh, 0.045 * S) * (0.35 if ch.category == "robot" else 1.0)
        if ch.category == "robot":
            wh = ws * 0.85
        poly = [top + n * (ws - rc) + u * rc, top - n * (ws - rc) + u * rc,
                bot - n * (wh - rc) - u * rc * 0.5, bot + n * (wh - rc) - u * rc * 0.5]
        f = raster.polygon(canvas, poly)
        if f is None:
            return
        f.d = f.d - rc
        g = canvas.grid(np.array([f.x0, f.y0]), np.array([f.x1 - 1, f.y1 - 1]), pad=0)
        _, xs, ys = g
        rel_x, rel_y = xs - top[0], ys - top[1]
        f.t = (rel_x * u[0] + rel_y * u[1]) / length
        width = ws + (wh - ws) * np.clip(f.t, 0, 1)
        f.s = np.clip((rel_x * n[0] + rel_y * n[1]) / np.maximum(width, 1e-3), -1, 1)
        canvas.paint(f, _cloth(ch, f, ch.torso_length, ch.shoulder_half, 1.0), outline, ow)
        if body_fwd > 0.2:  # details on the chest, seen only from the front
            R = rig.body_rot[i]  # noqa: N806
            z = ch.torso_depth * 0.5 * 0.9
            neck = rig.neck[i]
            if ch.category == "robot":
                q = [neck + R @ np.array(v) for v in ((-0.5 * ch.shoulder_half, -0.06, z), (0.5 * ch.shoulder_half, -0.06, z),
                                                      (0.5 * ch.shoulder_half, -0.13, z), (-0.5 * ch.shoulder_half, -0.13, z))]
                canvas.paint(raster.polygon(canvas, P(np.array(q))), ch.accent, outline, ow * 0.8)
                light = raster.ellipse(canvas, P(neck + R @ np.array([0.0, -0.2, z])), 0.018 * S + 0.5, 0.018 * S + 0.5)
                canvas.paint(light, ch.top_color2, outline, ow * 0.6)
            else:
                w = 0.33 * ch.shoulder_half
                q = [neck + R @ np.array(v) for v in ((-w, 0.0, z), (w, 0.0, z), (0.0, -0.07, z))]
                canvas.paint(raster.polygon(canvas, P(np.array(q))), ch.skin, outline, ow * 0.7)
                if ch.top_pattern == "plain":
                    logo = raster.ellipse(canvas, P(neck + R @ np.array([0.0, -0.12, z])), 0.025 * S + 0.4, 0.025 * S + 0.4)
                    canvas.paint(logo, ch.top_color2, None)

    add(0.95, torso)

    # --- neck -------------------------------------------------------------------------------------
    def neck():
        a = P(rig.neck[i] + rig.body_rot[i] @ np.array([0, -0.02, 0]))
        b = P(rig.head[i] - rig.head_rot[i] @ np.array([0, 0.5 * ch.head_radius * ch.head_aspect, 0]))
        r = 0.34 * ch.head_radius * S if ch.category != "cartoon" else 0.2 * ch.head_radius * S
        f = _limb(canvas, ch, a, b, r, r)
        canvas.paint(f, _solid(ch.skin, f, 0.9) if f is not None else None, outline, ow)

    add(0.97, neck)

    # --- arms -------------------------------------------------------------------------------------
    arm_r = ch.arm_radius * S
    for k in range(2):
        zc = (rig.shoulders[i, k, 2] + rig.elbows[i, k, 2] + rig.wrists[i, k, 2]) / 3 - rig.neck[i, 2]
        zn = float(np.clip(zc / ch.shoulder_half, -2.0, 2.5))
        shade = 0.93 + 0.07 * float(np.clip(zn, -1, 1))

        def arm(k=k, shade=shade):
            sh, el, wr = P(rig.shoulders[i, k]), P(rig.elbows[i, k]), P(rig.wrists[i, k])
            up = _limb(canvas, ch, sh, el, arm_r, arm_r * 0.9)
            lo = _limb(canvas, ch, el, wr, arm_r * 0.9, arm_r * 0.75)
            for f, start in ((up, 0.0), (lo, 0.5)):
                if f is None:
                    continue
                cover = np.clip((ch.sleeves - (start + 0.5 * f.t)) * 40, 0, 1).astype(np.float32)
                canvas.paint(f, _cloth(ch, f, ch.upper_arm, ch.arm_radius, shade, cover), outline, ow)
            _draw_hand(canvas, ch, P(rig.hands[i, k]), shade, outline, ow * 0.8, S)

        add(1.3 + 1.2 * zn, arm)

    # --- head group -------------------------------------------------------------------------------
    add(1.5, lambda: _draw_head(canvas, ch, rig, i, view, outline, ow))
    if ch.hair_style == "long":
        def long_hair():
            top = P(rig.head[i] + rig.head_rot[i] @ np.array([0, 0.1 * ch.head_radius, -0.5 * ch.head_radius]))
            bot = P(rig.neck[i] + rig.body_rot[i] @ np.array([0, -0.1, -0.5 * ch.torso_depth]))
            f = raster.capsule(canvas, top, bot, 1.0 * ch.head_radius * S, 0.8 * ch.head_radius * S)
            canvas.paint(f, _solid(ch.hair_color, f, 0.9) if f is not None else None, outline, ow)

        add(-3.0 * head_fwd + 0.2, long_hair)
    for _, _, fn in sorted(items, key=lambda x: (x[0], x[1])):
        fn()


def _draw_hand(canvas, ch, pts, shade, outline, ow, S):  # noqa: N803
    r = max(0.1 * ch.hand_size * S, 0.35)
    palm = raster.polygon(canvas, pts[[0, 1, 5, 9, 13, 17]])
    if palm is not None:
        palm.d = palm.d - r * 0.8
    edges = np.array([e for e in HAND_EDGES if not (e[0] == 0 and e[1] != 1)])  # the palm covers wrist -> bases
    bones = raster.capsules(canvas, pts[edges[:, 0]], pts[edges[:, 1]],
                            np.where(edges[:, 0] <= 1, 1.1 * r, 0.9 * r), 0.8 * r)
    f = raster.union(palm, bones)
    color = ch.skin if ch.category != "robot" else ch.accent
    canvas.paint(f, np.asarray(color) * shade, outline, ow)


def _draw_head(canvas: Canvas, ch: CharacterSpec, rig: Rig, i: int, view: View, outline, ow) -> None:
    S, P = view.scale, view  # noqa: N806
    R = rig.head_rot[i]  # noqa: N806
    c = P(rig.head[i])
    rx, ry = ch.head_radius * S, ch.head_radius * ch.head_aspect * S
    up2 = P(rig.head[i] + R @ np.array([0, 1.0, 0])) - c
    angle = float(np.arctan2(up2[0], -up2[1]))  # image-plane roll of the head
    robot = ch.category == "robot"
    # ears (behind the head unless turned towards the viewer)
    for k in range(len(SIDES)):
        facing = rig.ear_facing[i, k]
        if robot:
            ear = raster.ellipse(canvas, P(rig.ears[i, k]), 0.22 * rx + 0.3, 0.3 * ry + 0.3, angle)
            col = ch.accent
        else:
            size = 0.3 if ch.category == "cartoon" else 0.2
            ear = raster.ellipse(canvas, P(rig.ears[i, k]), size * rx + 0.3, 1.5 * size * rx + 0.3, angle)
            col = np.asarray(ch.skin) * 0.95
        if facing < 0.75:
            canvas.paint(ear, col, outline, ow)
    # hair volume around the head
    style = ch.hair_style
    if not robot and style != "bald":
        vol = {"short": 1.1, "long": 1.12, "bangs": 1.12, "bun": 1.08}[style] * (1.12 if ch.category == "cartoon" else 1.0)
        f = raster.ellipse(canvas, c + np.array([np.sin(angle), -np.cos(angle)]) * 0.06 * ry, vol * rx, vol * ry, angle)
        if f is not None:
            g = canvas.grid(np.array([f.x0, f.y0]), np.array([f.x1 - 1, f.y1 - 1]), pad=0)
            _, xs, ys = g
            dx, dy = xs - c[0], ys - c[1]
            norm = np.sqrt(dx * dx + dy * dy) + 1e-6
            view_dir = np.stack(np.broadcast_arrays(dx / norm, -dy / norm, np.zeros_like(dx + dy)), -1)
            local_up = view_dir @ R[:, 1]
            f.d = np.where(local_up > -0.05, f.d, 1e3)
            canvas.paint(f, ch.hair_color, outline, ow)
        if style == "bun":
            bun = P(rig.head[i] + R @ np.array([0, 0.75 * ch.head_radius * ch.head_aspect, -0.6 * ch.head_radius]))
            canvas.paint(raster.ellipse(canvas, bun, 0.45 * rx, 0.45 * rx), ch.hair_color, outline, ow)
    # the head itself, hair decided per pixel from the surface normal in head coordinates
    if robot:
        half_w = (abs(R[2, 2]) * 0.95 + abs(R[0, 2]) * 0.85) * rx
        axis = np.array([np.sin(angle), -np.cos(angle)])
        f = raster.box_segment(canvas, c - axis * ry * 0.5, c + axis * ry * 0.5, half_w, corner=0.25 * rx, extend=0.5 * ry)
        if f is not None:
            canvas.paint(f, _solid(ch.skin, f, 1.0, 0.1), outline, ow)
            if R[2, 2] > 0.1:  # visor
                e = rig.face[i, 36:48]
                lo, hi = P(e).min(0), P(e).max(0)
                visor = raster.box_segment(canvas, ((lo[0] + hi[0]) / 2 - (hi[0] - lo[0]) / 2, (lo[1] + hi[1]) / 2),
                                           ((lo[0] + hi[0]) / 2 + (hi[0] - lo[0]) / 2, (lo[1] + hi[1]) / 2),
                                           0.2 * ry, corner=0.1 * ry, extend=0.12 * rx)
                canvas.paint(visor, (0.08, 0.1, 0.14), None)
        top = P(rig.head[i] + R @ np.array([0, 1.05 * ch.head_radius * ch.head_aspect, 0]))
        tip = P(rig.head[i] + R @ np.array([0, 1.6 * ch.head_radius * ch.head_aspect, 0]))
        canvas.paint(raster.capsule(canvas, top, tip, 0.05 * rx + 0.3), (0.3, 0.3, 0.32), None)
        canvas.paint(raster.ellipse(canvas, tip, 0.14 * rx + 0.4, 0.14 * rx + 0.4), ch.accent, outline, ow)
    else:
        f = raster.ellipse(canvas, c, rx, ry, angle)
        if f is not None:
            lx, ly = f.s, f.t  # normalised ellipse coordinates (x right, y down)
            nz = np.sqrt(np.clip(1 - lx * lx - ly * ly, 0, 1))
            nv = np.stack([lx, -ly, nz], -1)  # view-space normal
            nl = nv @ R  # head-local normal (R is head -> world)
            col = np.broadcast_to(np.asarray(ch.skin, np.float32), nl.shape).copy()
            if style != "bald":
                front, back = {"short": (0.5, -0.25), "long": (0.45, -0.9), "bangs": (0.22, -0.6),
                               "bun": (0.5, -0.4)}[style]
                thresh = (front + back) / 2 + (front - back) / 2 * nl[..., 2]
                hair = np.clip((nl[..., 1] - thresh) * 12, 0, 1)[..., None]
                col = col * (1 - hair) + np.asarray(ch.hair_color) * hair
            col *= (0.82 + 0.18 * nz)[..., None]
            canvas.paint(f, col, outline, ow)
    for k in range(2):
        if rig.ear_facing[i, k] >= 0.75:
            size = 0.3 if ch.category == "cartoon" else 0.2
            ear = raster.ellipse(canvas, P(rig.ears[i, k]), size * rx + 0.3, 1.5 * size * rx + 0.3, angle)
            canvas.paint(ear, ch.accent if robot else np.asarray(ch.skin) * 0.95, outline, ow)
    _draw_face(canvas, ch, rig, i, view, angle)


def _polyline(canvas, pts, r, color):
    canvas.paint(raster.capsules(canvas, pts[:-1], pts[1:], r, r), color, None)


def _draw_face(canvas, ch, rig, i, view, angle):
    S, P = view.scale, view  # noqa: N806
    vis = rig.face_visible[i]
    pts = P(rig.face[i])
    r = ch.head_radius * S
    line = max(0.05 * r, 0.45)
    dark = (0.1, 0.07, 0.08)
    robot, cartoon = ch.category == "robot", ch.category == "cartoon"
    for base in (36, 42):
        if not vis[base:base + 6].all():
            continue
        eye = pts[base:base + 6]
        white = raster.polygon(canvas, eye)
        if robot:
            canvas.paint(white, ch.eye_color, None)
            continue
        canvas.paint(white, (0.97, 0.97, 0.97), None)
        center = eye.mean(0)
        pr = 0.3 * np.hypot(*(eye[3] - eye[0])) * (1.25 if cartoon else 1.0)
        pupil = raster.intersect_coverage(raster.ellipse(canvas, center, pr, pr), white)
        canvas.paint(pupil, ch.eye_color, None)
        inner = raster.intersect_coverage(raster.ellipse(canvas, center, pr * 0.5, pr * 0.5), white)
        canvas.paint(inner, (0.05, 0.05, 0.05), None)
        if cartoon:
            glint = raster.ellipse(canvas, center + (-0.3 * pr, -0.35 * pr), 0.25 * pr + 0.2, 0.25 * pr + 0.2)
            canvas.paint(raster.intersect_coverage(glint, white), (1.0, 1.0, 1.0), None)
        _polyline(canvas, eye[[0, 1, 2, 3]], line * (1.4 if cartoon else 1.0), dark)
    if not robot:
        for a in (17, 22):
            if vis[a:a + 5].all():
                _polyline(canvas, pts[a:a + 5], line * (1.6 if cartoon else 1.2), np.asarray(ch.hair_color) * 0.8)
        if vis[29:31].all():
            if cartoon:
                canvas.paint(raster.ellipse(canvas, pts[30], 0.1 * r + 0.3, 0.08 * r + 0.3), np.asarray(ch.skin) * 0.8, None)
            else:
                _polyline(canvas, pts[[28, 30, 32]], line * 0.8, np.asarray(ch.skin) * 0.7)
    if vis[48:68].all():
        lip = (0.15, 0.15, 0.17) if robot else ((0.55, 0.12, 0.15) if cartoon else np.asarray(ch.skin) * 0.6 + np.array([0.3, 0.0, 0.02]))
        canvas.paint(raster.polygon(canvas, pts[48:60]), lip, None)
        canvas.paint(raster.polygon(canvas, pts[60:68]), (0.25, 0.04, 0.06) if not robot else (0.9, 0.5, 0.1), None)
        _polyline(canvas, pts[[48, 60, 61, 62, 63, 64, 54]], line * 0.7, dark)
