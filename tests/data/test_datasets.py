import json
import shutil

import numpy as np
import pytest
import torch

from animate_anyone.data.datasets import ClipDataset, DataWarning, ImagePairDataset, load_meta, make_dataset
from animate_anyone.data.video_io import write_video
from animate_anyone.errors import InputError
from animate_anyone.lab import plan_clips, write_dataset

W, H = 48, 64


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny lab data set, mp4 and lossless: 3 characters x 2 clips of 10 frames (split 'all')."""
    root = tmp_path_factory.mktemp("lab")
    plans = list(plan_clips("all", 3, 2, start=2))  # characters 2 (train), 3 and 4 (held out)
    return {
        "mp4": write_dataset(root / "mp4", plans, num_frames=10, width=40, height=56),
        "npz": write_dataset(root / "npz", plans, num_frames=10, width=40, height=56, lossless=True),
    }


def _check_ranges(x, lo, hi):
    assert x.dtype == torch.float32 and lo - 1e-5 <= float(x.min()) and float(x.max()) <= hi + 1e-5


def test_image_pairs_shapes_and_ranges(lab):
    ds = ImagePairDataset(lab["mp4"], W, H, clip_size=32, sample_margin=4)
    assert len(ds) == 6
    s = ds[1]
    assert s["ref_pixels"].shape == s["pixels"].shape == s["poses"].shape == (3, H, W)
    assert s["ref_clip"].shape == (3, 32, 32) and int(s["index"]) == 1
    _check_ranges(s["ref_pixels"], -1, 1)
    _check_ranges(s["pixels"], -1, 1)
    _check_ranges(s["poses"], 0, 1)
    assert float(s["poses"].max()) > 0.5 and float(s["ref_pixels"].std()) > 0.05
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["pixels"].shape == (4, 3, H, W)


def test_samples_depend_only_on_seed_epoch_and_index(lab):
    ds = ImagePairDataset(lab["npz"], W, H, clip_size=16, seed=3)
    a = [ds[i] for i in range(4)]
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, [ds[i] for i in range(4)]) for k in ("pixels", "poses"))
    ds.set_epoch(1)
    b = [ds[i] for i in range(4)]
    assert any(not torch.equal(x["pixels"], y["pixels"]) for x, y in zip(a, b))
    again = ImagePairDataset(lab["npz"], W, H, clip_size=16, seed=3)
    again.set_epoch(1)
    assert all(torch.equal(again[i]["ref_pixels"], b[i]["ref_pixels"]) for i in range(4))
    x, y = ds.get(1, np.random.default_rng(5)), ds.get(1, np.random.default_rng(5))
    assert torch.equal(x["pixels"], y["pixels"]) and torch.equal(x["ref_clip"], y["ref_clip"])


def test_reference_and_target_frames_respect_the_margin(lab):
    ds = ImagePairDataset(lab["npz"], W, H, sample_margin=5)
    rng = np.random.default_rng(0)
    for _ in range(200):
        ref, tgt = ds.pick_frames(10, rng)
        assert abs(ref - tgt) >= 5 or ref in (4, 5)  # the middle frames of 10 cannot be 5 away on one side
        assert 0 <= ref < 10 and 0 <= tgt < 10


def test_clip_dataset_shapes_stride_and_preload(lab):
    lazy = ClipDataset(lab["npz"], W, H, num_frames=4, stride=2, clip_size=16)
    mem = ClipDataset(lab["npz"], W, H, num_frames=4, stride=2, clip_size=16, preload=True)
    s, m = lazy[3], mem[3]
    assert s["pixels"].shape == s["poses"].shape == (3, 4, H, W)
    assert s["ref_pixels"].shape == (3, H, W) and s["ref_clip"].shape == (3, 16, 16)
    _check_ranges(s["pixels"], -1, 1)
    _check_ranges(s["poses"], 0, 1)
    assert all(torch.equal(s[k], m[k]) for k in ("pixels", "poses", "ref_pixels", "ref_clip"))
    idx, ref = lazy.pick_frames(10, np.random.default_rng(1))
    assert np.all(np.diff(idx) == 2) and 0 <= ref < 10
    long = ClipDataset(lab["npz"], W, H, num_frames=16, stride=4)
    idx, _ = long.pick_frames(10, np.random.default_rng(1))
    assert len(idx) == 16 and idx[0] == 0 and idx[-1] == 9  # short clip: whole clip, frames repeat
    cached = ClipDataset(lab["mp4"], W, H, num_frames=4, stride=2, clip_size=16, cache_clips=2)
    assert torch.equal(cached[3]["poses"], ClipDataset(lab["mp4"], W, H, num_frames=4, stride=2, clip_size=16)[3]["poses"])


def test_split_filter_and_reference_meta_layout(lab, tmp_path):
    entries = load_meta(lab["mp4"])
    train = ImagePairDataset(lab["mp4"], W, H, split="train")
    assert len(train) == sum(e["split"] == "train" for e in entries) < len(entries)
    # reference-implementation meta: only video_path and kps_path (= the pose video), absolute paths
    moore = tmp_path / "moore_meta.json"
    moore.write_text(json.dumps([{"video_path": e["video_path"], "kps_path": e["pose_path"]} for e in entries]))
    assert len(ClipDataset(moore, W, H, num_frames=2)) == len(entries)


def _bad_meta(lab, tmp_path):
    root = lab["mp4"].parent
    entries = json.loads(lab["mp4"].read_text())[:2]
    shutil.copy(root / entries[0]["video_path"], tmp_path / "good.mp4")
    shutil.copy(root / entries[0]["pose_path"], tmp_path / "good_pose.mp4")
    (tmp_path / "garbage.mp4").write_bytes(b"this is not a video")
    write_video(tmp_path / "short_pose.mp4", np.zeros((4, 56, 40, 3), np.uint8), 24)
    return [
        {"video_path": "good.mp4", "pose_path": "good_pose.mp4"},
        {"video_path": "missing.mp4", "pose_path": "good_pose.mp4"},
        {"video_path": "garbage.mp4", "pose_path": "good_pose.mp4"},
        {"video_path": "good.mp4", "pose_path": "short_pose.mp4"},
        {"video_path": "good.mp4"},
    ]


def test_bad_entries_are_reported_and_skipped(lab, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(_bad_meta(lab, tmp_path)))
    with pytest.warns(DataWarning) as record:
        ds = ImagePairDataset(meta, W, H, clip_size=16)
    messages = " ".join(str(w.message) for w in record)
    assert "missing.mp4" in messages and "garbage.mp4" in messages and "short_pose.mp4" in messages
    assert "4 frames" in messages and "no pose video" in messages
    assert len(ds) == 1 and len(ds.skipped) == 3
    assert ds[0]["pixels"].shape == (3, H, W)
    with pytest.warns(DataWarning):
        assert len(ClipDataset(meta, W, H, num_frames=3, preload=True)) == 1


def test_file_that_breaks_mid_epoch_is_replaced(lab, tmp_path):
    root = lab["mp4"].parent
    entries = json.loads(lab["mp4"].read_text())[:3]
    for e in entries:
        for key in ("video_path", "pose_path"):
            dst = tmp_path / e[key]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / e[key], dst)
    (tmp_path / "meta.json").write_text(json.dumps(entries))
    ds = ClipDataset(tmp_path / "meta.json", W, H, num_frames=3, clip_size=16)
    (tmp_path / entries[1]["video_path"]).write_bytes(b"truncated")  # breaks after the check
    with pytest.warns(DataWarning, match=entries[1]["video_path"].split("/")[-1]):
        s = ds[1]
    assert int(s["index"]) == 2
    again = ds[1]  # clip 1 now known bad: the stand-in is drawn exactly as on discovery
    assert all(torch.equal(s[k], again[k]) for k in s)
    assert [int(ds[i]["index"]) for i in range(3)] == [0, 2, 2]


def test_dataset_without_usable_entries_raises(lab, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(_bad_meta(lab, tmp_path)[1:]))
    with pytest.warns(DataWarning), pytest.raises(InputError, match="no usable clips"):
        ImagePairDataset(meta, W, H)
    with pytest.raises(InputError, match="not found"):
        ClipDataset(tmp_path / "nope.json", W, H)
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(InputError, match="JSON list"):
        ClipDataset(tmp_path / "obj.json", W, H)
    with pytest.raises(InputError, match="split 'nothing'"):
        ImagePairDataset(lab["mp4"], W, H, split="nothing")


def test_make_dataset_per_stage_and_several_meta_files(lab):
    img = make_dataset("image", [lab["mp4"], lab["npz"]], W, H, sample_margin=3, clip_size=16, in_memory=True)
    assert isinstance(img, ImagePairDataset) and len(img) == 12 and img.crop_scale == (0.9, 1.0)
    vid = make_dataset("video", lab["npz"], W, H, num_frames=5, sample_rate=2, split="heldout")
    assert isinstance(vid, ClipDataset) and vid.stride == 2 and vid.crop_scale == (1.0, 1.0)
    assert vid[0]["pixels"].shape == (3, 5, H, W)
    with pytest.raises(ValueError, match="stage"):
        make_dataset("audio", lab["npz"], W, H)
