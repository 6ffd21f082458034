"""`animate-anyone animate` end to end on the fixture weights, and its bad-input behaviour."""

import shutil

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_video, write_image, write_video
from tests.conftest import ASSETS


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    ref = write_image(tmp_path / "ref.png", rng.integers(0, 255, (80, 60, 3), dtype=np.uint8))
    pose = write_video(tmp_path / "pose.mp4", rng.integers(0, 255, (5, 64, 48, 3), dtype=np.uint8), fps=12)
    return ref, pose


def _args(ref, pose, weights, out, *extra):
    return ["animate", "--ref", str(ref), "--pose", str(pose), "--weights", str(weights), "--output", str(out),
            "--width", "64", "--height", "64", "--steps", "1", "--quiet", *extra]


def test_animate_writes_video_grid_and_array(inputs, moore_folder, tmp_path):
    ref, pose = inputs
    out = tmp_path / "out" / "result.mp4"
    arr = tmp_path / "out" / "frames.npy"
    assert main(_args(ref, pose, moore_folder, out, "--grid", "--save-array", str(arr))) == 0
    video = read_video(out)
    assert len(video) == 5 and video.size == (64, 64) and video.fps == pytest.approx(12)
    grid = read_video(out.with_name("result_grid.mp4"))
    assert grid.size == (192, 64) and len(grid) == 5
    frames = np.load(arr)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.float32
    assert 0 <= frames.min() and frames.max() <= 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["frames.npy", "result.mp4", "result_grid.mp4"]


def test_pose_folder_and_num_frames(inputs, moore_folder, tmp_path):
    ref, _ = inputs
    folder = tmp_path / "poses"
    for i in range(4):
        write_image(folder / f"{i:03d}.png", np.full((64, 64, 3), 40 * i, np.uint8))
    out = tmp_path / "r.mp4"
    assert main(_args(ref, folder, moore_folder, out, "--num-frames", "3")) == 0
    assert len(read_video(out)) == 3


def _fails(argv, capsys, tmp_path, expect):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and expect in err, err
    assert not list(tmp_path.glob("**/*.mp4.tmp*")) and not (tmp_path / "o.mp4").exists()


def test_bad_inputs(inputs, moore_folder, tmp_path, capsys):
    ref, pose = inputs
    out = tmp_path / "o.mp4"
    _fails(_args(tmp_path / "missing.png", pose, moore_folder, out), capsys, tmp_path, "image not found")
    (tmp_path / "corrupt.png").write_bytes(b"garbage")
    _fails(_args(tmp_path / "corrupt.png", pose, moore_folder, out), capsys, tmp_path, "not a readable image")
    (tmp_path / "corrupt.mp4").write_bytes(b"garbage" * 100)
    _fails(_args(ref, tmp_path / "corrupt.mp4", moore_folder, out), capsys, tmp_path, "not a readable video")
    (tmp_path / "empty").mkdir()
    _fails(_args(ref, tmp_path / "empty", moore_folder, out), capsys, tmp_path, "no images")
    _fails(_args(ref, pose, tmp_path / "empty", out), capsys, tmp_path, "unusable weights folder")
    _fails(_args(ref, pose, moore_folder, out, "--num-frames", "50"), capsys, tmp_path, "exceeds")
    _fails(_args(ref, pose, moore_folder, out, "--width", "65"), capsys, tmp_path, "multiples of 8")
    _fails(_args(ref, pose, moore_folder, out, "--strength", "1.5"), capsys, tmp_path, "strength must be in")
    broken = tmp_path / "broken"
    shutil.copytree(moore_folder, broken)
    (broken / "pose_guider.pth").write_bytes(b"\x00" * 100)
    _fails(_args(ref, pose, broken, out), capsys, tmp_path, "pose_guider.pth")


def test_failed_compile_is_one_line_and_writes_nothing(inputs, moore_folder, tmp_path, capsys, monkeypatch):
    """`--compile` where the compiler backend fails (as inductor does without a C++ compiler): Dynamo's
    BackendCompilerFailed becomes one line on stderr, exit 2, no output file."""
    import torch

    from animate_anyone.pipelines.pipeline_animate import AnimateAnyonePipeline

    def no_compiler(gm, example_inputs):
        raise RuntimeError("no C++ compiler found")

    compile_ = AnimateAnyonePipeline.compile
    monkeypatch.setattr(AnimateAnyonePipeline, "compile", lambda self: compile_(self, backend=no_compiler))
    ref, pose = inputs
    try:
        _fails(_args(ref, pose, moore_folder, tmp_path / "o.mp4", "--compile"), capsys, tmp_path,
               "could not compile the denoising UNet (no C++ compiler found)")
    finally:
        torch._dynamo.reset()  # no compiled state leaks into later tests


