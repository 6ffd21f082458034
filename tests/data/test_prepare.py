"""`data prepare`: real videos -> keypoints, pose videos and a meta file; resumable; bad videos skipped."""

import json
import os

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_video

from ..conftest import ASSETS

pytest.importorskip("mediapipe")


def test_prepare_real_video_resume_and_bad_files(tmp_path, capsys):
    src = ASSETS / "drive_gesture_01.mp4"
    if not src.is_file():
        pytest.skip(f"shared asset not found: {src}")
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    os.symlink(src, videos / "a" / "gesture.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video")
    meta = tmp_path / "data" / "meta.json"
    assert main(["data", "prepare", str(videos), "-o", str(meta), "--split", "train"]) == 0
    entries = json.loads(meta.read_text())
    assert len(entries) == 1 and entries[0]["split"] == "train"
    pose = read_video(meta.parent / entries[0]["pose_path"])
    original = read_video(src)
    assert len(pose.frames) == len(original.frames) and abs(pose.fps - original.fps) < 1e-3
    assert (meta.parent / entries[0]["kps_path"]).is_file()
    err = capsys.readouterr()
    assert "broken.mp4: skipped" in err.err
    # second run: nothing to extract again
    assert main(["data", "prepare", str(videos), "-o", str(meta)]) == 0
    assert "1 already done" in capsys.readouterr().out
    # the training dataset reads the prepared data
    from animate_anyone.data.datasets import make_dataset

    ds = make_dataset("image", meta, 64, 64, sample_margin=4, clip_size=32)
    item = ds.get(0, __import__("numpy").random.default_rng(0))
    assert item["pixels"].shape == (3, 64, 64) and item["poses"].max() > 0


def test_prepare_rejects_empty_folder(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    assert main(["data", "prepare", str(tmp_path / "v"), "-o", str(tmp_path / "m.json")]) == 2
    assert "no videos found" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_prepare_face_maps_for_talking_heads(tmp_path, capsys):
    talk = ASSETS / "talk_01.mp4"
    if not talk.is_file():
        pytest.skip(f"shared asset not found: {talk}")
    videos = tmp_path / "videos"
    videos.mkdir()
    os.symlink(talk, videos / "talk.mp4")
    os.symlink(ASSETS / "pose_dwpose_image_01.png", videos / "skeleton.png")  # not a video: ignored
    meta = tmp_path / "faces.json"
    assert main(["data", "prepare", str(videos), "-o", str(meta), "--face"]) == 0
    (entry,) = json.loads(meta.read_text())
    upper = read_video(tmp_path / entry["face_upper_path"]).frames
    mouth = read_video(tmp_path / entry["face_mouth_path"]).frames
    n = len(read_video(talk).frames)
    assert len(upper) == len(mouth) == n
    h = upper.shape[1]
    assert upper[:, : int(0.5 * h)].max() > 200 and upper[:, int(0.56 * h) :].max() < 40  # blanked below 0.55 H
    # the mouth is re-centred: its dots sit around the frame centre in every frame
    ys, xs = np.nonzero(mouth[..., 1].max(0) > 128)
    assert abs(xs.mean() - mouth.shape[2] / 2) < 0.15 * mouth.shape[2]
    assert "face in" in capsys.readouterr().err
    # resumable: the maps are part of "done"
    (tmp_path / entry["face_mouth_path"]).unlink()
    assert main(["data", "prepare", str(videos), "-o", str(meta), "--face"]) == 0
    assert "1 extracted" in capsys.readouterr().out
