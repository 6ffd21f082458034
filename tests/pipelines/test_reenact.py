"""Face reenactment pipeline and command."""


import numpy as np
import pytest
import torch
from PIL import Image

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_video
from animate_anyone.models import get_preset
from animate_anyone.pipelines.pipeline_reenact import ReenactPipeline

from ..conftest import ASSETS


def test_reenact_pipeline_cfg_reads_zero_latent_bank():
    pipe = ReenactPipeline.from_config(get_preset("tiny"), seed=0)
    rng = np.random.default_rng(0)
    ref = Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    upper = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
    mouth = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
    seen = []
    orig = pipe.model.denoising_unet.forward

    def spy(x, t, e, pose_features=None, **kw):
        seen.append((pipe.model.bank.uncond_samples, pipe.model.bank.features[next(iter(pipe.model.bank.features))].shape[0]))
        return orig(x, t, e, pose_features=pose_features, **kw)

    pipe.model.denoising_unet.forward = spy
    out = pipe(ref, upper, mouth, width=128, height=128, num_inference_steps=2, progress=False)
    assert out.frames.shape == (3, 128, 128, 3)
    assert seen and all(s == (0, 2) for s in seen)  # both halves read; bank rows [zeros, ref]
    with pytest.raises(ValueError, match="sequential"):
        pipe(ref, upper, mouth, width=128, height=128, num_inference_steps=1, sequential_cfg=True, progress=False)
    with pytest.raises(ValueError, match="mouth maps"):
        pipe(ref, upper, mouth[:2], width=128, height=128, num_inference_steps=1, progress=False)
    # the mouth guider matters
    a = pipe(ref, upper, mouth, width=128, height=128, num_inference_steps=1, progress=False).frames
    b = pipe(ref, upper, [m * 0 for m in mouth], width=128, height=128, num_inference_steps=1, progress=False).frames
    assert np.abs(a - b).max() > 1e-4
    assert torch.is_tensor(next(pipe.model.pose_guider2.parameters()))


def test_reenact_command(reenact_weights, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    face, talk = ASSETS / "face_01.png", ASSETS / "talk_01.mp4"
    if not (face.is_file() and talk.is_file()):
        pytest.skip("shared assets not found")
    out = tmp_path / "out.mp4"
    args = ["reenact", "--ref", str(face), "--driving", str(talk), "--weights", str(reenact_weights), "-o", str(out),
            "--width", "64", "--height", "64", "--num-frames", "4", "--steps", "1", "--context-frames", "4",
            "--context-overlap", "1", "--grid", "--quiet"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert out.is_file() and (tmp_path / "out_grid.mp4").is_file()
    # a weights folder's recommended settings (demo.json) fill the flags that are not given
    (reenact_weights / "demo.json").write_text('{"settings": {"size": 48, "steps": 1, "context_frames": 4, '
                                               '"context_overlap": 1}}')
    out3 = tmp_path / "settings.mp4"
    assert main([*args[:8], str(out3), "--num-frames", "4", "--quiet"]) == 0
    assert "settings from" in capsys.readouterr().out and read_video(out3).size == (48, 48)
    (reenact_weights / "demo.json").unlink()
    # bad input: a corrupt driving video, and an image without a face
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk")
    out2 = tmp_path / "o2.mp4"
    assert main([*args[:4], str(bad), *args[5:7], "-o", str(out2)]) == 2
    cup = ASSETS / "ref_nonhumanoid_cup_01.png"
    assert main(["reenact", "--ref", str(cup), "--driving", str(talk), "--weights", str(reenact_weights), "-o",
                 str(out2), "--num-frames", "2", "--context-frames", "2", "--context-overlap", "0"]) == 2
    err = capsys.readouterr().err
    assert "no face found" in err
    assert not out2.exists()
