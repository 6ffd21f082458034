"""Optional DWPose backend: YOLOX-L person detector + DWPose whole-body model (RTMPose with SimCC
heads, COCO-WholeBody 133 points), both as ONNX files run by onnxruntime
(``pip install onnxruntime``; the files are the ones the reference implementation downloads).

Steps per frame:

1. Detector (``yolox_l.onnx``, 640×640, BGR 0-255): the frame is shrunk to fit, placed top-left on
   grey (114) padding; the raw head output ``[1, 8400, 85]`` is decoded on the 8/16/32-stride grids
   (centre = (offset + cell) × stride, size = exp(log-size) × stride), score = objectness × class
   probability (both already sigmoid outputs in the exported model), greedy NMS at IoU 0.45,
   persons (class 0) above 0.3 kept.
2. Pose (``dw-ll_ucoco_384.onnx``, 288×384, RGB normalised with the ImageNet mean/std): each box,
   enlarged 1.25× and widened or heightened to 3:4, is warped to the input; the SimCC outputs
   (``[1, 133, 576]`` and ``[1, 133, 768]``, two bins per pixel) give each point's position by arg-max
   and its score as the smaller of the two maxima.
3. The person with the highest mean body score is kept; COCO-WholeBody is mapped to the schema:
   17 COCO body points (+ neck = shoulder midpoint) in OpenPose order, face 23-90, left hand 91-111,
   right hand 112-132 (the 6 foot points are dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .keypoints import NUM_BODY, NUM_FACE, NUM_HAND

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
DET_SIZE = 640
POSE_SIZE = (288, 384)  # (width, height)
SIMCC_SPLIT = 2.0
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
# OpenPose-18 index -> COCO-17 index (None: the neck)
COCO_TO_OPENPOSE = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)


def check_dwpose_dir(folder: str | Path) -> tuple[Path, Path]:
    """The two model files in ``folder``, or a one-line :class:`InputError` naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--dwpose-dir {folder}: folder not found (expected {DETECTOR_FILE} and {POSE_FILE})")
    files = (folder / DETECTOR_FILE, folder / POSE_FILE)
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise InputError(f"--dwpose-dir {folder}: missing {' and '.join(missing)} (DWPose ONNX files)")
    return files


def _session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("the dwpose backend needs onnxruntime: pip install onnxruntime") from None
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise InputError(f"{path}: not a loadable ONNX model ({type(exc).__name__})") from None


def _run(session, x: np.ndarray) -> list[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: x})


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; ``boxes`` ``[n, 4]`` xyxy."""
    order = np.argsort(-scores)
    keep = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return keep


def decode_yolox(raw: np.ndarray, ratio: float, iou: float = 0.45, score_thr: float = 0.3) -> np.ndarray:
    """Person boxes ``[n, 4]`` (xyxy, frame pixels) from YOLOX's raw output ``[1, A, 5 + classes]``."""
    out = raw[0].astype(np.float32)
    grids, strides = [], []
    for stride in (8, 16, 32):
        n = DET_SIZE // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    if len(out) != len(grid):
        raise InputError(f"{DETECTOR_FILE}: unexpected output shape {raw.shape} (expected [1, {len(grid)}, 85])")
    centre = (out[:, :2] + grid) * stride
    size = np.exp(out[:, 2:4]) * stride
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) / ratio
    scores = out[:, 4] * out[:, 5]  # objectness x P(person)
    cand = np.flatnonzero(scores > score_thr)
    if not len(cand):
        return np.zeros((0, 4), np.float32)
    keep = _nms(boxes[cand], scores[cand], iou)
    return boxes[cand][keep]


