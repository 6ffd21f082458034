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

    cfg = _cfg(tmp_path, lab_meta)
    cfg.data.oversample = {"character_id": {"0": 3}}  # its 2 clips weigh 6 of the 10 shares
    trainer = Trainer(cfg)
    assert np.diff(trainer.batches.cdf, prepend=0).round(2).tolist() == [0.3, 0.3, 0.1, 0.1, 0.1, 0.1]
    batch = trainer._batch(0, 0)
    assert batch["pixels"].shape == (2, 3, 64, 64) and torch.isfinite(batch["ref_clip"]).all()
    trainer.train()
    assert trainer.step == 1


def test_oversample_weighs_entries_by_meta_field(tmp_path, lab_meta):
    from animate_anyone.data.datasets import entry_weights
    from animate_anyone.errors import ConfigError

    ds = build_dataset(_cfg(tmp_path, lab_meta), clip_size=32)
    motions = [e["motion"] for e in ds.entries]
    pick = motions[0]
    w = entry_weights(ds.entries, {"motion": {pick: 5}, "character_id": {ds.entries[-1]["character_id"]: 2}})
    expect = [(5.0 if m == pick else 1.0) * (2.0 if e["character_id"] == ds.entries[-1]["character_id"] else 1.0)
              for m, e in zip(motions, ds.entries)]
    assert w.tolist() == expect
    assert entry_weights(ds.entries, {}) is None
    with pytest.raises(ConfigError, match=r"data.oversample.motion.moonwalk matches no training clip \(values seen"):
        entry_weights(ds.entries, {"motion": {"moonwalk": 3}})
    with pytest.raises(ConfigError, match="no entry has that field"):
        entry_weights(ds.entries, {"mood": {"happy": 3}})


class _Indices:
    """A dataset whose item is its own index."""

    def __len__(self):
        return 4

    def get(self, index, rng):
        return {"index": torch.tensor(index)}


def test_batch_maker_draws_by_weight_and_uniformly_without():
    from animate_anyone.training.trainer import BatchMaker

    def counts(weights):
        maker = BatchMaker(_Indices(), seed=3, batch_size=8, process_index=0, weights=weights)
        drawn = torch.cat([maker(step, 0)["index"] for step in range(250)])
        return np.bincount(drawn.numpy(), minlength=4) / len(drawn)

    np.testing.assert_allclose(counts([1, 1, 6, 0]), [0.125, 0.125, 0.75, 0.0], atol=0.03)
    np.testing.assert_allclose(counts(None), [0.25] * 4, atol=0.03)
    same = BatchMaker(_Indices(), seed=3, batch_size=8, process_index=0, weights=[1, 1, 6, 0])
    again = BatchMaker(_Indices(), seed=3, batch_size=8, process_index=0, weights=[1, 1, 6, 0])
    assert torch.equal(same(7, 0)["index"], again(7, 0)["index"])  # a pure function of (seed, step): resumable


def test_oversample_config_is_typed_and_checked(tmp_path, lab_meta):
    from animate_anyone.errors import ConfigError

    cfg = _cfg(tmp_path, lab_meta, data={"meta": [str(lab_meta)], "oversample": {"character_id": {1: 3}}})
    assert cfg.data.oversample == {"character_id": {"1": 3.0}}
    with pytest.raises(ConfigError, match="data.oversample.motion.turn must be positive"):
        _cfg(tmp_path, lab_meta, data={"meta": [str(lab_meta)], "oversample": {"motion": {"turn": 0}}})
    with pytest.raises(ConfigError, match="data.oversample: expected a mapping"):
        _cfg(tmp_path, lab_meta, data={"meta": [str(lab_meta)], "oversample": ["turn"]})
    with pytest.raises(ConfigError, match="data.oversample.motion.turn: expected float"):
        _cfg(tmp_path, lab_meta, data={"meta": [str(lab_meta)], "oversample": {"motion": {"turn": "many"}}})


