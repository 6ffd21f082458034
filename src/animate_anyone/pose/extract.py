"""Whole-body keypoints from images and videos (``pip install 'animate-anyone[pose]'``).

Backends:

* ``mediapipe`` (default): MediaPipe 0.10.14's legacy Holistic solution (pose, face mesh and hand
  models bundled in the wheel, nothing is downloaded). Its landmarks are mapped to the layout of
  :mod:`.keypoints` (OpenPose-18 body, 21+21 hands, iBUG-68 face) with :data:`MP_POSE_TO_OPENPOSE`
  and :data:`FACE_MESH_TO_68`.
* ``dwpose``: DWPose ONNX models run by onnxruntime (:mod:`.dwpose`), given a folder that holds
  ``yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx``.

Scores: MediaPipe's per-landmark *visibility* for body points (the neck takes the smaller of the two
shoulders'); hand and face landmarks carry no per-point confidence, so every point of a found hand or
face scores 1. Points that fall more than 5 % of the frame outside it score 0.

Raw extraction is followed by :func:`.smooth.clean_sequence` (gap filling + One-Euro smoothing) in
:func:`extract_poses`; its report says which frames had nobody in them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import InputError
from .keypoints import NUM_BODY, NUM_FACE, NUM_HAND, PoseSequence

BACKENDS = ("mediapipe", "dwpose")
MEDIAPIPE_HINT = "pip install 'animate-anyone[pose]' (mediapipe==0.10.14)"

# OpenPose-18 index -> MediaPipe Pose (BlazePose, 33 points) index; the neck (1) is the midpoint of the
# shoulders (11, 12). MediaPipe's "left"/"right" are the person's, as in OpenPose.
MP_POSE_TO_OPENPOSE = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)

# iBUG-68 index -> MediaPipe face-mesh (468 points) index. Chosen on the mesh topology
# (mediapipe.solutions.face_mesh_connections) and checked by drawing both on real faces; the person's
# right side is the image's left, as in iBUG. Each group follows iBUG's order:
FACE_MESH_TO_68 = (
    # 0-16 jaw line, from the right ear-level cheek edge through the chin (8 = mesh 152) to the left
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # 17-21 right brow (outer -> inner), 22-26 left brow (inner -> outer): the upper brow contour
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge, top -> tip; 31-35 lower nose, right alar -> subnasale (33) -> left alar
    168, 197, 5, 1, 98, 97, 2, 326, 327,
    # 36-41 right eye: outer corner, two upper-lid points, inner corner, two lower-lid points
    33, 160, 158, 133, 153, 144,
    # 42-47 left eye: inner corner, two upper-lid points, outer corner, two lower-lid points
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lip: right corner, upper lip to the left corner (54), lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lip: right corner, upper inner lip, left corner (64), lower inner lip
    78, 81, 13, 311, 308, 402, 14, 178,
)  # fmt: skip
assert len(FACE_MESH_TO_68) == NUM_FACE

OUTSIDE_MARGIN = 0.05


class NoPersonError(InputError):
    """Nobody was found in any frame of the input."""


def require_mediapipe():
    """Import mediapipe or raise a one-line :class:`InputError` naming the install command."""
    try:
        with _quiet_native_logs():
            import mediapipe as mp  # noqa: F401
            from mediapipe.python.solutions import holistic  # noqa: F401
    except ImportError as exc:
        raise InputError(f"pose extraction needs mediapipe: {MEDIAPIPE_HINT} ({exc})") from None
    return mp


@contextlib.contextmanager
def _quiet_native_logs():
    """Silence TFLite/absl start-up chatter written to the stderr file descriptor."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GetPrototype.*")
        try:
            fd = os.dup(2)
        except OSError:  # pragma: no cover - no stderr
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            os.close(devnull)


def _landmarks(lms, count: int) -> np.ndarray | None:
    """MediaPipe landmark list -> ``[count, 3]`` (normalised x, y, visibility) or None."""
    if lms is None:
        return None
    arr = np.array([(p.x, p.y, p.visibility) for p in lms.landmark], np.float32)
    return arr[:count] if len(arr) >= count else None


