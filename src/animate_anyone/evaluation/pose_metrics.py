"""Metrics that need no downloaded weights: pose fidelity, temporal flicker, appearance consistency.

All three use the *driving* keypoints (:class:`~animate_anyone.pose.keypoints.PoseSequence`, pixel
coordinates of a ``width`` × ``height`` frame) to know where the character should be:

* **Pose fidelity** re-detects the pose in the generated frames with a detector
  (``detector(frames_uint8) -> PoseSequence``; by default the bundled mediapipe extractor of
  ``animate_anyone.pose.extract``) and compares it with the driving pose: PCK at 0.05 and 0.1 of the
  body size, and the mean keypoint error. **Body size** is the diagonal of the bounding box of the
  driving body points found in that frame (score ≥ ``min_score``). **Pose agreement**
  (:func:`pose_agreement`) compares the detector's readings of generated and of true frames instead.
* **Temporal flicker** is the mean absolute frame-to-frame change (values in [0, 1]) over the pixels
  where the pose does not move: everything outside capsules drawn around the limbs whose joints
  moved more than ``move_fraction`` × body size between the two frames.
* **Appearance consistency** is the Hellinger distance between (soft-binned) colour histograms of body parts
  (head, torso, arms, legs; regions drawn from the keypoints) in each generated frame and in the
  reference image (regions drawn from the reference's own keypoints). 0 = same colours.
* **Mask-region fidelity** (:func:`mask_region_fidelity`) is PSNR and L1 over the pixels of given
  masks (e.g. where the character is in the ground truth or the reference).
* **Expression errors** (:func:`expression_errors`) compare detected face landmarks with the driving
  ones: mouth / eye point distances and opening errors, in % of the face size.
* **Face-region fidelity** is PSNR and L1 against the ground truth inside the face box only: the
  bounding box of the ground truth's face keypoints found in that frame, widened by ``margin`` of
  its size on every side (frames without face points are left out). Whole-frame metrics hardly
  move when only a face changes; this one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from ..pose.keypoints import BODY_LIMBS, PoseSequence

Detector = Callable[[np.ndarray], PoseSequence]

MIN_SCORE = 0.3
PCK_THRESHOLDS = (0.05, 0.1)

# Part regions of the OpenPose-18 body: capsules along these bones (torso is a polygon + capsules).
PART_BONES: dict[str, tuple[tuple[int, int], ...]] = {
    "head": ((0, 14), (0, 15), (14, 16), (15, 17)),
    "torso": ((1, 8), (1, 11), (2, 8), (5, 11), (2, 5), (8, 11)),
    "right_arm": ((2, 3), (3, 4)),
    "left_arm": ((5, 6), (6, 7)),
    "right_leg": ((8, 9), (9, 10)),
    "left_leg": ((11, 12), (12, 13)),
}
TORSO_POLYGON = (2, 5, 11, 8)  # r-shoulder, l-shoulder, l-hip, r-hip
HEAD_POINTS = (0, 14, 15, 16, 17)


def default_detector() -> Detector:
    """The bundled mediapipe extractor (:func:`animate_anyone.pose.extract.extract_poses`, needs the
    ``pose`` extra), without smoothing or gap filling (a metric must see what is in each frame);
    frames where nobody is found get score-0 points. An InputError says what to install when it
    is not available."""
    try:
        from ..pose.extract import NoPersonError, extract_poses, require_mediapipe

        require_mediapipe()
    except ImportError as exc:
        raise InputError(f"pose detection needs the pose extra (pip install 'animate-anyone[pose]'): {exc}") from None

    def detect(frames: np.ndarray) -> PoseSequence:
        try:
            seq, _ = extract_poses(frames, 24.0, smooth=False, max_gap_seconds=0.0, source="generated frames")
        except NoPersonError:
            h, w = frames.shape[1:3]
            return PoseSequence.empty(len(frames), w, h)
        return seq

    return detect


def run_detector(detector: Detector, frames: np.ndarray) -> PoseSequence:
    """Call ``detector`` on uint8 frames and check that it gave one pose per frame."""
    seq = detector(np.ascontiguousarray(frames))
    if not isinstance(seq, PoseSequence):
        raise TypeError(f"the pose detector must return a PoseSequence, got {type(seq).__name__}")
    if len(seq) != len(frames):
        raise ValueError(f"the pose detector returned {len(seq)} poses for {len(frames)} frames")
    h, w = frames.shape[1:3]
    return seq if (seq.width, seq.height) == (w, h) else seq.scaled(w, h)


def body_size(body: np.ndarray, min_score: float = MIN_SCORE) -> np.ndarray:
    """Per-frame body size ``(frames,)``: diagonal of the box around the body points with score ≥
    ``min_score`` (NaN when fewer than two points are found). ``body`` is ``(frames, 18, 3)``."""
    vis = body[..., 2] >= min_score
    out = np.full(len(body), np.nan)
    for t in range(len(body)):
        pts = body[t, vis[t], :2]
        if len(pts) >= 2:
            span = pts.max(axis=0) - pts.min(axis=0)
            out[t] = float(np.hypot(span[0], span[1]))
    return out


def _points(seq: PoseSequence, parts: tuple[str, ...]) -> np.ndarray:
    arrays = {"body": seq.body, "hands": seq.hands.reshape(len(seq), -1, 3), "face": seq.face}
    return np.concatenate([arrays[p] for p in parts], axis=1)


@dataclass
class PoseFidelity:
    pck: dict[float, float]  # threshold -> fraction of driving points re-detected within it
    mean_error_px: float  # over points found in both, in pixels of the driving frame
    mean_error_norm: float  # the same divided by body size
    missed: float  # fraction of driving points the detector did not find
    detection_rate: float  # fraction of frames where the detector found a person
    per_frame_pck: np.ndarray  # (frames,) PCK at the largest threshold
    per_frame_error: np.ndarray  # (frames,) mean normalised error

    def to_dict(self) -> dict:
        out = {f"pck@{a:g}": v for a, v in self.pck.items()}
        out.update(mean_error_px=self.mean_error_px, mean_error_norm=self.mean_error_norm,
                   missed=self.missed, detection_rate=self.detection_rate)  # fmt: skip
        return out


def pose_fidelity(frames: np.ndarray, driving: PoseSequence, detector: Detector | None = None,
                  thresholds: tuple[float, ...] = PCK_THRESHOLDS, min_score: float = MIN_SCORE,
                  parts: tuple[str, ...] = ("body",)) -> PoseFidelity:  # fmt: skip
    """How well generated ``frames`` ``(frames, height, width, 3)`` uint8 follow ``driving``.

    A driving point counts when its score is ≥ ``min_score`` and the frame has a body size; it is
    correct at threshold ``a`` when the detector found it (score ≥ ``min_score``) within
    ``a × body size`` pixels. ``parts`` picks the points compared ("body", "hands", "face"), all
    normalised by the body size.
    """
    if len(frames) != len(driving):
        raise ValueError(f"{len(frames)} frames but {len(driving)} driving poses")
    detected = run_detector(detector or default_detector(), frames)
    return compare_poses(detected, driving, thresholds=thresholds, min_score=min_score, parts=parts)


def pose_agreement(frames: np.ndarray, ground_truth: np.ndarray, detector: Detector | None = None,
                   sizes: np.ndarray | None = None, thresholds: tuple[float, ...] = PCK_THRESHOLDS,
                   min_score: float = MIN_SCORE, parts: tuple[str, ...] = ("body",)) -> PoseFidelity:  # fmt: skip
    """How well the detector's reading of generated ``frames`` agrees with its reading of the
    ``ground_truth`` frames (both uint8 ``(frames, height, width, 3)``): :func:`pose_fidelity` with
    the points detected in the true frames as the driving pose.

    This is how pose fidelity is scored on real videos, whose driving poses are detections too. On
    data with exact keypoints it answers a different question than :func:`pose_fidelity`: a frame
    the detector misreads (a figure seen from behind read as seen from the front, say) counts only
    where the detector reads the true frame differently, so a detector's blind spots rank no
    method. Only points found in the true frame count. ``sizes`` ``(frames,)`` normalises the
    distances (e.g. the exact driving poses' :func:`body_size`); by default the body size of the
    points found in the true frame.
    """
    if len(frames) != len(ground_truth):
        raise ValueError(f"{len(frames)} frames but {len(ground_truth)} ground-truth frames")
    detect = detector or default_detector()
    return compare_poses(run_detector(detect, frames), run_detector(detect, ground_truth), thresholds=thresholds,
                         min_score=min_score, parts=parts, sizes=sizes)  # fmt: skip


def compare_poses(detected: PoseSequence, driving: PoseSequence, thresholds: tuple[float, ...] = PCK_THRESHOLDS,
                  min_score: float = MIN_SCORE, parts: tuple[str, ...] = ("body",),
                  sizes: np.ndarray | None = None) -> PoseFidelity:  # fmt: skip
    """Score poses ``detected`` in generated frames against ``driving`` (the rules of
    :func:`pose_fidelity`; ``detected`` is rescaled to ``driving``'s frame size). ``sizes``
    ``(frames,)`` replaces the driving poses' body sizes as the distance normaliser."""
    if len(detected) != len(driving):
        raise ValueError(f"{len(detected)} detected poses but {len(driving)} driving poses")
    detected = detected.scaled(driving.width, driving.height)
    ref, pred = _points(driving, parts), _points(detected, parts)
    size = body_size(driving.body, min_score) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if size.shape != (len(driving),):
        raise ValueError(f"sizes must have one value per frame ({len(driving)}), got shape {size.shape}")
    visible = (ref[..., 2] >= min_score) & np.isfinite(size)[:, None]
    found = pred[..., 2] >= min_score
    dist = np.linalg.norm(pred[..., :2] - ref[..., :2], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = dist / size[:, None]
    both = visible & found
    n_vis = max(int(visible.sum()), 1)
    pck = {a: float((both & (norm <= a)).sum() / n_vis) for a in thresholds}
    with np.errstate(invalid="ignore", divide="ignore"):
        per_frame_pck = (both & (norm <= max(thresholds))).sum(1) / visible.sum(1)
        per_frame_err = np.where(both, norm, 0).sum(1) / both.sum(1)
    return PoseFidelity(
        pck=pck,
        mean_error_px=float(dist[both].mean()) if both.any() else math.nan,
        mean_error_norm=float(norm[both].mean()) if both.any() else math.nan,
        missed=float((visible & ~found).sum() / n_vis),
        detection_rate=float(np.mean(detected.detected)) if len(detected) else math.nan,
        per_frame_pck=per_frame_pck.astype(np.float64),
        per_frame_error=per_frame_err.astype(np.float64),
    )


# --------------------------------------------------------------------------------------------
# Region masks from keypoints
# --------------------------------------------------------------------------------------------


def _capsule(draw: ImageDraw.ImageDraw, p, q, r: float) -> None:
    w = max(1, int(round(2 * r)))
    draw.line([tuple(p), tuple(q)], fill=1, width=w)
    for c in (p, q):
        draw.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=1)


def part_masks(body: np.ndarray, width: int, height: int, min_score: float = MIN_SCORE,
               limb_fraction: float = 0.04) -> dict[str, np.ndarray]:  # fmt: skip
    """Boolean ``(height, width)`` masks of the body parts of one frame's ``(18, 3)`` body points.

    Limbs are capsules of radius ``limb_fraction`` × body size (at least 2 px) along their bones;
    the torso is the shoulder-hip quadrilateral plus capsules; the head a disc around the face
    points of radius half the nose-neck distance. A part whose points were not found is absent.
    """
    size = body_size(body[None], min_score)[0]
    if not np.isfinite(size):
        return {}
    r = max(2.0, limb_fraction * size)
    ok = body[:, 2] >= min_score
    xy = body[:, :2]
    masks: dict[str, np.ndarray] = {}
    for part, bones in PART_BONES.items():
        img = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(img)
        drawn = False
        for a, b in bones:
            if ok[a] and ok[b]:
                _capsule(draw, xy[a], xy[b], r)
                drawn = True
        if part == "torso" and all(ok[i] for i in TORSO_POLYGON):
            draw.polygon([tuple(xy[i]) for i in TORSO_POLYGON], fill=1)
            drawn = True
        if part == "head":
            pts = [xy[i] for i in HEAD_POINTS if ok[i]]
            if pts:
                c = np.mean(pts, axis=0)
                hr = 0.5 * float(np.linalg.norm(xy[0] - xy[1])) if ok[0] and ok[1] else 2.5 * r
                draw.ellipse((c[0] - hr, c[1] - hr, c[0] + hr, c[1] + hr), fill=1)
                drawn = True
        if drawn:
            masks[part] = np.asarray(img, dtype=bool)
    return masks


def motion_mask(body_a: np.ndarray, body_b: np.ndarray, width: int, height: int, min_score: float = MIN_SCORE,
                move_fraction: float = 0.02, radius_fraction: float = 0.08) -> tuple[np.ndarray, bool]:  # fmt: skip
    """Mask ``(height, width)`` of where the pose moves between two frames' ``(18, 3)`` bodies, and
    whether anything moved: capsules of radius ``radius_fraction`` × body size around every limb
    with a joint that moved more than ``move_fraction`` × body size, at both positions."""
    size = np.nanmax([body_size(body_a[None], min_score)[0], body_size(body_b[None], min_score)[0], 0.0])
    if not size:
        return np.zeros((height, width), bool), False
    ok = (body_a[:, 2] >= min_score) & (body_b[:, 2] >= min_score)
    moved = ok & (np.linalg.norm(body_a[:, :2] - body_b[:, :2], axis=1) > move_fraction * size)
    # a joint that appears or disappears counts as moving
    moved |= (body_a[:, 2] >= min_score) != (body_b[:, 2] >= min_score)
    if not moved.any():
        return np.zeros((height, width), bool), False
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    r = radius_fraction * size
    for body in (body_a, body_b):
        vis = body[:, 2] >= min_score
        for a, b in BODY_LIMBS:
            if (moved[a] or moved[b]) and vis[a] and vis[b]:
                _capsule(draw, body[a, :2], body[b, :2], r)
        for j in np.flatnonzero(moved & vis):
            _capsule(draw, body[j, :2], body[j, :2], r)
    return np.asarray(img, dtype=bool), True


@dataclass
class Flicker:
    per_pair: np.ndarray  # (frames - 1,) mean |frame[t+1] - frame[t]| over still pixels, in [0, 1]
    mean: float
    still_fraction: float  # mean fraction of pixels counted as still
    still_pairs: int  # frame pairs in which no joint moved at all
    pose_used: bool

    def to_dict(self) -> dict:
        return {"flicker": self.mean, "still_fraction": self.still_fraction, "still_pairs": self.still_pairs,
                "pose_used": self.pose_used}  # fmt: skip


def temporal_flicker(frames: np.ndarray, pose: PoseSequence | None = None, min_score: float = MIN_SCORE,
                     move_fraction: float = 0.02, radius_fraction: float = 0.08) -> Flicker:  # fmt: skip
    """Frame-to-frame change of ``frames`` ``(frames, height, width, 3)`` where the pose is still.

    Without ``pose`` every pixel counts (plain temporal change). With it, ``pose`` must have one
    entry per frame in the frames' pixel coordinates (see :meth:`PoseSequence.scaled`).
    """
    n, h, w = frames.shape[:3]
    if pose is not None and len(pose) != n:
        raise ValueError(f"{n} frames but {len(pose)} poses")
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    per_pair = np.full(max(n - 1, 0), np.nan)
    fractions, still_pairs = [], 0
    for t in range(n - 1):
        diff = np.abs(frames[t + 1].astype(np.float32) - frames[t].astype(np.float32)).mean(axis=2) / scale
        if pose is None:
            still = np.ones((h, w), bool)
        else:
            moving, any_moved = motion_mask(pose.body[t], pose.body[t + 1], w, h, min_score, move_fraction, radius_fraction)
            still = ~moving
            still_pairs += not any_moved
        fractions.append(float(still.mean()))
        if still.any():
            per_pair[t] = float(diff[still].mean())
    finite = per_pair[np.isfinite(per_pair)]
    return Flicker(per_pair, float(finite.mean()) if finite.size else math.nan,
                   float(np.mean(fractions)) if fractions else math.nan, still_pairs, pose is not None)  # fmt: skip


def colour_histogram(pixels: np.ndarray, bins: int = 8) -> np.ndarray:
    """Normalised joint RGB histogram ``(bins**3,)`` of uint8 ``(n, 3)`` pixels, soft-binned: bin
    centres at ``k · 255 / (bins - 1)`` and each value shared linearly between its two nearest
    centres per channel, so a small colour change (compression, re-encoding) moves the histogram
    a little instead of flipping pixels across a bin edge."""
    pos = pixels.astype(np.float64) * ((bins - 1) / 255.0)  # (n, 3)
    lo = np.minimum(np.floor(pos).astype(np.int64), bins - 2)
    frac = pos - lo
    hist = np.zeros(bins**3)
    for corner in range(8):  # the 8 neighbouring bins of the 3-D grid
        offs = np.array([(corner >> c) & 1 for c in range(3)])
        weight = np.prod(np.where(offs == 1, frac, 1.0 - frac), axis=1)
        idx = ((lo[:, 0] + offs[0]) * bins + (lo[:, 1] + offs[1])) * bins + (lo[:, 2] + offs[2])
        hist += np.bincount(idx, weights=weight, minlength=bins**3)
    return hist / max(hist.sum(), 1e-12)


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two normalised histograms, in [0, 1]."""
    return float(math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))


@dataclass
class Appearance:
    per_part: dict[str, float]  # part -> mean distance over the frames where it is visible
    mean: float  # mean over parts
    per_frame: np.ndarray  # (frames,) mean over the parts visible in that frame
    parts_missing: list[str] = field(default_factory=list)  # parts not found in the reference

    def to_dict(self) -> dict:
        return {"appearance": self.mean, **{f"appearance_{k}": v for k, v in self.per_part.items()}}


def appearance_consistency(frames: np.ndarray, pose: PoseSequence, reference: np.ndarray,
                           reference_pose: PoseSequence, bins: int = 8, min_pixels: int = 30,
                           min_score: float = MIN_SCORE) -> Appearance:  # fmt: skip
    """Per-part colour-histogram distance between uint8 ``frames`` ``(frames, height, width, 3)``
    and the uint8 ``reference`` image ``(height, width, 3)``; ``pose`` holds the driving keypoints
    in the frames' coordinates, ``reference_pose`` one frame of keypoints in the reference's."""
    if len(pose) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(pose)} poses")
    rh, rw = reference.shape[:2]
    ref_pose = reference_pose if (reference_pose.width, reference_pose.height) == (rw, rh) else reference_pose.scaled(rw, rh)
    ref_masks = part_masks(ref_pose.body[0], rw, rh, min_score)
    ref_hist = {k: colour_histogram(reference[m], bins) for k, m in ref_masks.items() if m.sum() >= min_pixels}
    if not ref_hist:
        raise InputError("no body part found in the reference keypoints: appearance consistency needs a pose there")
    h, w = frames.shape[1:3]
    dists: dict[str, list[float]] = {k: [] for k in ref_hist}
    per_frame = np.full(len(frames), np.nan)
    for t in range(len(frames)):
        row = []
        for part, mask in part_masks(pose.body[t], w, h, min_score).items():
            if part in ref_hist and mask.sum() >= min_pixels:
                d = hellinger(colour_histogram(frames[t][mask], bins), ref_hist[part])
                dists[part].append(d)
                row.append(d)
        if row:
            per_frame[t] = float(np.mean(row))
    per_part = {k: float(np.mean(v)) for k, v in dists.items() if v}
    return Appearance(per_part, float(np.mean(list(per_part.values()))) if per_part else math.nan, per_frame,
                      sorted(set(PART_BONES) - set(ref_hist)))  # fmt: skip


@dataclass
class FaceRegion:
    psnr: float  # dB, mean over the frames with a face box (identical boxes: capped at 100 dB)
    l1: float  # mean absolute error in [0, 1] over the face boxes' pixels, mean over frames
    frames: float  # fraction of frames with a face box
    per_frame_l1: np.ndarray  # (frames,), NaN where there is no face box

    def to_dict(self) -> dict:
        return {"face_psnr": self.psnr, "face_l1": self.l1, "face_frames": self.frames}


def face_boxes(face: np.ndarray, width: int, height: int, margin: float = 0.25, min_size: int = 4,
               min_score: float = MIN_SCORE) -> list[tuple[int, int, int, int] | None]:  # fmt: skip
    """Per frame, ``(x0, y0, x1, y1)`` (pixels, end exclusive, clipped to the frame) around the face
    points of ``face`` ``(frames, n, 3)`` with score ≥ ``min_score``, widened by ``margin`` × the
    box's size on each side and to at least ``min_size`` pixels; ``None`` without face points."""
    out: list[tuple[int, int, int, int] | None] = []
    for t in range(len(face)):
        pts = face[t, face[t, :, 2] >= min_score, :2]
        if len(pts) == 0:
            out.append(None)
            continue
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = np.maximum(margin * (hi - lo), (min_size - (hi - lo)) / 2)
        x0, y0 = np.floor(lo - np.maximum(pad, 0)).astype(int)
        x1, y1 = np.ceil(hi + np.maximum(pad, 0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        out.append((int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None)
    return out


def _pixel_scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, capped at 100, L1 in [0, 1]) of two uint8 pixel arrays of the same shape."""
    d = pred.astype(np.float64) / 255.0 - true.astype(np.float64) / 255.0
    mse = float((d**2).mean())
    return (100.0 if mse == 0 else min(100.0, 10.0 * math.log10(1.0 / mse))), float(np.abs(d).mean())


def face_region_fidelity(frames: np.ndarray, ground_truth: np.ndarray, gt_pose: PoseSequence,
                         margin: float = 0.25, min_score: float = MIN_SCORE) -> FaceRegion:  # fmt: skip
    """PSNR / L1 of uint8 ``frames`` against uint8 ``ground_truth`` (both ``(frames, h, w, 3)``,
    same size) inside the face boxes of ``gt_pose`` (the ground truth's keypoints, any frame size:
    rescaled to the frames')."""
    if frames.shape != ground_truth.shape:
        raise ValueError(f"frames {frames.shape} and ground truth {ground_truth.shape} differ")
    if len(gt_pose) < len(frames):
        raise ValueError(f"{len(frames)} frames but {len(gt_pose)} ground-truth poses")
    h, w = frames.shape[1:3]
    pose = gt_pose if (gt_pose.width, gt_pose.height) == (w, h) else gt_pose.scaled(w, h)
    boxes = face_boxes(pose.face[: len(frames)], w, h, margin, min_score=min_score)
    l1 = np.full(len(frames), np.nan)
    db = np.full(len(frames), np.nan)
    for t, box in enumerate(boxes):
        if box is None:
            continue
        x0, y0, x1, y1 = box
        db[t], l1[t] = _pixel_scores(frames[t, y0:y1, x0:x1], ground_truth[t, y0:y1, x0:x1])
    found = ~np.isnan(l1)
    if not found.any():
        return FaceRegion(math.nan, math.nan, 0.0, l1)
    return FaceRegion(float(db[found].mean()), float(l1[found].mean()), float(found.mean()), l1)


def mask_region_fidelity(frames: np.ndarray, ground_truth: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, L1 in [0, 1]) of uint8 ``frames`` against ``ground_truth`` (both ``(T, h, w, 3)``)
    over the pixels where boolean ``masks`` ``(T, h, w)`` (or one ``(h, w)`` mask for all frames) is
    set, per frame, then averaged over the frames with at least one pixel (NaN when none has).
    For where a character is: whole-frame scores are dominated by a static background."""
    if frames.shape != ground_truth.shape:
        raise ValueError(f"frames {frames.shape} and ground truth {ground_truth.shape} differ")
    masks = np.broadcast_to(np.asarray(masks, bool), frames.shape[:3])
    db, err = [], []
    for t in range(len(frames)):
        m = masks[t]
        if not m.any():
            continue
        psnr, l1 = _pixel_scores(frames[t][m], ground_truth[t][m])
        db.append(psnr)
        err.append(l1)
    return (float(np.mean(db)), float(np.mean(err))) if db else (math.nan, math.nan)


MOUTH_POINTS, EYE_POINTS = slice(48, 68), slice(36, 48)  # iBUG-68
MOUTH_GAPS = ((61, 67), (62, 66), (63, 65))  # inner lips, upper -> lower
EYE_GAPS = ((37, 41), (38, 40), (43, 47), (44, 46))  # upper -> lower eyelid


def _gap(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, a, :2] - x[:, b, :2], axis=-1).mean(1)


def expression_errors(pred: np.ndarray, true: np.ndarray, min_score: float = MIN_SCORE) -> dict[str, float]:
    """Face-reenactment landmark errors of detected face landmarks ``pred`` against the driving ones
    ``true`` (both ``(T, 68, 3)`` iBUG-68, same pixel frame), in % of the face size (per frame, the
    diagonal of the box around the true landmarks with score ≥ ``min_score``):

    * ``mouth_nme`` / ``eyes_nme``: mean distance of the mouth (48-67) / eye (36-47) points found in
      both (the average keypoint distance of the reenactment literature);
    * ``mouth_open_err`` / ``eyes_open_err``: error of the opening, the mean inner-lip / eyelid gap,
      over frames where all those points are found in both: expression alone, head position aside.

    NaN where nothing could be compared."""
    size = body_size(true, min_score)
    out = {}
    for name, part, gaps in (("mouth", MOUTH_POINTS, MOUTH_GAPS), ("eyes", EYE_POINTS, EYE_GAPS)):
        ok = (true[:, part, 2] >= min_score) & (pred[:, part, 2] >= min_score) & np.isfinite(size)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.linalg.norm(pred[:, part, :2] - true[:, part, :2], axis=-1) / size[:, None]
        out[f"{name}_nme"] = 100 * float(dist[ok].mean()) if ok.any() else math.nan
        a, b = np.array(gaps).T
        seen = (true[:, a, 2] >= min_score).all(1) & (true[:, b, 2] >= min_score).all(1)
        seen &= (pred[:, a, 2] >= min_score).all(1) & (pred[:, b, 2] >= min_score).all(1) & np.isfinite(size)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(_gap(pred, a, b) - _gap(true, a, b)) / size
        out[f"{name}_open_err"] = 100 * float(err[seen].mean()) if seen.any() else math.nan
    return out
