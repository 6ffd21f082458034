"""Retarget a driving skeleton to the reference character (bone-length alignment).

The denoiser draws the character where the pose map puts it and as big as the pose map says, so a
driving skeleton with other proportions or another framing than the reference image makes the
result stretch or "ghost". :func:`align_pose` keeps the driving motion (every bone's direction in
every frame) and gives it the reference's proportions and placement:

1. **Bone lengths.** The body is a tree rooted at the neck (:data:`BODY_PARENT`). A bone's length in
   the driving video is its 90th percentile over the frames where both ends are found (a 2-D
   projection only shortens a bone, and a percentile ignores frames where a limb is foreshortened,
   occluded or mis-detected); in the reference it is its length in the single reference pose. The
   two sides of the body share one length (the longer side's), so a limb that is hidden on one side
   takes its partner's.
2. **Scale.** One global scale ``s`` = summed reference lengths / summed driving lengths over the
   bones found in both. Each bone's ratio ``r = reference / driving`` is clipped to ``[s/2, 2s]``;
   a bone missing on either side uses ``s``.
3. **Per frame.** The neck follows the driving neck's trajectory scaled by ``s`` and anchored so that
   at the anchor frame (the first frame where the neck is found) it sits on the reference's neck;
   every other point is placed from its parent: ``q[c] = q[parent] + r_c (p[c] - p[parent])``, so
   joint angles are kept exactly and a fully visible bone gets the reference's length. Hands scale
   about the body wrist (hand-size ratio, else the forearm's), the face about the nose (face-size
   ratio, else the head bones').
4. **No pose in the reference** (a stylised or non-human character) → whole-body box fit: the
   character's bounding box is found against the image background (:func:`find_character_box`) and
   the driving skeleton, proportions unchanged, is scaled uniformly and centred into it; the report
   carries a warning. A reference pose can also be supplied as a keypoints file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .keypoints import BODY_NAMES, HAND_EDGES, PoseSequence
from .render import THRESHOLD

# Parent of every body point (OpenPose-18) in the retargeting tree; the neck (1) is the root.
BODY_PARENT = {0: 1, 2: 1, 5: 1, 8: 1, 11: 1, 3: 2, 4: 3, 6: 5, 7: 6, 9: 8, 10: 9, 12: 11, 13: 12,
               14: 0, 15: 0, 16: 14, 17: 15}  # fmt: skip
ROOT = 1
# parents before children
BODY_ORDER = (0, 2, 5, 8, 11, 3, 6, 9, 12, 4, 7, 10, 13, 14, 15, 16, 17)
# right-side point -> its left-side partner (a bone is named by its child point)
MIRROR = {2: 5, 3: 6, 4: 7, 8: 11, 9: 12, 10: 13, 14: 15, 16: 17}
MIRROR.update({v: k for k, v in list(MIRROR.items())})
HAND_ROOT = (7, 4)  # body wrist of hands[0] (left) and hands[1] (right)
FOREARM = (7, 4)  # bone (named by its child) giving the hand's fallback ratio
HEAD_BONES = (14, 15)  # nose -> eyes: the face's fallback ratio
PERCENTILE = 90.0


@dataclass
class AlignReport:
    """How a sequence was aligned: ``method`` is ``"bones"`` or ``"box"``; ``ratios`` maps each
    body bone (named by its child point) to its length ratio; ``warnings`` are meant for the user
    (not part of ``str()``: callers show them as warnings)."""

    method: str
    scale: float
    ratios: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.method == "box":
            return f"align: whole-body box fit, scale {self.scale:.3f}"
        return f"align: bone-length retargeting to the reference pose, global scale {self.scale:.3f}"

    def to_dict(self) -> dict:
        return {"method": self.method, "scale": round(self.scale, 5),
                "ratios": {k: round(v, 5) for k, v in self.ratios.items()}, "warnings": self.warnings}  # fmt: skip


def _bone_lengths(body: np.ndarray, threshold: float) -> np.ndarray:
    """``body`` ``[T, 18, 3]`` -> ``[T, 18]`` length of the bone ending at each point (NaN where an
    end is not found; the root's entry is NaN)."""
    out = np.full(body.shape[:2], np.nan, np.float64)
    ok = body[..., 2] >= threshold
    for c, p in BODY_PARENT.items():
        both = ok[:, c] & ok[:, p]
        out[both, c] = np.linalg.norm(body[both, c, :2] - body[both, p, :2], axis=-1)
    return out


def _symmetric(lengths: np.ndarray) -> np.ndarray:
    """Give both sides of the body the longer side's length (NaN only if both are missing)."""
    out = lengths.copy()
    for a, b in MIRROR.items():
        out[a] = np.nanmax([lengths[a], lengths[b]]) if not np.isnan([lengths[a], lengths[b]]).all() else np.nan
    return out


def canonical_lengths(body: np.ndarray, threshold: float = THRESHOLD, percentile: float = PERCENTILE) -> np.ndarray:
    """Per-bone length ``[18]`` (see the module docstring) of ``body`` ``[T, 18, 3]``."""
    lengths = _bone_lengths(np.asarray(body, np.float32), threshold)
    canon = np.full(lengths.shape[1], np.nan)
    for c in BODY_PARENT:
        vals = lengths[:, c][~np.isnan(lengths[:, c])]
        if len(vals):
            canon[c] = np.percentile(vals, percentile)
    return _symmetric(canon)


def _hand_size(hands: np.ndarray, threshold: float, percentile: float) -> float:
    """Summed bone length of fully found hands ``[T, 21, 3]`` (percentile over frames; NaN if none)."""
    sizes = []
    for hand in hands:
        if (hand[:, 2] >= threshold).all():
            sizes.append(sum(np.linalg.norm(hand[a, :2] - hand[b, :2]) for a, b in HAND_EDGES))
    return float(np.percentile(sizes, percentile)) if sizes else float("nan")


def _face_size(face: np.ndarray, threshold: float, percentile: float) -> float:
    """Jaw width (points 0-16) plus nose-bridge-to-chin height (27-8), percentile over frames."""
    ok = (face[:, [0, 16, 27, 8], 2] >= threshold).all(-1)
    if not ok.any():
        return float("nan")
    f = face[ok]
    size = np.linalg.norm(f[:, 0, :2] - f[:, 16, :2], axis=-1) + np.linalg.norm(f[:, 27, :2] - f[:, 8, :2], axis=-1)
    return float(np.percentile(size, percentile))


def _ratio(ref: float, drv: float, scale: float) -> float:
    if np.isnan(ref) or np.isnan(drv) or drv <= 0:
        return scale
    return float(np.clip(ref / drv, scale / 2, scale * 2))


def _first_found(points: np.ndarray, threshold: float) -> int | None:
    idx = np.flatnonzero(points[:, 2] >= threshold)
    return int(idx[0]) if len(idx) else None


def _retarget(
    drv: PoseSequence,
    ratios: np.ndarray,
    hand_ratios: tuple[float, float],
    face_ratio: float,
    scale: float,
    target_root: np.ndarray,
    source_root: np.ndarray,
    width: int,
    height: int,
    threshold: float,
) -> PoseSequence:
    """Place every point of ``drv`` by the tree walk of the module docstring."""

    def glob(p):  # the global similarity: driving root at the anchor frame -> target root
        return target_root + scale * (p - source_root)

    body = drv.body.copy()
    hands = drv.hands.copy()
    face = drv.face.copy()
    for t in range(len(drv)):
        src = drv.body[t]
        ok = src[:, 2] >= threshold
        q = np.zeros((len(src), 2), np.float64)
        q[ROOT] = glob(src[ROOT, :2])
        placed = {ROOT} if ok[ROOT] else set()
        for c in BODY_ORDER:
            a = BODY_PARENT[c]
            while a not in placed and a != ROOT:  # nearest found ancestor
                a = BODY_PARENT[a]
            if ok[c] and a in placed:
                q[c] = q[a] + ratios[c] * (src[c, :2] - src[a, :2])
                placed.add(c)
            else:
                q[c] = glob(src[c, :2])
        body[t, :, :2] = q
        for k in range(2):
            wrist = HAND_ROOT[k]
            pts = drv.hands[t, k, :, :2]
            if ok[wrist] and wrist in placed:
                hands[t, k, :, :2] = q[wrist] + hand_ratios[k] * (pts - src[wrist, :2])
            else:
                hands[t, k, :, :2] = glob(pts)
        if ok[0] and 0 in placed:
            face[t, :, :2] = q[0] + face_ratio * (drv.face[t, :, :2] - src[0, :2])
        else:
            face[t, :, :2] = glob(drv.face[t, :, :2])
    for arr in (body, hands, face):
        arr[..., :2][arr[..., 2] <= 0] = 0.0
    return PoseSequence(body, hands, face, width, height, drv.fps, drv.detected.copy(), dict(drv.meta))


def align_to_pose(
    driving: PoseSequence,
    reference: PoseSequence,
    threshold: float = THRESHOLD,
) -> tuple[PoseSequence, AlignReport]:
    """Bone-length retargeting of ``driving`` to ``reference`` (its first frame with a neck), output in
    the reference's frame size. Raises :class:`InputError` if the two share no bone."""
    ref_t = _first_found(reference.body[:, ROOT], threshold)
    anchor = _first_found(driving.body[:, ROOT], threshold)
    if ref_t is None:
        raise InputError("reference pose: no neck (both shoulders) found")
    if anchor is None:
        raise InputError("driving pose: no frame with a neck (both shoulders) found")
    ref_body = reference.body[ref_t]
    ref_len = canonical_lengths(ref_body[None], threshold)
    drv_len = canonical_lengths(driving.body, threshold)
    common = [c for c in BODY_PARENT if not (np.isnan(ref_len[c]) or np.isnan(drv_len[c]))]
    if not common:
        raise InputError("reference and driving poses share no bone with both ends found")
    scale = float(sum(ref_len[c] for c in common) / sum(drv_len[c] for c in common))
    ratios = np.array([_ratio(ref_len[c], drv_len[c], scale) if c in BODY_PARENT else scale
                       for c in range(len(ref_len))])  # fmt: skip
    hand_ratios = []
    for k in range(2):
        forearm = ratios[FOREARM[k]]
        ref_size = _hand_size(reference.hands[ref_t : ref_t + 1, k], threshold, PERCENTILE)
        drv_size = _hand_size(driving.hands[:, k], threshold, PERCENTILE)
        hand_ratios.append(_ratio(ref_size, drv_size, forearm))
    head = float(np.mean([ratios[c] for c in HEAD_BONES]))
    face_ratio = _ratio(_face_size(reference.face[ref_t : ref_t + 1], threshold, PERCENTILE),
                        _face_size(driving.face, threshold, PERCENTILE), head)  # fmt: skip
    out = _retarget(driving, ratios, tuple(hand_ratios), face_ratio, scale,
                    ref_body[ROOT, :2].astype(np.float64), driving.body[anchor, ROOT, :2].astype(np.float64),
                    reference.width, reference.height, threshold)  # fmt: skip
    report = AlignReport("bones", scale, {BODY_NAMES[c]: float(ratios[c]) for c in BODY_PARENT})
    missing = [BODY_NAMES[c] for c in BODY_PARENT if np.isnan(ref_len[c])]
    if missing:
        report.warnings.append(f"reference pose lacks {', '.join(missing)}: those bones keep the driving proportions")
    out.meta["alignment"] = report.to_dict()
    return out, report


def find_character_box(image: np.ndarray, tolerance: int = 30) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, y0, x1, y1)`` of what differs from the background of ``image``
    ``[height, width, 3]`` uint8 (background colour = median of the border pixels). Rows and columns
    count as foreground when more than 1 % of their pixels differ by more than ``tolerance``. Falls
    back to the whole image less a 5 % margin when nothing (or everything) stands out."""
    img = np.asarray(image, np.int16)
    h, w = img.shape[:2]
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    fg = (np.abs(img - bg).max(-1) > tolerance)
    rows = np.flatnonzero(fg.mean(1) > 0.01)
    cols = np.flatnonzero(fg.mean(0) > 0.01)
    if len(rows) < 2 or len(cols) < 2 or fg.mean() > 0.95:
        return 0.05 * w, 0.05 * h, 0.95 * w, 0.95 * h
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def align_to_box(
    driving: PoseSequence,
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    threshold: float = THRESHOLD,
    fill: float = 0.9,
) -> tuple[PoseSequence, AlignReport]:
    """Scale the driving skeleton uniformly (proportions unchanged) so that at the anchor frame its
    extent (all found points) fills ``fill`` of ``box`` (height, or width if that is tighter), centred
    in the box; output in a ``width`` × ``height`` frame."""
    anchor = _first_found(driving.body[:, ROOT], threshold)
    if anchor is None:
        found = np.flatnonzero(driving.detected)
        if not len(found):
            raise InputError("driving pose: no person found in any frame")
        anchor = int(found[0])
    pts = np.concatenate([driving.body[anchor], driving.hands[anchor].reshape(-1, 3), driving.face[anchor]])
    pts = pts[pts[:, 2] >= threshold, :2]
    if len(pts) < 2:
        raise InputError("driving pose: too few points found to fit a box")
    lo, hi = pts.min(0), pts.max(0)
    extent = np.maximum(hi - lo, 1.0)
    x0, y0, x1, y1 = box
    scale = float(fill * min((x1 - x0) / extent[0], (y1 - y0) / extent[1]))
    target = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    source = (lo + hi) / 2
    ratios = np.full(len(BODY_NAMES), scale)
    out = _retarget(driving, ratios, (scale, scale), scale, scale, target, source, width, height, threshold)
    report = AlignReport("box", scale, {BODY_NAMES[c]: scale for c in BODY_PARENT})
    report.warnings.append(
        "no person found in the reference image: fitted the driving skeleton to the character's bounding "
        "box (proportions not retargeted; pass a reference keypoints file for better alignment)"
    )
    out.meta["alignment"] = report.to_dict()
    return out, report


def align_pose(
    driving: PoseSequence,
    reference: PoseSequence | None,
    ref_image: np.ndarray | None = None,
    ref_size: tuple[int, int] | None = None,
    threshold: float = THRESHOLD,
) -> tuple[PoseSequence, AlignReport]:
    """Align ``driving`` to the reference character.

    ``reference``: the reference pose (a :class:`PoseSequence`, first frame used; rescaled to
    ``ref_size`` if given and different), or None when no person was found in the reference image:
    then the whole-body box fit on ``ref_image`` ``[height, width, 3]`` is used (with a warning).
    """
    if reference is not None and _first_found(reference.body[:, ROOT], threshold) is not None:
        if ref_size is not None and ref_size != (reference.width, reference.height):
            reference = reference.scaled(*ref_size)
        return align_to_pose(driving, reference, threshold)
    if ref_image is None:
        raise InputError("reference pose has no neck (both shoulders) and no reference image was given for a box fit")
    h, w = np.asarray(ref_image).shape[:2]
    return align_to_box(driving, find_character_box(ref_image), w, h, threshold)
