"""Which way a figure faces, and where a reference seen from the other side must be held back.

A reference image shows its character from one side. Where the driving figure turns the other way
(its back to the camera where the reference faces it, or the reverse), what the reference shows at
the head (a face) is what the frame must *not* show there. Reference attention and the co-located
paths of our lab models (:class:`~animate_anyone.models.reference_attention.ReferencePosition`,
:class:`~animate_anyone.models.reference_latent.ReferenceLatentInput`) copy it anyway: the shipped
lab model paints the reference's face on the back of the head. :func:`reference_hold` hides the
reference's face from such frames (the pipeline's ``reference_hold``): they still read the rest of
the reference (hair, head shape, clothes, background), but not the face.

Facing is read from the OpenPose-18 shoulders' order on screen, so it is only as good as the
extractor's left/right labels: the lab's keypoints are exact; real extractors often label a figure
seen from behind as if it faced the camera, and then nothing is held back.
"""

from __future__ import annotations

import numpy as np

from ..evaluation.pose_metrics import body_size

R_SHOULDER, L_SHOULDER, NECK, NOSE, R_HIP, L_HIP = 2, 5, 1, 0, 8, 11
HEAD = (0, 14, 15, 16, 17)  # nose, eyes, ears
FACE = (0, 14, 15)  # nose, eyes
MIN_SCORE = 0.3
OPPOSITE = {"front": "back", "back": "front"}


def body_facing(points: np.ndarray, side_fraction: float = 0.08) -> np.ndarray:
    """Which way each frame's figure faces, from its OpenPose-18 shoulders ``(T, 18, 3)``:
    ``"front"`` (the right shoulder left of the left one on screen), ``"back"`` (the reverse),
    ``"side"`` (closer than ``side_fraction`` of the body size, or a shoulder hidden)."""
    dx = points[:, L_SHOULDER, 0] - points[:, R_SHOULDER, 0]
    both = (points[:, R_SHOULDER, 2] >= MIN_SCORE) & (points[:, L_SHOULDER, 2] >= MIN_SCORE)
    with np.errstate(invalid="ignore"):
        wide = both & (np.abs(dx) >= side_fraction * body_size(points))
    return np.where(wide, np.where(dx > 0, "front", "back"), "side")


def facing_away(reference: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """``(T,)`` bool: the driving frames ``(T, 18, 3)`` whose figure faces the other way from the
    reference's ``(18, 3)`` (front against back; a side view on either side is never opposite)."""
    ref = str(body_facing(reference[None])[0])
    if ref not in OPPOSITE:
        return np.zeros(len(driving), dtype=bool)
    return body_facing(driving) == OPPOSITE[ref]


def _visible(points: np.ndarray, idx) -> np.ndarray:
    return points[list(idx)][points[list(idx), 2] >= MIN_SCORE, :2]


def _torso(points: np.ndarray) -> float:
    """Neck to the hips' midpoint (NaN when hidden): a length that does not change as the figure turns."""
    hips = _visible(points, (R_HIP, L_HIP))
    if points[NECK, 2] < MIN_SCORE or not len(hips):
        return float("nan")
    return float(np.linalg.norm(hips.mean(0) - points[NECK, :2]))


def head_radius(reference: np.ndarray) -> float:
    """Radius in pixels of a disk that covers the reference figure's head ``(18, 3)``: 1.3 times
    the neck-to-nose distance (or a fifth of the torso where the face is hidden)."""
    if reference[NECK, 2] >= MIN_SCORE and reference[NOSE, 2] >= MIN_SCORE:
        return 1.3 * float(np.linalg.norm(reference[NOSE, :2] - reference[NECK, :2]))
    torso = _torso(reference)
    if np.isfinite(torso):
        return 0.2 * torso
    return 0.08 * float(np.nan_to_num(body_size(reference[None])[0], nan=0.0))


def face_region(reference: np.ndarray, size: tuple[int, int], face: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` bool: the part of a reference image of ``size`` that shows the side of the head
    its figure faces the camera with, from its body keypoints ``(18, 3)`` and, when given, its 68
    face landmarks ``(68, 3)``.

    A figure facing the camera: a disk over the face, centred on the visible face landmarks and
    reaching a pixel past the farthest (without landmarks: centred on the nose and eyes, of the neck's distance
    from them). A figure seen from behind: the whole head, a disk centred on its visible head
    points (else above the neck) of :func:`head_radius`. Empty when neither can be placed.
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros((h, w), dtype=bool)
    facing = str(body_facing(reference[None])[0])
    pts = face[face[:, 2] >= MIN_SCORE, :2] if face is not None and facing == "front" else np.zeros((0, 2))
    if len(pts) >= 3:
        centre = pts.mean(0)
        radius = float(np.linalg.norm(pts - centre, axis=1).max()) + 1.0
    elif facing == "front" and len(_visible(reference, FACE)):
        centre = _visible(reference, FACE).mean(0)
        neck = reference[NECK]
        radius = float(np.linalg.norm(centre - neck[:2])) if neck[2] >= MIN_SCORE else head_radius(reference)
    else:
        head = _visible(reference, HEAD)
        if len(head):
            centre = head.mean(0)
        elif reference[NECK, 2] >= MIN_SCORE:
            centre = reference[NECK, :2] - np.array([0.0, head_radius(reference)])
        else:
            return out
        radius = head_radius(reference)
    if radius > 0:
        out = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius * radius
    return out


def reference_hold(reference: np.ndarray, driving: np.ndarray, size: tuple[int, int],
                   face: np.ndarray | None = None, whole_frames: bool = False) -> np.ndarray:
    """The pipeline's ``reference_hold`` for a reference image of ``size`` ``(H, W)`` with body
    keypoints ``reference`` ``(18, 3)`` (and face landmarks ``face`` ``(68, 3)``, optional) driven
    by the body keypoints ``driving`` ``(T, 18, 3)``: ``(T, H, W)`` bool, the reference pixels each
    frame must not read. Every frame that faces away from the reference (:func:`facing_away`)
    gets the reference's :func:`face_region` (its whole image with ``whole_frames``, or where the
    face cannot be placed); the others get nothing.
    """
    away = facing_away(reference, driving)
    out = np.zeros((len(driving), *size), dtype=bool)
    region = None if whole_frames else face_region(reference, size, face)
    out[away] = True if region is None or not region.any() else region
    return out
