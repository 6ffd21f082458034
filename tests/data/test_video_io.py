import numpy as np
import pytest

from animate_anyone.data.video_io import read_image, read_video, write_image, write_video
from animate_anyone.errors import InputError
from tests.conftest import ASSETS


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (5, 1, 1, 3), dtype=np.uint8), 32, axis=1).repeat(24, axis=2)
    out = write_video(tmp_path / "a.mp4", frames, fps=12.5)
    video = read_video(out)
    assert len(video) == 5 and video.size == (24, 32)
    assert video.fps == pytest.approx(12.5)
    assert np.abs(video.frames.astype(int) - frames).mean() < 6  # lossy but close
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # no temporary files left


def test_odd_size_is_padded(tmp_path):
    frames = np.zeros((2, 15, 17, 3), np.uint8)
    video = read_video(write_video(tmp_path / "odd.mp4", frames, 10))
    assert video.size == (18, 16)


def test_bad_inputs_raise_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="not a readable video"):
        read_video(tmp_path / "bad.mp4")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        read_video(tmp_path / "empty")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((0, 4, 4, 3), np.uint8), 10)
    assert list(tmp_path.iterdir()) == []


def test_image_folder_reads_in_name_order(tmp_path):
    for i, v in enumerate([30, 10, 20]):
        write_image(tmp_path / f"f{i:02d}.png", np.full((8, 8, 3), v, np.uint8))
    video = read_video(tmp_path)
    assert video.frames[:, 0, 0, 0].tolist() == [30, 10, 20]


def test_real_assets():
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    video = read_video(ASSETS / "pose_dwpose_01.mp4")
    assert len(video) == 136 and video.size == (512, 768) and video.fps == pytest.approx(30)
    img = read_image(ASSETS / "ref_human_fullbody_01.png")  # RGBA on disk
    assert img.mode == "RGB" and img.size == (622, 913)