def test_zero_frame_video(inputs, moore_folder, tmp_path, capsys):
    import av

    ref, _ = inputs
    empty = tmp_path / "zero.mkv"
    with av.open(str(empty), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        c.start_encoding()
    _fails(_args(ref, empty, moore_folder, tmp_path / "o.mp4"), capsys, tmp_path, "no frames")


def test_real_pose_video_asset(moore_folder, tmp_path):
    if not ASSETS.is_dir():
        pytest.skip(f"shared assets not found at {ASSETS}")
    out = tmp_path / "real.mp4"
    argv = _args(ASSETS / "ref_human_fullbody_01.png", ASSETS / "pose_dwpose_01.mp4", moore_folder, out,
                 "--num-frames", "6", "--context-frames", "4", "--context-overlap", "1")
    assert main(argv) == 0
    video = read_video(out)
    assert len(video) == 6 and video.fps == pytest.approx(30)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from animate_anyone.models import get_preset
    from animate_anyone.pipelines import AnimateAnyonePipeline
    from animate_anyone.weights.layouts import save_pipeline

    return save_pipeline(AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0),
                         tmp_path_factory.mktemp("w") / "tiny")


def test_settings_come_from_the_weights_folder_unless_a_flag_is_given(inputs, tiny_folder, tmp_path, capsys,
                                                                      monkeypatch):
    """A model folder's demo.json recommends its frame size, steps, guidance and context windows
    (a lab model trained at 128x128 would otherwise run at the reference app's 512x768); every
    flag still overrides, and a folder without the file gets the app's defaults."""
    import json

    from animate_anyone.pipelines.pipeline_animate import AnimateAnyonePipeline

    calls = []
    real_call = AnimateAnyonePipeline.__call__

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real_call(self, *args, **{**kwargs, "num_inference_steps": 1})  # keep the test fast

    monkeypatch.setattr(AnimateAnyonePipeline, "__call__", spy)
    ref, pose = inputs
    weights = tmp_path / "w"
    shutil.copytree(tiny_folder, weights)
    (weights / "demo.json").write_text(json.dumps({"settings": {
        "size": 40, "steps": 7, "guidance": 1.0, "context_frames": 4, "context_overlap": 1, "frames": 99,
        "hold_steps": 0.25, "keep_steps": 0.5}}))
    base = ["animate", "--ref", str(ref), "--pose", str(pose), "--weights", str(weights), "--quiet"]

    assert main([*base, "-o", str(tmp_path / "a.mp4")]) == 0
    assert "settings from" in capsys.readouterr().out
    assert read_video(tmp_path / "a.mp4").size == (40, 40) and len(read_video(tmp_path / "a.mp4")) == 5
    kw = calls[-1]
    assert (kw["width"], kw["height"], kw["num_inference_steps"], kw["guidance_scale"]) == (40, 40, 7, 1.0)
    assert (kw["context_frames"], kw["context_overlap"], kw["num_frames"]) == (4, 1, 5)
    assert (kw["reference_hold_steps"], kw["reference_keep_steps"]) == (0.25, 0.5)  # --hold-steps, --keep-steps

    assert main([*base, "-o", str(tmp_path / "b.mp4"), "--width", "48", "--steps", "2", "--guidance-scale", "2"]) == 0
    kw = calls[-1]
    assert (kw["width"], kw["height"], kw["num_inference_steps"], kw["guidance_scale"]) == (48, 40, 2, 2.0)
    assert read_video(tmp_path / "b.mp4").size == (48, 40)
    assert ": height 40, context-frames 4, context-overlap 1, hold-steps 0.25, keep-steps 0.5 (" in \
        capsys.readouterr().out  # only what came from the file

    (weights / "demo.json").unlink()  # no recommendation: the reference app's defaults
    assert main([*base, "-o", str(tmp_path / "c.mp4"), "--width", "40", "--height", "40"]) == 0
    assert "settings from" not in capsys.readouterr().out
    kw = calls[-1]
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["context_frames"], kw["context_overlap"]) == (25, 3.5, 24, 4)

    (weights / "demo.json").write_text('{"settings": {"guidance_scale": 1.0}}')  # a typo is an error, not a default
    _fails([*base, "-o", str(tmp_path / "o.mp4")], capsys, tmp_path, "unknown setting 'guidance_scale'")
    # a frame too small for the tiny UNet's group norms: one line naming the smallest usable size
    (weights / "demo.json").unlink()
    _fails([*base, "-o", str(tmp_path / "o.mp4"), "--width", "32", "--height", "32"], capsys, tmp_path,
           "32x32 is too small for this model")


def _lab_driving(index, frames, gap, tiny_folder, tmp_path, monkeypatch):
    """Held-out lab example ``index`` at 64x64 written as a reference image and reference/driving
    keypoint files; returns (clip, slice, driving keypoints, the recorded pipeline calls' keyword
    arguments, the animate arguments up to the pose input)."""
    from animate_anyone.demo import heldout_clip
    from animate_anyone.pipelines.pipeline_animate import AnimateAnyonePipeline
    from animate_anyone.pose import save_keypoints

    clip, sl = heldout_clip(index, 64, frames, gap)
    truth = clip.poses.frames(sl)
    ref = write_image(tmp_path / "ref.png", clip.frames[0])
    save_keypoints(clip.poses.frames(slice(0, 1)), tmp_path / "ref.npz")
    save_keypoints(truth, tmp_path / "drv.npz")
    calls = []
    real_call = AnimateAnyonePipeline.__call__
    monkeypatch.setattr(AnimateAnyonePipeline, "__call__", lambda self, *a, **kw: (calls.append(kw), real_call(self, *a, **kw))[1])
    base = ["animate", "--ref", str(ref), "--weights", str(tiny_folder), "--width", "64", "--height", "64",
            "--steps", "2", "--quiet"]  # fmt: skip
    return clip, sl, truth, calls, base


