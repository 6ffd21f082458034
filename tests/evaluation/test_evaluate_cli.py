"""``animate-anyone evaluate`` end to end (acceptance 2 of issue 5) and its error handling."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_video, write_image, write_video
from animate_anyone.evaluation.evaluate import EvaluationSettings, evaluate
from animate_anyone.pose.keypoints import save_keypoints
from tests.conftest import ASSETS
from tests.evaluation.test_pose_metrics import COLOURS, H, T, W, _paint, fake_detector, make_driving


@pytest.fixture
def real_video():
    path = ASSETS / "drive_gesture_01.mp4"
    if not path.is_file():
        pytest.skip(f"shared asset {path} not found")
    return path


def _run(capsys, *args):
    rc = main(["evaluate", *map(str, args), "--quiet"])
    return rc, capsys.readouterr()


def _noise_video(path, frames, height, width, seed, fps=12.0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    video = np.clip(base.astype(int) + rng.integers(-10, 11, (frames, height, width, 3)), 0, 255).astype(np.uint8)
    write_video(path, video, fps)
    return path


def test_real_video_against_itself_and_a_shifted_copy(tmp_path, capsys, real_video):
    frames = read_video(real_video, max_frames=12)
    shifted = np.concatenate([np.repeat(frames.frames[:, :, :1], 8, axis=2), frames.frames[:, :, :-8]], axis=2)
    shifted_path = write_video(tmp_path / "shifted.mp4", shifted, frames.fps)

    rc, out = _run(capsys, "--pred", real_video, "--gt", real_video, "--max-frames", 12, "-o", tmp_path / "self")
    assert rc == 0, out.err
    same = json.loads((tmp_path / "self" / "metrics.json").read_text())
    scores = same["videos"][0]["scores"]
    assert scores["psnr"] == 100 and scores["ssim"] == 1 and scores["l1"] == 0 and scores["psnr_disco_uint8"] == 100
    assert scores["flicker"] == pytest.approx(scores["flicker_gt"])
    assert "lpips" in same["skipped"] and "alexnet-owt-7be5be79.pth" in same["skipped"]["lpips"]

    rc, out = _run(capsys, "--pred", shifted_path, "--gt", real_video, "--max-frames", 12, "-o", tmp_path / "shift")
    assert rc == 0, out.err
    report = tmp_path / "shift"
    shift = json.loads((report / "metrics.json").read_text())
    s = shift["videos"][0]["scores"]
    assert 10 < s["psnr"] < 30 and 0.2 < s["ssim"] < 0.95 and s["l1"] > 0.01
    assert s["psnr_disco_uint8"] >= s["psnr"]  # the wrap-around convention reads higher
    assert len(shift["videos"][0]["per_frame"]["psnr"]) == 12
    assert shift["common_size_rule"].startswith("both videos cut to the shorter frame count")
    for name in ("metrics.md", "index.html", "plots/shifted_per_frame.png", "videos/shifted.mp4", "videos/shifted.jpg"):
        assert (report / name).is_file(), name
    assert "| shifted |" in (report / "metrics.md").read_text()
    assert "videos/shifted.mp4" in (report / "index.html").read_text()
    assert read_video(report / "videos" / "shifted.mp4").size == (2 * 320, 512)  # generated | ground truth


def test_folders_are_paired_by_name_with_common_size_and_categories(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    for i, name in enumerate(("a", "b")):
        _noise_video(pred / f"{name}.mp4", 10, 48, 64, seed=i)
        _noise_video(gt / f"{name}.mp4", 12, 64, 80, seed=i)
    _noise_video(gt / "unused.mp4", 8, 64, 80, seed=9)
    (tmp_path / "cats.json").write_text(json.dumps({"a": "human", "b": "cartoon"}))
    rc, out = _run(capsys, "--pred", pred, "--gt", gt, "--categories", tmp_path / "cats.json", "--no-videos",
                   "-o", tmp_path / "report")  # fmt: skip
    assert rc == 0, out.err
    data = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert [v["name"] for v in data["videos"]] == ["a", "b"]
    align = data["videos"][0]["alignment"]
    assert align["eval_size"] == [80, 64] and align["eval_frames"] == 10 and align["pred_size"] == [64, 48]
    assert any("lengths differ" in n for n in align["notes"]) and any("aspect ratios" in n for n in align["notes"])
    assert set(data["categories"]) == {"human", "cartoon"}
    assert (tmp_path / "report" / "plots" / "categories.png").is_file()
    assert "## Per category" in (tmp_path / "report" / "metrics.md").read_text()
    assert not (tmp_path / "report" / "videos").exists()


def test_driving_pose_reference_and_injected_detector(tmp_path):
    driving = make_driving()
    frames = np.stack([_paint(driving.body[t], COLOURS) for t in range(T)])
    write_video(tmp_path / "gen.mp4", frames, 24)
    write_video(tmp_path / "gt.mp4", frames, 24)
    save_keypoints(driving, tmp_path / "drive.json")
    save_keypoints(driving.frames(slice(0, 1)), tmp_path / "ref.json")
    write_image(tmp_path / "ref.png", frames[0])
    settings = EvaluationSettings(detector=fake_detector(driving))
    result = evaluate(tmp_path / "gen.mp4", tmp_path / "gt.mp4", driving=tmp_path / "drive.json",
                      ref=tmp_path / "ref.png", ref_pose=tmp_path / "ref.json", settings=settings, progress=False)  # fmt: skip
    s = result.videos[0].scores
    assert s["pck@0.05"] == 1.0 and s["pck@0.1"] == 1.0 and s["detection_rate"] == 1.0
    assert s["appearance"] < 0.25 and s["appearance_gt"] == pytest.approx(s["appearance"])
    assert "pose" in result.metrics and "appearance" in result.metrics and "flicker" in result.metrics


def test_missing_detector_skips_pose_metrics_with_a_note(tmp_path, monkeypatch):
    from animate_anyone.errors import InputError
    from animate_anyone.evaluation import evaluate as E

    def no_detector():
        raise InputError("pose detection needs the pose extra")

    monkeypatch.setattr(E, "default_detector", no_detector)
    driving = make_driving()
    _noise_video(tmp_path / "v.mp4", T, H, W, seed=0)
    save_keypoints(driving, tmp_path / "drive.json")
    result = evaluate(tmp_path / "v.mp4", tmp_path / "v.mp4", driving=tmp_path / "drive.json", progress=False)
    assert "pose" in result.skipped and "pose extra" in result.skipped["pose"]
    assert result.videos[0].scores["still_fraction"] < 1  # flicker still used the driving keypoints


def _lpips_weights(folder):
    from animate_anyone.evaluation.networks import LPIPS

    folder.mkdir()
    model = LPIPS("alex")
    torch.save(model.backbone.state_dict(), folder / "alexnet-owt-7be5be79.pth")
    torch.save(model.linear.state_dict(), folder / "alex.pth")
    return folder


def test_lpips_runs_from_a_weights_folder(tmp_path, capsys):
    weights = _lpips_weights(tmp_path / "weights")
    video = _noise_video(tmp_path / "v.mp4", 4, 48, 64, seed=0)
    other = _noise_video(tmp_path / "w.mp4", 4, 48, 64, seed=1)
    rc, out = _run(capsys, "--pred", video, "--gt", other, "--weights-dir", weights, "--metrics", "psnr,lpips",
                   "--no-videos", "-o", tmp_path / "r")  # fmt: skip
    assert rc == 0, out.err
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data["metrics"] == ["psnr", "lpips"] and data["videos"][0]["scores"]["lpips"] != 0  # random weights: any sign
    assert "skipped" in data and data["skipped"] == {}


def _corrupt(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return bad


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "not found"),
        ("corrupt", "not a readable video"),
        ("lpips_without_weights", "alexnet-owt-7be5be79.pth"),
        ("unknown_metric", "unknown metric"),
        ("folder_vs_file", "two videos or two folders"),
        ("bad_size", "WIDTHxHEIGHT"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_report(tmp_path, capsys, case, message):
    good = _noise_video(tmp_path / "good.mp4", 3, 32, 32, seed=0)
    folder = tmp_path / "folder"
    folder.mkdir()
    args = {
        "missing": ["--pred", tmp_path / "nope.mp4", "--gt", good],
        "corrupt": ["--pred", _corrupt(tmp_path), "--gt", good],
        "lpips_without_weights": ["--pred", good, "--gt", good, "--metrics", "lpips"],
        "unknown_metric": ["--pred", good, "--gt", good, "--metrics", "psnr,sharpness"],
        "folder_vs_file": ["--pred", folder, "--gt", good],
        "bad_size": ["--pred", good, "--gt", good, "--size", "big"],
    }[case]
    out_dir = tmp_path / "reports" / "run"
    rc, out = _run(capsys, *args, "-o", out_dir)
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("animate-anyone: error:") and message in lines[0], out.err
    assert not (tmp_path / "reports").exists()


def test_existing_report_needs_overwrite(tmp_path, capsys):
    good = _noise_video(tmp_path / "good.mp4", 3, 32, 32, seed=0)
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("x")
    rc, out = _run(capsys, "--pred", good, "--gt", good, "--no-videos", "-o", out_dir)
    assert rc == 2 and "--overwrite" in out.err and (out_dir / "keep.txt").exists()
    rc, out = _run(capsys, "--pred", good, "--gt", good, "--no-videos", "--overwrite", "-o", out_dir)
    assert rc == 0 and (out_dir / "metrics.json").is_file() and not (out_dir / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tmp_path, capsys):
    browser = find_browser()
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell); see docs/evaluation.md")
    pred = _noise_video(tmp_path / "clip.mp4", 6, 96, 64, seed=0)
    gt = _noise_video(tmp_path / "gt.mp4", 6, 96, 64, seed=1)
    rc, out = _run(capsys, "--pred", pred, "--gt", gt, "-o", tmp_path / "report")
    assert rc == 0, out.err
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,800",
           f"--screenshot={shot}", (tmp_path / "report" / "index.html").as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert shot.is_file(), "the browser wrote no screenshot"
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (800, 1000)
    assert img.std() > 10  # text, table and the poster frame, not a blank page
    assert (img.reshape(-1, 3) != 255).any(axis=1).mean() > 0.05


def test_driving_video_goes_through_the_detector(tmp_path):
    _noise_video(tmp_path / "v.mp4", T, H, W, seed=0)
    _noise_video(tmp_path / "drive.mp4", T + 2, H, W, seed=1)  # longer than the videos: cut to them

    def detector(frames):  # "finds" the standing figure in any video
        return make_driving(len(frames))

    settings = EvaluationSettings(detector=detector, metrics=("psnr", "pose", "flicker"))
    result = evaluate(tmp_path / "v.mp4", tmp_path / "v.mp4", driving=tmp_path / "drive.mp4", settings=settings,
                      progress=False)  # fmt: skip
    assert "driving pose detected in drive.mp4" in result.videos[0].notes
    assert result.videos[0].scores["pck@0.1"] == 1.0 and result.metrics == ["psnr", "flicker", "pose"]


@pytest.mark.slow
def test_distribution_metrics_with_random_weight_files(tmp_path):
    """FID, FID-VID and FVD end to end through the public file names (random weights: numbers
    are meaningless, only the plumbing is checked). Slow: full-size Inception and I3D on CPU."""
    from animate_anyone.evaluation.networks import FIDInceptionV3, InceptionI3d

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(FIDInceptionV3().state_dict(), weights / "pt_inception-2015-12-05-6726825d.pth")
    torch.save(InceptionI3d().state_dict(), weights / "i3d_pretrained_400.pt")
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    for i in range(2):
        _noise_video(pred / f"v{i}.mp4", 8, 48, 48, seed=i)
        _noise_video(gt / f"v{i}.mp4", 8, 48, 48, seed=10 + i)
    settings = EvaluationSettings(metrics=("fid", "fid_vid", "fvd"), weights_dir=weights, clip_frames=8)
    result = evaluate(pred, gt, settings=settings, progress=False)
    assert result.dataset["fid_samples"] == 16 and result.dataset["fvd_samples"] == 2
    assert all(np.isfinite(result.dataset[m]) and result.dataset[m] >= -1e-6 for m in ("fid", "fid_vid", "fvd"))
