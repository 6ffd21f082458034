"""Whole-body keypoints of one person per frame: the schema every pose tool shares.

Layout (the one the released checkpoints were trained on, DWPose/OpenPose):

* ``body``  ``[T, 18, 3]`` OpenPose-18 body points in COCO order with a neck:
  0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist, 5 l-shoulder, 6 l-elbow, 7 l-wrist,
  8 r-hip, 9 r-knee, 10 r-ankle, 11 l-hip, 12 l-knee, 13 l-ankle, 14 r-eye, 15 l-eye,
  16 r-ear, 17 l-ear ("right" = the person's right).
* ``hands`` ``[T, 2, 21, 3]`` left hand then right hand, 21 points each (wrist, then four per finger
  from thumb to little finger, base to tip).
* ``face``  ``[T, 68, 3]`` the iBUG 68-point layout (jaw 0-16, brows 17-26, nose 27-35,
  eyes 36-47, mouth 48-67).

Each point is ``(x, y, score)``: x, y in pixels of a ``width`` × ``height`` frame (origin top-left,
x to the right), score in [0, 1]; a point that was not found has score 0 (its x, y are then
meaningless and stored as 0). ``detected[t]`` is False for frames where no person was found (their
points may have been filled by interpolation; the flag keeps the fact visible).

On disk: JSON (``schema: "animate-anyone/keypoints/1"``) with the arrays as nested lists, or ``.npz``
with the same names; :func:`save_keypoints` / :func:`load_keypoints` pick by suffix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

SCHEMA = "animate-anyone/keypoints/1"
NUM_BODY, NUM_HAND, NUM_FACE = 18, 21, 68

BODY_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip

# The 17 drawn limbs of OpenPose-18 (index pairs into ``body``), in the order that fixes their colour.
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# 20 bones of a 21-point hand.
HAND_EDGES = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)


@dataclass
class PoseSequence:
    """Keypoints of one person over ``T`` frames (see the module docstring for the layout)."""

    body: np.ndarray
    hands: np.ndarray
    face: np.ndarray
    width: int
    height: int
    fps: float = 24.0
    detected: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.body = np.asarray(self.body, dtype=np.float32)
        t = self.body.shape[0] if self.body.ndim == 3 else -1
        if self.hands is None:
            self.hands = np.zeros((max(t, 0), 2, NUM_HAND, 3), np.float32)
        if self.face is None:
            self.face = np.zeros((max(t, 0), NUM_FACE, 3), np.float32)
        self.hands = np.asarray(self.hands, dtype=np.float32)
        self.face = np.asarray(self.face, dtype=np.float32)
        if self.detected is None:
            self.detected = (self.body[..., 2] > 0).any(axis=-1) if t >= 0 else np.zeros(0, bool)
        self.detected = np.asarray(self.detected, dtype=bool)
        expected = {
            "body": (t, NUM_BODY, 3),
            "hands": (t, 2, NUM_HAND, 3),
            "face": (t, NUM_FACE, 3),
            "detected": (t,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape or t < 0:
                raise InputError(
                    f"keypoints: '{name}' has shape {getattr(self, name).shape}, expected {shape}"
                )
        self.width, self.height, self.fps = int(self.width), int(self.height), float(self.fps)
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"keypoints: invalid frame size {self.width}x{self.height}")

    def __len__(self) -> int:
        return self.body.shape[0]

    @classmethod
    def empty(cls, num_frames: int, width: int, height: int, fps: float = 24.0) -> PoseSequence:
        return cls(
            body=np.zeros((num_frames, NUM_BODY, 3), np.float32),
            hands=np.zeros((num_frames, 2, NUM_HAND, 3), np.float32),
            face=np.zeros((num_frames, NUM_FACE, 3), np.float32),
            width=width,
            height=height,
            fps=fps,
            detected=np.zeros(num_frames, bool),
        )

    def frames(self, index) -> PoseSequence:
        """A sub-sequence (``index``: slice, list or array of frame indices)."""
        return PoseSequence(
            self.body[index], self.hands[index], self.face[index], self.width, self.height,
            self.fps, self.detected[index], dict(self.meta),
        )  # fmt: skip

    def scaled(self, width: int, height: int) -> PoseSequence:
        """The same poses in a frame of another size (coordinates stretched per axis)."""
        sx, sy = width / self.width, height / self.height
        out = []
        for arr in (self.body, self.hands, self.face):
            arr = arr.copy()
            arr[..., 0] *= sx
            arr[..., 1] *= sy
            out.append(arr)
        return PoseSequence(*out, width, height, self.fps, self.detected.copy(), dict(self.meta))

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "num_frames": len(self),
            "detected": self.detected.astype(int).tolist(),
            "body": np.round(self.body, 3).tolist(),
            "hands": np.round(self.hands, 3).tolist(),
            "face": np.round(self.face, 3).tolist(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "keypoints") -> PoseSequence:
        if data.get("schema") != SCHEMA:
            raise InputError(f"{source}: not an animate-anyone keypoints file (schema {data.get('schema')!r})")
        try:
            return cls(
                body=np.asarray(data["body"], np.float32).reshape(-1, NUM_BODY, 3),
                hands=np.asarray(data["hands"], np.float32).reshape(-1, 2, NUM_HAND, 3),
                face=np.asarray(data["face"], np.float32).reshape(-1, NUM_FACE, 3),
                width=data["width"],
                height=data["height"],
                fps=data.get("fps", 24.0),
                detected=np.asarray(data["detected"], bool) if "detected" in data else None,
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{source}: malformed keypoints ({exc})") from None


def save_keypoints(seq: PoseSequence, path: str | Path) -> Path:
    """Write ``seq`` as JSON (``.json``) or NumPy (``.npz``), atomically."""
    from ..data.video_io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npz":
            d = seq.to_dict()
            header = {k: v for k, v in d.items() if k not in ("body", "hands", "face", "detected")}
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, body=seq.body, hands=seq.hands, face=seq.face, detected=seq.detected,
                    header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                )  # fmt: skip
        else:
            Path(tmp).write_text(json.dumps(seq.to_dict(), separators=(",", ":")))
    return path


def load_keypoints(path: str | Path) -> PoseSequence:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"keypoints file not found: {path}")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data = json.loads(bytes(z["header"]).decode())
                data.update(body=z["body"], hands=z["hands"], face=z["face"], detected=z["detected"])
        else:
            data = json.loads(path.read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: unreadable keypoints file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not an animate-anyone keypoints file")
    return PoseSequence.from_dict(data, source=str(path))