def test_hold_steps_hold_the_head_of_driving_frames_that_face_away(tiny_folder, tmp_path, capsys, monkeypatch):
    """--driving keypoints of a lab character turning its back: the frames that face away get a
    head mask, the others none; a rendered pose video has no keypoints, so nothing is held."""
    from animate_anyone.pose.facing import facing_away

    # held-out example 0 turns away from the camera
    clip, sl, truth, calls, base = _lab_driving(0, 12, 16, tiny_folder, tmp_path, monkeypatch)
    away = facing_away(clip.poses.body[0], truth.body)
    assert away.any() and (~away).any()
    argv = [*base, "--driving", str(tmp_path / "drv.npz"), "--ref-pose", str(tmp_path / "ref.npz"),
            "-o", str(tmp_path / "a.mp4"), "--hold-steps", "0.5"]  # fmt: skip
    assert main(argv) == 0
    assert f"reference hold: {int(away.sum())} of {len(away)} frames face away" in capsys.readouterr().out
    hold, steps = calls[-1]["reference_hold"], calls[-1]["reference_hold_steps"]
    assert steps == 0.5 and hold.shape == (len(away), 64, 64)
    assert (hold.any(axis=(1, 2)) == away).all()
    assert hold[away].mean() < 0.2  # the head, not the frame

    assert main([*base, "--driving", str(tmp_path / "drv.npz"), "--ref-pose", str(tmp_path / "ref.npz"),
                 "-o", str(tmp_path / "b.mp4")]) == 0  # off by default (no demo.json here)
    assert calls[-1]["reference_hold"] is None and "reference hold" not in capsys.readouterr().out

    write_video(tmp_path / "pose.mp4", clip.pose_maps()[sl], fps=12)
    assert main([*base, "--pose", str(tmp_path / "pose.mp4"), "-o", str(tmp_path / "c.mp4"), "--hold-steps", "1"]) == 0
    assert calls[-1]["reference_hold"] is None and "reference hold: off" in capsys.readouterr().out
    _fails([*base, "--pose", str(tmp_path / "pose.mp4"), "-o", str(tmp_path / "o.mp4"), "--hold-steps", "2"],
           capsys, tmp_path, "--hold-steps must be in [0, 1]")


def test_keep_steps_keep_what_the_driving_keypoints_leave_still(tiny_folder, tmp_path, capsys, monkeypatch):
    """--driving keypoints of a lab character talking: most of the picture is kept, no moved point
    is; a rendered pose video has no keypoints, so nothing is kept."""
    # held-out example 60 talks and gestures
    clip, sl, truth, calls, base = _lab_driving(60, 6, 8, tiny_folder, tmp_path, monkeypatch)
    drv = ["--driving", str(tmp_path / "drv.npz"), "--ref-pose", str(tmp_path / "ref.npz"), "--no-align"]
    assert main([*base, *drv, "-o", str(tmp_path / "a.mp4"), "--keep-steps", "0.5"]) == 0
    assert "reference keep: " in capsys.readouterr().out
    keep, steps = calls[-1]["reference_keep"], calls[-1]["reference_keep_steps"]
    assert steps == 0.5 and keep.shape == (len(truth.body), 64, 64)
    assert keep.mean() > 0.6 and not keep.all(axis=0).all()
    moved = np.linalg.norm(truth.body[:, :, :2] - clip.poses.body[0][None, :, :2], axis=-1) > 1.0
    t, k = np.nonzero(moved & (truth.body[:, :, 2] > 0.3))
    assert len(t) and not keep[t, np.floor(truth.body[t, k, 1]).astype(int), np.floor(truth.body[t, k, 0]).astype(int)].any()

    assert main([*base, *drv, "-o", str(tmp_path / "b.mp4")]) == 0  # off by default (no demo.json here)
    assert calls[-1]["reference_keep"] is None and "reference keep" not in capsys.readouterr().out
    write_video(tmp_path / "pose.mp4", clip.pose_maps()[sl], fps=12)
    assert main([*base, "--pose", str(tmp_path / "pose.mp4"), "-o", str(tmp_path / "c.mp4"), "--keep-steps", "1"]) == 0
    assert calls[-1]["reference_keep"] is None and "reference keep: off" in capsys.readouterr().out
    _fails([*base, "--pose", str(tmp_path / "pose.mp4"), "-o", str(tmp_path / "o.mp4"), "--keep-steps", "-1"],
           capsys, tmp_path, "--keep-steps must be in [0, 1]")
