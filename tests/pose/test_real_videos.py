"""MediaPipe extraction on the real videos of shared/assets (issue 3, acceptance 1-3).

Each real movement video is extracted once per session in tracking mode: every second frame (at
half the frame rate, which makes tracking harder, not easier) to keep the module fast on 2 CPU
cores, every frame with RUN_SLOW=1. The other tests use short clips. Skipped without mediapipe or
without the shared assets. Full-rate figures: benchmarks/pose_speed.py and docs/pose.md.
"""

import os

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_image, read_video, write_image, write_video
from animate_anyone.pose import clean_sequence, load_keypoints, prepare_driving_pose
from tests.conftest import ASSETS

pytest.importorskip("mediapipe", reason="needs the pose extra (mediapipe)")

MOVEMENT_VIDEOS = ("drive_dance_01.mp4", "drive_gesture_01.mp4")
STRIDE = 1 if os.environ.get("RUN_SLOW") else 2


@pytest.fixture(scope="session")
def assets():
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    return ASSETS


@pytest.fixture(scope="session")
def extracted(assets):
    from animate_anyone.pose.extract import MediaPipeExtractor, extract_raw

    out = {}
    for name in MOVEMENT_VIDEOS:
        video = read_video(assets / name)
        video.frames, video.fps = video.frames[::STRIDE], video.fps / STRIDE
        extractor = MediaPipeExtractor()
        try:
            raw = extract_raw(video.frames, *video.size, video.fps, extractor)
        finally:
            extractor.close()
        out[name] = (video, raw)
    return out


@pytest.fixture(scope="session")
def clip(assets, tmp_path_factory):
    """The first 8 frames of the gesture video (16 fps, 320x512)."""
    video = read_video(assets / "drive_gesture_01.mp4", max_frames=8)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", video.frames, video.fps)


@pytest.mark.parametrize("name", MOVEMENT_VIDEOS)
def test_body_found_in_95_percent_of_frames(extracted, name):
    video, raw = extracted[name]
    assert len(raw) == len(video) and raw.fps == video.fps
    rate = raw.detected.mean()
    assert rate >= 0.95, f"{name}: body found in {rate:.1%} of frames"
    # the main joints are confidently found where a body is
    found = raw.body[raw.detected][:, [0, 1, 2, 5, 8, 11], 2] >= 0.3
    assert found.mean() >= 0.95


@pytest.mark.parametrize("name", MOVEMENT_VIDEOS)
def test_smoothing_reduces_jitter(extracted, name):
    _, raw = extracted[name]
    clean, report = clean_sequence(raw)
    assert report.jitter_after < 0.7 * report.jitter_before, str(report)
    # and stays close to the detections (mean shift under 1 % of the frame's long side)
    found = raw.body[..., 2] >= 0.3
    shift = np.linalg.norm(clean.body[..., :2] - raw.body[..., :2], axis=-1)[found].mean()
    assert shift < 0.01 * max(raw.width, raw.height)


def test_hands_follow_their_wrists(extracted):
    _, raw = extracted["drive_gesture_01.mp4"]
    for k, wrist in ((0, 7), (1, 4)):  # hands[0] is the person's left hand
        ok = (raw.hands[:, k, 0, 2] > 0) & (raw.body[:, wrist, 2] > 0.5)
        assert ok.sum() > 10
        dist = np.linalg.norm(raw.hands[ok, k, 0, :2] - raw.body[ok, wrist, :2], axis=-1)
        assert np.median(dist) < 0.03 * raw.height


def test_extract_cli_keeps_frame_count_and_fps(clip, tmp_path, capsys):
    out = tmp_path / "kp.json"
    assert main(["pose", "extract", str(clip), "-o", str(out)]) == 0
    assert "person found in 8/8 frames" in capsys.readouterr().out
    seq = load_keypoints(out)
    assert (len(seq), seq.fps, seq.width, seq.height) == (8, 16, 320, 512)
    video = read_video(out.with_suffix(".mp4"))
    assert len(video) == 8 and video.fps == pytest.approx(16) and video.size == (320, 512)


def test_no_person_is_an_error_without_output(tmp_path, capsys):
    write_image(tmp_path / "blank.png", np.full((128, 96, 3), 127, np.uint8))
    write_video(tmp_path / "blank.mp4", np.full((3, 64, 64, 3), 127, np.uint8), fps=8)
    for name, expect in (("blank.png", "no person found in the image"), ("blank.mp4", "any of the 3 frames")):
        code = main(["pose", "extract", str(tmp_path / name), "-o", str(tmp_path / "k.json")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.mp4", "blank.png"]


def test_align_to_real_references(clip, assets, tmp_path, capsys):
    # a person in the reference: bone retargeting; a juice cup: box fit with a warning
    out = tmp_path / "a.json"
    ref = assets / "ref_human_fullbody_01.png"
    assert main(["pose", "align", "--ref", str(ref), "--pose", str(clip), "-o", str(out), "--no-video"]) == 0
    seq = load_keypoints(out)
    assert seq.meta["alignment"]["method"] == "bones" and (seq.width, seq.height) == read_image(ref).size
    assert main(["pose", "align", "--ref", str(assets / "ref_nonhumanoid_cup_01.png"), "--pose", str(out),
                 "-o", str(tmp_path / "b.json"), "--no-video"]) == 0  # fmt: skip
    assert "no person found in the reference image" in capsys.readouterr().err
    assert load_keypoints(tmp_path / "b.json").meta["alignment"]["method"] == "box"


def test_prepare_driving_pose_without_alignment(clip, assets):
    frames, fps, report = prepare_driving_pose(clip, read_image(assets / "ref_anime_fullbody_01.png"), align=False)
    assert frames.shape == (8, 512, 320, 3) and fps == 16 and report.alignment is None
    assert "align: off" in str(report)


def test_animate_with_driving_video(clip, assets, moore_folder, tmp_path, capsys):
    out = tmp_path / "anim.mp4"
    argv = ["animate", "--ref", str(assets / "ref_human_fullbody_01.png"), "--driving", str(clip),
            "--weights", str(moore_folder), "--output", str(out), "--width", "64", "--height", "64",
            "--steps", "1", "--num-frames", "4", "--context-frames", "4", "--context-overlap", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "person found in 4/4 frames" in stdout and "bone-length retargeting" in stdout  # only what is used
    video = read_video(out)
    assert len(video) == 4 and video.fps == pytest.approx(16)