def _box_transform(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size (3:4, enlarged 1.25×) of the crop taken around ``box``."""
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    w, h = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    aspect = POSE_SIZE[0] / POSE_SIZE[1]
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return centre, np.array([w, h], np.float32)


def crop_for_pose(frame: np.ndarray, centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Model input ``[1, 3, 384, 288]`` for the crop ``centre``/``size`` of an RGB ``frame``."""
    sx, sy = size[0] / POSE_SIZE[0], size[1] / POSE_SIZE[1]
    x0, y0 = centre - size / 2
    # PIL's affine maps output pixel (x, y) to input (a x + b y + c, d x + e y + f)
    crop = Image.fromarray(frame).transform(POSE_SIZE, Image.AFFINE, (sx, 0, x0, 0, sy, y0), resample=Image.BILINEAR)
    x = (np.asarray(crop, np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``[K, 3]`` keypoints (frame pixels, score) from SimCC outputs ``[1, K, Wx]``, ``[1, K, Wy]``."""
    sx, sy = simcc_x[0], simcc_y[0]
    x = np.argmax(sx, -1) / SIMCC_SPLIT
    y = np.argmax(sy, -1) / SIMCC_SPLIT
    score = np.minimum(sx.max(-1), sy.max(-1))
    xy = np.stack([x, y], -1) / np.array(POSE_SIZE, np.float32) * size + centre - size / 2
    return np.concatenate([xy, np.clip(score, 0, 1)[:, None]], -1).astype(np.float32)


def wholebody_to_schema(kps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO-WholeBody ``[133, 3]`` -> ``body [18, 3]``, ``hands [2, 21, 3]``, ``face [68, 3]``."""
    body = np.zeros((NUM_BODY, 3), np.float32)
    for op, coco in enumerate(COCO_TO_OPENPOSE):
        if coco is not None:
            body[op] = kps[coco]
    body[1, :2] = (kps[5, :2] + kps[6, :2]) / 2
    body[1, 2] = min(kps[5, 2], kps[6, 2])
    face = kps[23 : 23 + NUM_FACE].copy()
    hands = np.stack([kps[91 : 91 + NUM_HAND], kps[112 : 112 + NUM_HAND]])
    return body, hands, face


class DWPoseExtractor:
    """Frame -> ``(body, hands, face, found)`` with the DWPose ONNX models of ``dwpose_dir`` (or two
    ready sessions: any objects with onnxruntime's ``get_inputs()`` / ``run()``)."""

    name = "dwpose"

    def __init__(self, dwpose_dir: str | Path | None = None, *, det_session=None, pose_session=None):
        if det_session is None or pose_session is None:
            det_path, pose_path = check_dwpose_dir(dwpose_dir)
            det_session, pose_session = _session(det_path), _session(pose_path)
        self.det, self.pose = det_session, pose_session

    def detect(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        ratio = min(DET_SIZE / h, DET_SIZE / w)
        nh, nw = max(int(h * ratio), 1), max(int(w * ratio), 1)
        canvas = np.full((DET_SIZE, DET_SIZE, 3), 114, np.float32)
        canvas[:nh, :nw] = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR), np.float32)
        x = canvas[..., ::-1].transpose(2, 0, 1)[None].copy()  # BGR, [1, 3, 640, 640]
        return decode_yolox(_run(self.det, x)[0], ratio)

    def __call__(self, frame: np.ndarray):
        frame = np.ascontiguousarray(frame)
        best, best_score = None, -1.0
        for box in self.detect(frame):
            centre, size = _box_transform(box)
            simcc_x, simcc_y = _run(self.pose, crop_for_pose(frame, centre, size))[:2]
            kps = decode_simcc(simcc_x, simcc_y, centre, size)
            score = float(kps[:17, 2].mean())
            if score > best_score:
                best, best_score = kps, score
        if best is None:
            return (np.zeros((NUM_BODY, 3), np.float32), np.zeros((2, NUM_HAND, 3), np.float32),
                    np.zeros((NUM_FACE, 3), np.float32), False)  # fmt: skip
        body, hands, face = wholebody_to_schema(best)
        return body, hands, face, True

    def close(self) -> None:
        pass
