"""The training loop's dataset over lab data, built from a config (and one real optimisation step)."""

import numpy as np
import pytest
import torch

from animate_anyone.lab import plan_clips, write_dataset
from animate_anyone.training import config_from_dict
from animate_anyone.training.data import build_dataset


@pytest.fixture(scope="module")
def lab_meta(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("lab"), list(plan_clips("all", 5, 2)), num_frames=8,
                         width=64, height=64, lossless=True)


def _cfg(tmp_path, meta, **over):
    base = {"stage": "image", "output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 2,
            "validate_every": -1, "log_every": 1,
            "data": {"meta": [str(meta)], "split": "train", "width": 64, "height": 64, "num_frames": 4,
                     "sample_rate": 2}}  # fmt: skip
    base.update(over)
    return config_from_dict(base)


def test_build_dataset_per_stage(tmp_path, lab_meta):
    ds = build_dataset(_cfg(tmp_path, lab_meta), clip_size=32)
    assert len(ds) == 6  # characters 0, 1, 2 are train; 3 and 4 are held out
    item = ds.get(0, np.random.default_rng(0))
    assert item["pixels"].shape == item["poses"].shape == item["ref_pixels"].shape == (3, 64, 64)
    assert item["ref_clip"].shape == (3, 32, 32)
    clips = build_dataset(_cfg(tmp_path, lab_meta, stage="video"), clip_size=32)
    assert clips.get(1, np.random.default_rng(0))["pixels"].shape == (3, 4, 64, 64)


@pytest.mark.slow  # ~12 s of trainer construction on CPU
def test_one_training_step_on_lab_data(tmp_path, lab_meta):
    from animate_anyone.training.trainer import Trainer

    trainer = Trainer(_cfg(tmp_path, lab_meta))
    batch = trainer._batch(0, 0)
    assert batch["pixels"].shape == (2, 3, 64, 64) and torch.isfinite(batch["ref_clip"]).all()
    trainer.train()
    assert trainer.step == 1
