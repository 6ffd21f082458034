"""The training data of a stage, from the config's meta files (lab output or prepared real data)."""

from __future__ import annotations

from ..errors import ConfigError
from .config import TrainConfig


def build_dataset(cfg: TrainConfig, clip_size: int = 224):
    """``ImagePairDataset`` for the image, vae and refiner stages, ``ClipDataset`` for the video stage
    (see :mod:`animate_anyone.data.datasets`); ``clip_size`` is the image encoder's input size."""
    from ..data.datasets import FACE_POSE_FIELDS, make_dataset

    if not cfg.data.meta:
        raise ConfigError("data.meta lists no meta file (write one with `animate-anyone data synth` or `data prepare`)")
    d = cfg.data
    return make_dataset(
        cfg.stage, list(d.meta), d.width, d.height, num_frames=d.num_frames, sample_rate=d.sample_rate,
        sample_margin=d.sample_margin, crop_scale=d.crop_scale, in_memory=d.in_memory, clip_size=clip_size,
        split=d.split, seed=cfg.seed, pose_fields=FACE_POSE_FIELDS if cfg.model.reenact else ("pose_path",),
        reference_hold=d.reference_hold,
    )  # fmt: skip
