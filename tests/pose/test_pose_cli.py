"""`animate-anyone pose render|align|extract` on stored keypoints, and their bad-input behaviour
(none of these run a pose model)."""

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_image, read_video, write_image, write_video
from animate_anyone.pose import PoseSequence, load_keypoints, save_keypoints
from animate_anyone.pose.render import BODY_COLORS
from tests.pose.test_align import driving, reference


@pytest.fixture
def files(tmp_path):
    drv, _ = driving(num_frames=6)
    save_keypoints(drv, tmp_path / "drv.json")
    ref = reference(400, 600)
    save_keypoints(ref, tmp_path / "ref.npz")
    write_image(tmp_path / "ref.png", np.full((600, 400, 3), 200, np.uint8))
    return tmp_path


def _fails(argv, capsys, folder, expect):
    before = sorted(p.name for p in folder.iterdir())
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and expect in err, err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written, no temporary left


def test_render_video_and_image(files):
    assert main(["pose", "render", str(files / "drv.json"), "-o", str(files / "r.mp4"), "--width", "320",
                 "--height", "180"]) == 0  # fmt: skip
    video = read_video(files / "r.mp4")
    assert len(video) == 6 and video.fps == pytest.approx(12) and video.size == (320, 180)
    assert main(["pose", "render", str(files / "ref.npz"), "-o", str(files / "r.png")]) == 0
    img = np.asarray(read_image(files / "r.png"))
    ref = load_keypoints(files / "ref.npz")
    x, y = ref.body[0, 1, :2].astype(int)
    assert img.shape == (600, 400, 3) and tuple(img[y, x]) == BODY_COLORS[1]


def test_align_with_reference_keypoints(files, capsys):
    out = files / "out" / "aligned.json"
    argv = ["pose", "align", "--ref", str(files / "ref.png"), "--ref-pose", str(files / "ref.npz"),
            "--pose", str(files / "drv.json"), "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "bone-length retargeting" in capsys.readouterr().out
    seq = load_keypoints(out)
    assert (seq.width, seq.height, len(seq), seq.fps) == (400, 600, 6, 12)
    assert seq.meta["alignment"]["method"] == "bones"
    video = read_video(out.with_suffix(".mp4"))
    assert len(video) == 6 and video.size == (400, 600)


def test_align_without_reference_pose_uses_box_fit(files, capsys):
    empty = PoseSequence.empty(1, 400, 600)
    save_keypoints(empty, files / "none.json")
    argv = ["pose", "align", "--ref", str(files / "ref.png"), "--ref-pose", str(files / "none.json"),
            "--pose", str(files / "drv.json"), "-o", str(files / "a.npz"), "--no-video"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "box fit" in captured.out and "warning: no person found in the reference" in captured.err
    assert sorted(p.name for p in files.iterdir()) == ["a.npz", "drv.json", "none.json", "ref.npz", "ref.png"]


def test_bad_inputs(files, capsys, tmp_path):
    kp = str(files / "drv.json")
    _fails(["pose", "render", kp, "-o", str(files / "x.avi")], capsys, files, "must be an .mp4")
    _fails(["pose", "render", kp, "-o", str(files / "x.png")], capsys, files, "must be an .mp4")
    _fails(["pose", "render", kp, "-o", str(files / "x.mp4"), "--width", "0"], capsys, files, "--width")
    (files / "bad.json").write_text("{")
    _fails(["pose", "render", str(files / "bad.json"), "-o", str(files / "x.mp4")], capsys, files, "unreadable")
    _fails(["pose", "extract", str(files / "missing.mp4"), "-o", str(files / "k.json")], capsys, files, "not found")
    (files / "corrupt.mp4").write_bytes(b"garbage" * 100)
    _fails(["pose", "extract", str(files / "corrupt.mp4"), "-o", str(files / "k.json")], capsys, files,
           "not a readable video")  # fmt: skip
    _fails(["pose", "extract", str(files / "corrupt.mp4"), "-o", str(files / "k.txt")], capsys, files,
           ".json or .npz")  # fmt: skip
    write_video(files / "tiny.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=5)
    _fails(["pose", "extract", str(files / "tiny.mp4"), "-o", str(files / "k.json"), "--dwpose-dir",
            str(files / "no_models")], capsys, files, "yolox_l.onnx")  # fmt: skip
    _fails(["pose", "align", "--ref", str(files / "missing.png"), "--pose", kp, "-o", str(files / "a.json")],
           capsys, files, "image not found")  # fmt: skip


def test_zero_frame_video(files, capsys):
    import av

    empty = files / "zero.mkv"
    with av.open(str(empty), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        c.start_encoding()
    _fails(["pose", "extract", str(empty), "-o", str(files / "k.json")], capsys, files, "no frames")


def test_animate_driving_option_errors(files, capsys):
    write_video(files / "pose.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=5)
    (files / "corrupt.mp4").write_bytes(b"garbage" * 100)
    base = ["animate", "--ref", str(files / "ref.png"), "--weights", str(files / "none"), "-o", str(files / "o.mp4")]
    _fails(base + ["--pose", str(files / "pose.mp4"), "--no-align"], capsys, files, "only apply with --driving")
    _fails(base + ["--driving", str(files / "corrupt.mp4")], capsys, files, "not a readable video")
