"""Reading and writing images and videos, with one-line errors and atomic writes.

Frames are ``uint8`` numpy arrays ``(frames, height, width, 3)`` in RGB order. Writers create the
file under a temporary name in the destination folder and rename it at the end, so a failed or
interrupted write never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v"}


@dataclass
class Video:
    """Decoded frames ``(frames, height, width, 3)`` uint8 RGB and their frame rate."""

    frames: np.ndarray
    fps: float

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def read_image(path: str | Path) -> Image.Image:
    """Open an image as RGB (alpha is dropped: composited on white if not fully opaque)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image not found")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(canvas, rgba).convert("RGB")
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__})") from None


def read_video(path: str | Path, max_frames: int | None = None) -> Video:
    """Decode a video file, a lossless ``.npz`` video (:func:`write_npz_video`), or a folder of
    images (file-name order, 30 fps assumed)."""
    path = Path(path)
    if path.is_dir():
        return _read_image_folder(path, max_frames)
    if not path.is_file():
        raise InputError(f"{path}: video not found")
    if path.suffix.lower() == ".npz":
        return _read_npz_video(path, max_frames)
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except InputError:
        raise
    except EOFError:
        if not frames:
            raise InputError(f"{path}: video has no frames") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable video ({type(exc).__name__})") from None
    if not frames:
        raise InputError(f"{path}: video has no frames")
    return Video(np.stack(frames), float(rate))


def _read_image_folder(folder: Path, max_frames: int | None) -> Video:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if max_frames is not None:
        files = files[:max_frames]
    if not files:
        raise InputError(f"{folder}: folder holds no images")
    frames = [np.asarray(read_image(p)) for p in files]
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise InputError(f"{folder}: images differ in size ({sorted(sizes)[:2]})")
    return Video(np.stack(frames), 30.0)


def _read_npz_video(path: Path, max_frames: int | None) -> Video:
    try:
        with np.load(path, allow_pickle=False) as z:
            frames, fps = z["frames"], float(z["fps"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise InputError(f"{path}: not a readable npz video ({type(exc).__name__})") from None
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(f"{path}: npz video must hold uint8 frames (n, h, w, 3), got {frames.dtype} {frames.shape}")
    return Video(frames[:max_frames] if max_frames is not None else frames, fps)


def write_npz_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Store ``(frames, height, width, 3)`` uint8 RGB losslessly (compressed ``.npz`` with ``frames``
    and ``fps``), atomically; :func:`read_video` reads it back exactly."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected non-empty uint8 frames (n, h, w, 3), got {frames.dtype} {frames.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, frames=frames, fps=np.float64(fps))
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Encode ``(frames, height, width, 3)`` uint8 RGB as H.264 mp4 (yuv420p), atomically.

    Odd sizes are padded by one pixel (edge copy): yuv420p needs even width and height.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected non-empty uint8 frames (n, h, w, 3), got {frames.dtype} {frames.shape}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_image(path: str | Path, image: np.ndarray | Image.Image) -> Path:
    """Save an image atomically (format from the suffix)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    with atomic_path(path) as tmp:
        img.save(tmp, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
    return Path(path)
