"""Learned metrics on frames: LPIPS per frame, and the features behind FID, FID-VID and FVD.

Frames are channels-last ``(frames, height, width, 3)``, ``uint8`` or float in [0, 1], as in
:mod:`.metrics`. The networks come from :mod:`.weights` (public files) or, in tests, random weights.

Protocols (docs/evaluation.md compares them with published code):

* **LPIPS**: frames mapped to [-1, 1] at their own size, distance per frame.
* **FID**: Inception-v3 pool3 (2048-d) per frame, the network resizing to 299×299 bilinearly;
  Fréchet distance between the generated and ground-truth frame sets.
* **FVD**: I3D Kinetics-400 logits (400-d) per clip of ``clip_frames`` consecutive frames (16,
  non-overlapping, the tail dropped), frames resized to 224×224 with PIL bicubic on float channels
  (clean-fid's resizer, which DisCo's FVD uses) and mapped to [-1, 1].
* **FID-VID**: the same clips, but the 1024-d average-pooled Mixed_5c features of I3D.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .metrics import _frames


def _to_unit_float(frames: np.ndarray) -> np.ndarray:
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    return frames.astype(np.float32)


def _nchw(frames: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def lpips_distance(pred, target, model: torch.nn.Module, batch_size: int = 8) -> np.ndarray:
    """LPIPS per frame ``(frames,)`` between two equally sized videos (lower = more similar)."""
    a, b = _frames(pred, "pred"), _frames(target, "target")
    if a.shape != b.shape:
        raise ValueError(f"pred and target differ in shape: {a.shape} vs {b.shape}")
    device = _device_of(model)
    out = []
    for i in range(0, len(a), batch_size):
        x = _nchw(_to_unit_float(a[i : i + batch_size]), device) * 2 - 1
        y = _nchw(_to_unit_float(b[i : i + batch_size]), device) * 2 - 1
        out.append(model(x, y).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def inception_features(frames, model: torch.nn.Module, batch_size: int = 16) -> np.ndarray:
    """Pool3 features ``(frames, 2048)`` of the FID Inception network."""
    f = _frames(frames, "frames")
    device = _device_of(model)
    out = [model(_nchw(_to_unit_float(f[i : i + batch_size]), device)).double().cpu().numpy()
           for i in range(0, len(f), batch_size)]  # fmt: skip
    return np.concatenate(out) if out else np.zeros((0, 2048))


def resize_bicubic_float(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """``(frames, size, size, 3)`` float32 on the 0-255 scale: PIL bicubic per channel in float mode,
    clipped to [0, 255] (clean-fid's ``make_resizer("PIL", False, "bicubic", ...)``)."""
    f = frames.astype(np.float32) * (255.0 if frames.dtype != np.uint8 else 1.0)
    out = np.empty((len(f), size, size, 3), np.float32)
    for t in range(len(f)):
        for c in range(3):
            img = Image.fromarray(np.ascontiguousarray(f[t, :, :, c]), mode="F")
            out[t, :, :, c] = np.asarray(img.resize((size, size), Image.BICUBIC)).clip(0, 255)
    return out


def video_clips(frames: np.ndarray, clip_frames: int = 16) -> np.ndarray:
    """Non-overlapping clips ``(clips, clip_frames, ...)``; the tail is dropped, and a video shorter
    than one clip is padded by repeating its last frame."""
    n = len(frames)
    if n < clip_frames:
        frames = np.concatenate([frames, np.repeat(frames[-1:], clip_frames - n, axis=0)])
        n = clip_frames
    k = n // clip_frames
    return frames[: k * clip_frames].reshape(k, clip_frames, *frames.shape[1:])


@torch.no_grad()
def i3d_features(frames, model: torch.nn.Module, clip_frames: int = 16, size: int = 224,
                 batch_size: int = 2) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """I3D features of one video: ``(logits (clips, 400), pooled (clips, 1024))``."""
    f = _frames(frames, "frames")
    clips = video_clips(resize_bicubic_float(f, size) / 127.5 - 1.0, clip_frames)  # (k, t, s, s, 3)
    device = _device_of(model)
    logits, pooled = [], []
    for i in range(0, len(clips), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(clips[i : i + batch_size])).permute(0, 4, 1, 2, 3).to(device)
        lg, pl = model(x)  # x: (b, 3, t, s, s)
        logits.append(lg.double().cpu().numpy())
        pooled.append(pl.double().cpu().numpy())
    return np.concatenate(logits), np.concatenate(pooled)
