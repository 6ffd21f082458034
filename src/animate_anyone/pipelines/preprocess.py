"""Image preprocessing of the reference implementation's long pipeline (architecture.md §7).

* CLIP: squash the reference image to the encoder's size (PIL bicubic), then the standard CLIP
  processing (shortest edge -> size, centre crop: both no-ops after the squash), /255, OpenAI
  CLIP mean/std.
* VAE: resize to (width, height) with Lanczos, /255, x2-1.
* Pose: resize to (width, height) with Lanczos, /255 (no normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (h, w, 3) image, got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr)


def clip_pixels(image: Image.Image | np.ndarray, size: int) -> torch.Tensor:
    """Reference image -> CLIP input ``(1, 3, size, size)`` float32."""
    img = _to_pil(image).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, s, s)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def vae_pixels(image: Image.Image | np.ndarray, width: int, height: int) -> torch.Tensor:
    """Reference image -> VAE input ``(1, 3, height, width)`` in [-1, 1]."""
    img = _to_pil(image).resize((width, height), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x * 2 - 1).unsqueeze(0)


def pose_pixels(frames: Sequence[Image.Image | np.ndarray] | np.ndarray, width: int, height: int) -> torch.Tensor:
    """Pose frames -> ``(1, 3, frames, height, width)`` in [0, 1]."""
    out = []
    for frame in frames:
        img = _to_pil(frame)
        if img.size != (width, height):
            img = img.resize((width, height), Image.LANCZOS)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0))
    video = torch.stack(out)  # (frames, height, width, 3)
    return video.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, frames, height, width)