@pytest.fixture(scope="module")
def turning_meta(tmp_path_factory):
    plans = list(plan_clips("train", 2, 1, motion_types=("turn",)))
    return write_dataset(tmp_path_factory.mktemp("turns"), plans, num_frames=32, width=64, height=64, lossless=True)


def test_reference_hold_hides_the_reference_face_from_targets_that_face_away(tmp_path, turning_meta):
    from animate_anyone.errors import ConfigError, InputError
    from animate_anyone.pose import load_keypoints
    from animate_anyone.pose.facing import reference_hold

    cfg = _cfg(tmp_path, turning_meta, data={"meta": [str(turning_meta)], "width": 64, "height": 64,
                                             "sample_margin": 4, "crop_scale": [1.0, 1.0], "reference_hold": True})
    ds = build_dataset(cfg, clip_size=32)
    ds.crop_ratio = (1.0, 1.0)  # whole frames, so the expected masks need no crop
    held = 0
    for k in range(24):
        item = ds.get(k % len(ds), np.random.default_rng(k))
        i = int(item["index"])
        ref, tgt = ds.pick_frames(ds.entries[i]["num_frames"], np.random.default_rng(k))
        seq = load_keypoints(ds.entries[i]["keypoints_path"])
        expected = reference_hold(seq.body[ref], seq.body[[tgt]], (64, 64), face=seq.face[ref])
        assert item["ref_hold"].shape == (1, 64, 64) and item["ref_hold"].dtype == torch.bool
        assert (item["ref_hold"].numpy() == expected).all()
        held += bool(expected.any())
    assert 0 < held < 24  # some pairs face the same way, some do not
    clips = build_dataset(_cfg(tmp_path, turning_meta, stage="video", data={
        "meta": [str(turning_meta)], "width": 64, "height": 64, "num_frames": 4, "reference_hold": True}), clip_size=32)
    assert clips.get(0, np.random.default_rng(0))["ref_hold"].shape == (4, 64, 64)
    with pytest.raises(ConfigError, match="reference_hold"):
        _cfg(tmp_path, turning_meta, stage="vae", data={"meta": [str(turning_meta)], "reference_hold": True})
    bare = tmp_path / "bare.json"  # a meta file without keypoints files
    import json

    entries = json.loads(turning_meta.read_text())
    bare.write_text(json.dumps([{k: str(turning_meta.parent / v) if k.endswith("_path") else v
                                 for k, v in e.items() if k != "kps_path"} for e in entries]))
    with pytest.raises(InputError, match="reference_hold needs keypoints"):
        build_dataset(_cfg(tmp_path, bare, data={"meta": [str(bare)], "reference_hold": True}), clip_size=32)


def test_a_training_step_holds_the_reference_face_back(tmp_path, turning_meta, monkeypatch):
    from animate_anyone.models.animate_anyone import AnimateAnyoneModel
    from animate_anyone.training.trainer import Trainer

    seen = []
    forward = AnimateAnyoneModel.forward

    def spy(self, *args, ref_hold=None, **kwargs):
        seen.append(None if ref_hold is None else ref_hold.clone())
        return forward(self, *args, ref_hold=ref_hold, **kwargs)

    monkeypatch.setattr(AnimateAnyoneModel, "forward", spy)
    cfg = _cfg(tmp_path, turning_meta, batch_size=8, max_steps=2, noise={"uncond_ratio": 0.0},
               data={"meta": [str(turning_meta)], "width": 64, "height": 64, "sample_margin": 4, "reference_hold": True})
    trainer = Trainer(cfg)
    trainer.train()
    holds = [h for h in seen if h is not None]
    assert holds, "no batch of turning pairs had a target facing away"
    h = holds[0]
    assert h.dtype == torch.bool and h.shape[1:] == (1, 8, 8)  # (batch, frames, cells of the tiny 1/8 latent)
    assert 0 < h.float().mean() < 0.2
