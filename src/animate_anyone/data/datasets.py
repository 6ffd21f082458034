"""Training datasets over a meta file of clips (the lab's ``data synth`` output or prepared real data).

A meta file is a JSON list of entries with a character video and its pose video, paths relative to
the meta file (or absolute)::

    {"video_path": "videos/a.mp4", "pose_path": "poses/a.mp4", "kps_path": "keypoints/a.json", ...}

``pose_path`` is the rendered pose video. Meta files of the reference implementation have only
``video_path`` and ``kps_path``, where ``kps_path`` *is* the pose video; that is accepted too (a
``kps_path`` ending in a video suffix or ``.npz`` is used as the pose video when ``pose_path`` is
absent). Videos may be mp4 (or any format PyAV reads), lossless ``.npz`` or folders of images.

* :class:`ImagePairDataset` (stage 1): a random reference frame and a target frame of the same clip
  (at least ``sample_margin`` frames apart when the clip is long enough), with the target's pose.
* Face reenactment: ``pose_fields=FACE_POSE_FIELDS`` reads the two landmark-map videos of each
  entry (``face_upper_path``, ``face_mouth_path``) instead of the pose video; samples then carry
  ``poses`` (upper face) and ``poses2`` (mouth), cropped like the frames.
* :class:`ClipDataset` (stage 2): ``num_frames`` frames evenly spread over a span of
  ``(num_frames - 1) * stride + 1`` frames (shorter clips: the whole clip, frames repeat), their
  poses, and a reference frame from anywhere in the clip.

Processing follows the reference implementation (architecture.md §11) with this project's
inference-time functions (:mod:`animate_anyone.pipelines.preprocess`): one random crop box per
sample (area ``crop_scale`` of the frame, aspect ``crop_ratio`` relative to the frame's) shared by
the reference, target(s) and pose(s), squashed to ``width`` × ``height`` like inference does;
VAE inputs in [-1, 1], pose maps in [0, 1]; the CLIP input from the *uncropped* reference frame.

Randomness: ``dataset.get(index, rng)`` draws every random choice from the given generator (what
a training loop with its own per-step seeds uses); ``dataset[index]`` uses a generator seeded by
``(seed, epoch, index)`` (call :meth:`set_epoch` each epoch), so samples never depend on worker
layout or history.

Bad data never stops an epoch: entries whose files are missing, unreadable, or whose pose video
has a different number of frames are reported (a :class:`DataWarning` naming the file) and skipped
when the dataset is built; a file that fails later, while decoding, is reported, marked bad and
replaced by the next good entry. A dataset without a single usable entry raises
:class:`~animate_anyone.errors.InputError`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import ConfigError, InputError
from ..pipelines.preprocess import clip_pixels, pose_pixels, vae_pixels
from .video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_video

POSE_SUFFIXES = VIDEO_SUFFIXES | {".npz"}


class DataWarning(UserWarning):
    """A data entry was skipped (the message names the file and the reason)."""


def load_meta(meta_path: str | Path, split: str | None = None) -> list[dict]:
    """Entries of a meta file with ``video_path`` / ``pose_path`` resolved to absolute paths
    (``split``: keep only entries whose ``"split"`` equals it)."""
    meta_path = Path(meta_path)
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: meta file not found")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: not a readable JSON meta file ({exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{meta_path}: a meta file must be a JSON list of entries, got {type(data).__name__}")
    root = meta_path.parent
    out = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or "video_path" not in entry:
            warnings.warn(f"{meta_path}: entry {n} has no video_path; skipped", DataWarning, stacklevel=2)
            continue
        if split is not None and entry.get("split") != split:
            continue
        pose = entry.get("pose_path")
        if pose is None and Path(str(entry.get("kps_path", ""))).suffix.lower() in POSE_SUFFIXES:
            pose = entry["kps_path"]  # reference-implementation meta: kps_path is the pose video
        if pose is None:
            warnings.warn(f"{meta_path}: entry {n} ({entry['video_path']}) has no pose video; skipped",
                          DataWarning, stacklevel=2)
            continue
        e = dict(entry)
        e["video_path"] = str(root / entry["video_path"])
        e["pose_path"] = str(root / pose)
        for key in FACE_POSE_FIELDS:  # face-reenactment maps (`data prepare --face`, the lab's faces)
            if entry.get(key):
                e[key] = str(root / entry[key])
        kps = entry.get("keypoints_path") or (entry.get("kps_path") if pose != entry.get("kps_path") else None)
        if kps and Path(str(kps)).suffix.lower() in (".json", ".npz"):  # keypoints beside the pose video
            e["keypoints_path"] = str(root / kps)
        out.append(e)
    return out


def count_frames(path: str | Path) -> int:
    """Number of frames of a video file, ``.npz`` video or image folder (header only where possible)."""
    path = Path(path)
    if path.is_dir():
        n = sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if n == 0:
            raise InputError(f"{path}: folder holds no images")
        return n
    if not path.is_file():
        raise InputError(f"{path}: not found")
    if path.suffix.lower() == ".npz":
        return len(read_video(path))
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            n = container.streams.video[0].frames
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable video ({type(exc).__name__})") from None
    return int(n) if n > 0 else len(read_video(path))  # some containers do not store the count


def _read_frames(path: str, indices: np.ndarray) -> np.ndarray:
    """Frames ``indices`` of a video ``[k, h, w, 3]`` uint8, decoding no further than needed."""
    last = int(indices.max()) + 1
    frames = read_video(path, max_frames=last).frames
    if len(frames) < last:
        raise InputError(f"{path}: has {len(frames)} frames, frame {last - 1} was needed")
    return frames[indices]


class _ClipSource(Dataset):
    """Shared machinery: entries, validation, decoding, caching, crops, per-sample randomness."""

    def __init__(
        self,
        meta: str | Path | list[dict],
        width: int,
        height: int,
        *,
        split: str | None = None,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        crop_ratio: tuple[float, float] = (0.9, 1.0),
        clip_size: int = 224,
        preload: bool = False,
        cache_clips: int = 0,
        seed: int = 0,
        pose_fields: tuple[str, ...] = ("pose_path",),
        reference_hold: bool = False,
    ):
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        if not (0 < crop_scale[0] <= crop_scale[1] <= 1) or not (0 < crop_ratio[0] <= crop_ratio[1]):
            raise ValueError(f"bad crop_scale {crop_scale} or crop_ratio {crop_ratio}")
        self.width, self.height, self.clip_size = int(width), int(height), int(clip_size)
        self.crop_scale, self.crop_ratio = tuple(crop_scale), tuple(crop_ratio)
        self.seed, self.epoch = int(seed), 0
        self.cache_clips = int(cache_clips)
        self.pose_fields = tuple(pose_fields)
        self.reference_hold = bool(reference_hold)
        self._keypoints: dict[int, object] = {}
        self._cache: OrderedDict[int, tuple[np.ndarray, list[np.ndarray]]] = OrderedDict()
        metas = list(meta) if isinstance(meta, (list, tuple)) else [meta]
        source = ", ".join(str(m) for m in metas if not isinstance(m, dict)) or "meta list"
        entries = []
        for m in metas:
            if isinstance(m, dict):  # an entry with absolute paths
                if split is None or m.get("split") == split:
                    entries.append(dict(m))
            else:
                entries.extend(load_meta(m, split))
        self.skipped: list[tuple[str, str]] = []
        self.entries: list[dict] = []
        for e in entries:
            missing = [f for f in self.pose_fields if not e.get(f)]
            if missing:
                self._report(e, f"meta entry has no {missing[0]!r}")
                continue
            try:
                n_video = count_frames(e["video_path"])
                n_poses = [count_frames(e[f]) for f in self.pose_fields]
            except InputError as exc:
                self._report(e, str(exc))
                continue
            bad = [(f, n) for f, n in zip(self.pose_fields, n_poses) if n != n_video]
            if bad:
                self._report(e, f"{e[bad[0][0]]}: pose video has {bad[0][1]} frames, video has {n_video}")
                continue
            e["num_frames"] = n_video
            self.entries.append(e)
        self._bad = [False] * len(self.entries)
        if preload:
            self._preload()
        if not self.entries:
            where = f" with split {split!r}" if split is not None else ""
            detail = f"; first problem: {self.skipped[0][1]}" if self.skipped else ""
            raise InputError(f"{source}: no usable clips{where} ({len(self.skipped)} skipped{detail})")
        if self.reference_hold and not any(e.get("keypoints_path") for e in self.entries):
            raise InputError(f"{source}: reference_hold needs keypoints files (kps_path or keypoints_path "
                             f"ending in .json or .npz beside the pose video), and no entry has one")

    # -- bookkeeping ------------------------------------------------------------------------------
    def _report(self, entry: dict, reason: str) -> None:
        self.skipped.append((entry.get("video_path", "?"), reason))
        warnings.warn(f"skipping {entry.get('video_path', '?')}: {reason}", DataWarning, stacklevel=3)

    def _preload(self) -> None:
        keep = []
        for e in self.entries:
            try:
                video = read_video(e["video_path"]).frames
                poses = [read_video(e[f]).frames for f in self.pose_fields]
            except InputError as exc:
                self._report(e, str(exc))
                continue
            bad = [(f, len(p)) for f, p in zip(self.pose_fields, poses) if len(p) != len(video)]
            if bad:
                self._report(e, f"{e[bad[0][0]]}: pose video has {bad[0][1]} frames, video has {len(video)}")
                continue
            e["num_frames"] = len(video)
            self._cache[len(keep)] = (self._fit(video), [self._fit(p) for p in poses])
            keep.append(e)
        self.entries, self._bad, self.cache_clips = keep, [False] * len(keep), -1  # -1: everything cached

    def _fit(self, frames: np.ndarray) -> np.ndarray:
        """Shrink frames far larger than needed (over twice the output size) to save memory/time."""
        h, w = frames.shape[1:3]
        f = max(self.width / w, self.height / h) * 2
        if f >= 1:
            return frames
        size = (max(int(round(w * f)), 1), max(int(round(h * f)), 1))
        return np.stack([np.asarray(Image.fromarray(x).resize(size, Image.BILINEAR)) for x in frames])

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (samples depend only on seed, epoch and index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def frames(self, index: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Video and pose frames ``indices`` of entry ``index`` (``[k, h, w, 3]`` uint8 each; with
        several ``pose_fields`` the second is a list, one array per field)."""
        video, poses = self._frames(index, indices)
        return video, (poses[0] if len(poses) == 1 else poses)

    def _frames(self, index: int, indices: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        e = self.entries[index]
        if index in self._cache:
            video, poses = self._cache[index]
            if self.cache_clips > 0:
                self._cache.move_to_end(index)
            return video[indices], [p[indices] for p in poses]
        if self.cache_clips > 0:
            video = self._fit(read_video(e["video_path"]).frames)
            poses = [self._fit(read_video(e[f]).frames) for f in self.pose_fields]
            for f, pose in zip(self.pose_fields, poses):
                if len(video) != len(pose) or len(video) <= int(indices.max()):
                    raise InputError(f"{e[f]}: pose video has {len(pose)} frames, video has {len(video)}")
            self._cache[index] = (video, poses)
            while len(self._cache) > self.cache_clips:
                self._cache.popitem(last=False)
            return video[indices], [p[indices] for p in poses]
        return (self._fit(_read_frames(e["video_path"], indices)),
                [self._fit(_read_frames(e[f], indices)) for f in self.pose_fields])

    def __getitem__(self, index: int) -> dict:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        return self.get(index % n, self.rng(index % n))

    def get(self, index: int, rng: np.random.Generator) -> dict:
        """Sample ``index`` drawing every random choice from ``rng`` (a clip that turns out to be
        unreadable is reported, marked bad and replaced by the next good one)."""
        n = len(self.entries)
        for k in range(n):
            i = (int(index) + k) % n
            if self._bad[i]:
                continue
            state = rng.bit_generator.state
            try:
                return self.sample(i, rng)
            except InputError as exc:
                # the next clip draws as if this one had been known bad: what this process (or data
                # worker) has learnt about bad clips never changes the samples of a step
                rng.bit_generator.state = state
                self._bad[i] = True
                self._report(self.entries[i], str(exc))
        raise InputError(f"no readable clips left ({len(self.skipped)} skipped; last: {self.skipped[-1][1]})")

    def sample(self, i: int, rng: np.random.Generator) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- image processing -------------------------------------------------------------------------
    def crop_box(self, w: int, h: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A random crop ``(left, top, right, bottom)``: area ``crop_scale`` of the frame, aspect
        ``crop_ratio`` × the frame's (log-uniform), inside the frame."""
        scale = rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        cw = min(w, max(1, int(round(w * math.sqrt(scale * ratio)))))
        ch = min(h, max(1, int(round(h * math.sqrt(scale / ratio)))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        return left, top, left + cw, top + ch

    @staticmethod
    def pose_box(box, video: np.ndarray, pose: np.ndarray) -> tuple[int, int, int, int]:
        """``box`` of the video frames mapped onto pose frames of another size (same if equal)."""
        (vh, vw), (ph, pw) = video.shape[1:3], pose.shape[1:3]
        if (vh, vw) == (ph, pw):
            return box
        sx, sy = pw / vw, ph / vh
        return (int(round(box[0] * sx)), int(round(box[1] * sy)), max(int(round(box[2] * sx)), 1),
                max(int(round(box[3] * sy)), 1))

    def vae_input(self, frame: np.ndarray, box) -> torch.Tensor:
        """``(3, height, width)`` in [-1, 1]."""
        return vae_pixels(Image.fromarray(frame).crop(box), self.width, self.height)[0]

    def pose_input(self, frames: np.ndarray, box) -> torch.Tensor:
        """``(3, k, height, width)`` in [0, 1]."""
        return pose_pixels([Image.fromarray(f).crop(box) for f in frames], self.width, self.height)[0]

    def clip_input(self, frame: np.ndarray) -> torch.Tensor:
        """``(3, clip_size, clip_size)``, CLIP-normalised, from the uncropped frame."""
        return clip_pixels(frame, self.clip_size)[0]

    def hold_input(self, index: int, ref: int, targets: np.ndarray, box, frame_size: tuple[int, int]) -> torch.Tensor:
        """``(k, height, width)`` bool: for each target frame, the part of the reference frame ``ref``
        it must not read (:func:`animate_anyone.pose.facing.reference_hold`: the reference's face
        where the target faces away from it), from the entry's keypoints file, cropped like the
        frames. All False for an entry without keypoints. ``frame_size``: ``(h, w)`` of the decoded
        frames ``box`` refers to."""
        from ..pose.facing import reference_hold
        from ..pose.keypoints import load_keypoints

        out = torch.zeros(len(targets), self.height, self.width, dtype=torch.bool)
        path = self.entries[index].get("keypoints_path")
        if not path:
            return out
        if index not in self._keypoints:
            seq = load_keypoints(path)  # an unreadable file: InputError, the entry is reported and replaced
            if len(seq) != self.entries[index]["num_frames"]:
                raise InputError(f"{path}: has {len(seq)} frames of keypoints, the video has "
                                 f"{self.entries[index]['num_frames']}")
            self._keypoints[index] = seq
        seq = self._keypoints[index]
        h, w = frame_size
        if (seq.width, seq.height) != (w, h):
            seq = seq.scaled(w, h)
        masks = reference_hold(seq.body[ref], seq.body[np.asarray(targets)], (h, w), face=seq.face[ref])
        left, top, right, bottom = box
        crop = torch.from_numpy(masks[:, top:bottom, left:right].astype(np.float32))[:, None]
        return torch.nn.functional.interpolate(crop, size=(self.height, self.width), mode="nearest")[:, 0] > 0


class ImagePairDataset(_ClipSource):
    """Stage 1 samples: ``{"pixels": (3, H, W) target frame in [-1, 1], "poses": (3, H, W) its
    pose map in [0, 1], "ref_pixels": (3, H, W) reference frame in [-1, 1], "ref_clip": (3, S, S)
    CLIP-normalised reference, "index": () the entry used}``; with ``reference_hold`` also
    ``"ref_hold": (1, H, W)`` bool, the reference pixels the target must not read
    (:meth:`hold_input`).

    Args:
        meta: a meta file path, or a list of meta file paths (and/or entries with absolute paths).
        width, height: output size.
        split: keep only entries of this ``"split"`` (lab meta files), e.g. ``"train"``.
        sample_margin: preferred minimum distance in frames between reference and target.
        crop_scale, crop_ratio: random crop (see module docstring); stage 1 default (0.9, 1.0) both.
        clip_size: CLIP input size (the image encoder's ``image_size``).
        preload: decode every clip once, now, and keep it in memory (small lab data sets).
        cache_clips: otherwise keep the last N decoded clips per process (0: decode per sample).
        seed: base seed of the per-sample randomness.
        reference_hold: also return ``ref_hold`` (needs keypoints files; training's
            ``data.reference_hold``).
    """

    def __init__(self, meta, width: int, height: int, *, sample_margin: int = 30, **kwargs):
        super().__init__(meta, width, height, **kwargs)
        self.sample_margin = int(sample_margin)

    def pick_frames(self, num_frames: int, rng: np.random.Generator) -> tuple[int, int]:
        """(reference, target) frame indices, ``sample_margin`` apart when the clip allows."""
        margin = min(self.sample_margin, num_frames)
        ref = int(rng.integers(num_frames))
        if ref + margin < num_frames:
            tgt = int(rng.integers(ref + margin, num_frames))
        elif ref - margin > 0:
            tgt = int(rng.integers(0, ref - margin + 1))
        else:
            tgt = int(rng.integers(num_frames))
        return ref, tgt

    def sample(self, i: int, rng: np.random.Generator) -> dict:
        ref, tgt = self.pick_frames(self.entries[i]["num_frames"], rng)
        video, poses = self._frames(i, np.array([ref, tgt]))
        box = self.crop_box(video.shape[2], video.shape[1], rng)
        out = {
            "pixels": self.vae_input(video[1], box),
            "ref_pixels": self.vae_input(video[0], box),
            "ref_clip": self.clip_input(video[0]),
            "index": torch.tensor(i),
        }
        for key, pose in zip(_pose_keys(len(poses)), poses):
            out[key] = self.pose_input(pose[1:2], self.pose_box(box, video, pose))[:, 0]
        if self.reference_hold:
            out["ref_hold"] = self.hold_input(i, ref, np.array([tgt]), box, video.shape[1:3])
        return out


class ClipDataset(_ClipSource):
    """Stage 2 samples: ``{"pixels": (3, F, H, W) frames in [-1, 1], "poses": (3, F, H, W) in
    [0, 1], "ref_pixels": (3, H, W) in [-1, 1], "ref_clip": (3, S, S), "index": ()}`` (with
    ``reference_hold``, ``"ref_hold": (F, H, W)`` bool).

    Args: as :class:`ImagePairDataset`, plus ``num_frames`` (F, default 24) and ``stride`` (frame
    step of the span, default 4 as the reference's ``sample_rate``); crop default: scale (1, 1),
    ratio (0.9, 1.0).
    """

    def __init__(self, meta, width: int, height: int, *, num_frames: int = 24, stride: int = 4, **kwargs):
        kwargs.setdefault("crop_scale", (1.0, 1.0))
        super().__init__(meta, width, height, **kwargs)
        if num_frames < 1 or stride < 1:
            raise ValueError(f"num_frames and stride must be at least 1, got {num_frames} and {stride}")
        self.num_frames, self.stride = int(num_frames), int(stride)

    def pick_frames(self, total: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """(clip frame indices ``[F]``, reference index)."""
        span = min(total, (self.num_frames - 1) * self.stride + 1)
        start = int(rng.integers(0, total - span + 1))
        idx = np.linspace(start, start + span - 1, self.num_frames).round().astype(int)
        return idx, int(rng.integers(total))

    def sample(self, i: int, rng: np.random.Generator) -> dict:
        idx, ref = self.pick_frames(self.entries[i]["num_frames"], rng)
        video, poses = self._frames(i, np.concatenate([idx, [ref]]))
        box = self.crop_box(video.shape[2], video.shape[1], rng)
        frames = torch.stack([self.vae_input(f, box) for f in video[:-1]], dim=1)  # (3, F, H, W)
        out = {
            "pixels": frames,
            "ref_pixels": self.vae_input(video[-1], box),
            "ref_clip": self.clip_input(video[-1]),
            "index": torch.tensor(i),
        }
        for key, pose in zip(_pose_keys(len(poses)), poses):
            out[key] = self.pose_input(pose[:-1], self.pose_box(box, video, pose))
        if self.reference_hold:
            out["ref_hold"] = self.hold_input(i, ref, idx, box, video.shape[1:3])
        return out


def entry_weights(entries: list[dict], oversample: dict[str, dict[str, float]]) -> np.ndarray | None:
    """Relative drawing weight of each meta entry: the product, over the fields of ``oversample``
    (``{field: {value: factor}}``), of the factor of the entry's value (1 for other values; values
    compared as text). None when ``oversample`` is empty (every entry equally likely). A field/value
    pair that matches no entry is an error: it is a typo or the wrong meta file."""
    if not oversample:
        return None
    weights = np.ones(len(entries))
    for name, factors in oversample.items():
        values = [str(e.get(name)) for e in entries]
        for value, factor in factors.items():
            hit = np.array([v == str(value) for v in values], bool)
            if not hit.any():
                seen = sorted(set(values) - {"None"})
                known = f"values seen: {', '.join(seen[:8])}" if seen else "no entry has that field"
                raise ConfigError(f"data.oversample.{name}.{value} matches no training clip ({known})")
            weights[hit] *= float(factor)
    return weights


def _pose_keys(n: int) -> list[str]:
    """Batch keys of the pose streams: ``poses``, ``poses2``, ``poses3`` ..."""
    return ["poses"] + [f"poses{k}" for k in range(2, n + 1)]


FACE_POSE_FIELDS = ("face_upper_path", "face_mouth_path")


def make_dataset(
    stage: str,
    meta: str | Path | list,
    width: int,
    height: int,
    *,
    num_frames: int = 24,
    sample_rate: int = 4,
    sample_margin: int = 30,
    crop_scale: tuple[float, float] | None = None,
    crop_ratio: tuple[float, float] = (0.9, 1.0),
    in_memory: bool = False,
    clip_size: int = 224,
    split: str | None = None,
    seed: int = 0,
    pose_fields: tuple[str, ...] = ("pose_path",),
    reference_hold: bool = False,
) -> ImagePairDataset | ClipDataset:
    """The dataset of a training stage: ``"image"`` (stage 1), ``"vae"`` and ``"refiner"`` -> :class:`ImagePairDataset`,
    ``"video"`` (stage 2) -> :class:`ClipDataset` (``sample_rate`` = frame stride). ``crop_scale``
    defaults to each class's default ((0.9, 1) for images, (1, 1) for clips)."""
    common = dict(split=split, crop_ratio=crop_ratio, clip_size=clip_size, preload=in_memory, seed=seed,
                  pose_fields=tuple(pose_fields), reference_hold=reference_hold)
    if crop_scale is not None:
        common["crop_scale"] = tuple(crop_scale)
    if stage in ("image", "vae", "refiner"):
        return ImagePairDataset(meta, width, height, sample_margin=sample_margin, **common)
    if stage == "video":
        return ClipDataset(meta, width, height, num_frames=num_frames, stride=sample_rate, **common)
    raise ValueError(f"unknown training stage {stage!r}; expected 'image', 'video', 'vae' or 'refiner'")