def map_mediapipe(
    pose: np.ndarray | None,
    left_hand: np.ndarray | None,
    right_hand: np.ndarray | None,
    face: np.ndarray | None,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map one frame of MediaPipe Holistic landmarks (normalised ``[n, 3]`` arrays: 33 pose points with
    visibility, 21 per hand, 468+ face points) to pixel ``body [18, 3]``, ``hands [2, 21, 3]``,
    ``face [68, 3]``."""
    body = np.zeros((NUM_BODY, 3), np.float32)
    hands = np.zeros((2, NUM_HAND, 3), np.float32)
    out_face = np.zeros((NUM_FACE, 3), np.float32)
    scale = np.array([width, height], np.float32)
    if pose is not None:
        for op, mp_idx in enumerate(MP_POSE_TO_OPENPOSE):
            if mp_idx is not None:
                body[op] = pose[mp_idx]
        body[1, :2] = (pose[11, :2] + pose[12, :2]) / 2
        body[1, 2] = min(pose[11, 2], pose[12, 2])
        body[:, 2] = np.clip(body[:, 2], 0, 1)
        body[:, :2] *= scale
    for k, hand in enumerate((left_hand, right_hand)):
        if hand is not None:
            hands[k, :, :2] = hand[:NUM_HAND, :2] * scale
            hands[k, :, 2] = 1.0
    if face is not None:
        out_face[:, :2] = face[list(FACE_MESH_TO_68), :2] * scale
        out_face[:, 2] = 1.0
    for arr in (body, hands, out_face):
        xy = arr[..., :2] / scale
        outside = ((xy < -OUTSIDE_MARGIN) | (xy > 1 + OUTSIDE_MARGIN)).any(-1)
        arr[..., 2][outside] = 0.0
        arr[..., :2][arr[..., 2] == 0] = 0.0
    return body, hands, out_face


class MediaPipeExtractor:
    """MediaPipe Holistic, one instance per video (it tracks across frames unless ``static``).

    Only ``model_complexity=1`` is used: it is the pose model bundled in the wheel (0 and 2 would be
    downloaded at run time).
    """

    name = "mediapipe"

    def __init__(self, static: bool = False, min_detection_confidence: float = 0.5):
        mp = require_mediapipe()
        with _quiet_native_logs():
            self._model = mp.solutions.holistic.Holistic(
                static_image_mode=static,
                model_complexity=1,
                smooth_landmarks=not static,
                refine_face_landmarks=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=0.5,
            )
            # the graph starts (and its native code logs) on the first frame: start it here, quietly
            self._model.process(np.zeros((64, 64, 3), np.uint8))

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """One RGB uint8 frame ``[height, width, 3]`` -> ``body, hands, face, found``."""
        import warnings

        height, width = frame.shape[:2]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GetPrototype.*")
            res = self._model.process(np.ascontiguousarray(frame))
        pose = _landmarks(res.pose_landmarks, 33)
        body, hands, face = map_mediapipe(
            pose,
            _landmarks(res.left_hand_landmarks, NUM_HAND),
            _landmarks(res.right_hand_landmarks, NUM_HAND),
            _landmarks(res.face_landmarks, 468),
            width,
            height,
        )
        return body, hands, face, pose is not None and bool((body[:, 2] > 0).any())

    def close(self) -> None:
        self._model.close()


def make_extractor(backend: str = "mediapipe", *, static: bool = False, dwpose_dir: str | Path | None = None):
    """An extractor: a callable frame -> ``(body, hands, face, found)`` with a ``close()``."""
    if backend == "mediapipe":
        return MediaPipeExtractor(static=static)
    if backend == "dwpose":
        from .dwpose import DWPoseExtractor

        if dwpose_dir is None:
            raise InputError("the dwpose backend needs --dwpose-dir (a folder with yolox_l.onnx and dw-ll_ucoco_384.onnx)")
        return DWPoseExtractor(dwpose_dir)
    raise InputError(f"unknown pose backend {backend!r} (choose from {', '.join(BACKENDS)})")


def extract_raw(
    frames: Iterable[np.ndarray] | np.ndarray,
    width: int,
    height: int,
    fps: float,
    extractor: Callable,
    progress: Callable[[int], None] | None = None,
) -> PoseSequence:
    """Run ``extractor`` on every frame; no smoothing or gap filling (``detected`` = person found)."""
    bodies, hands, faces, found = [], [], [], []
    for i, frame in enumerate(frames):
        b, h, f, ok = extractor(frame)
        bodies.append(b)
        hands.append(h)
        faces.append(f)
        found.append(ok)
        if progress is not None:
            progress(i + 1)
    if not bodies:
        raise InputError("no frames to extract poses from")
    return PoseSequence(
        np.stack(bodies), np.stack(hands), np.stack(faces), width, height, fps, np.asarray(found, bool),
        meta={"backend": getattr(extractor, "name", "custom")},
    )  # fmt: skip


def extract_poses(
    frames: np.ndarray,
    fps: float,
    *,
    backend: str = "mediapipe",
    dwpose_dir: str | Path | None = None,
    static: bool | None = None,
    smooth: bool = True,
    max_gap_seconds: float = 0.5,
    source: str = "input",
):
    """Keypoints of the most prominent person in ``frames`` ``[T, height, width, 3]`` uint8 RGB.

    Returns ``(sequence, report)``: the cleaned :class:`PoseSequence` and a
    :class:`.smooth.CleaningReport`. Raises :class:`InputError` if nobody is found in any frame.
    ``static`` (default: True for a single frame) runs the detector on every frame without tracking.
    """
    from .smooth import clean_sequence

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise InputError(f"{source}: expected frames (T, height, width, 3), got shape {frames.shape}")
    height, width = frames.shape[1:3]
    static = len(frames) == 1 if static is None else static
    extractor = make_extractor(backend, static=static, dwpose_dir=dwpose_dir)
    try:
        raw = extract_raw(frames, width, height, fps, extractor)
    finally:
        extractor.close()
    if not raw.detected.any():
        what = "the image" if len(frames) == 1 else f"any of the {len(frames)} frames"
        raise NoPersonError(f"{source}: no person found in {what}")
    return clean_sequence(raw, smooth=smooth, max_gap_seconds=max_gap_seconds)


def extract_from_path(path: str | Path, max_frames: int | None = None, **kwargs):
    """:func:`extract_poses` on a video file, an image folder or a single image (the first
    ``max_frames`` frames only, if given)."""
    from ..data.video_io import IMAGE_SUFFIXES, read_image, read_video

    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
        frames, fps = np.asarray(read_image(path))[None], 1.0
    else:
        video = read_video(path, max_frames=max_frames)
        frames, fps = video.frames, video.fps
    seq, report = extract_poses(frames, fps, source=str(path), **kwargs)
    seq.meta["source"] = path.name
    return seq, report
