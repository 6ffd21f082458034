"""Weights folders: recognising layouts, strict checks, safe loading, conversion."""

import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from animate_anyone.cli import main
from animate_anyone.errors import WeightsError
from animate_anyone.weights.layouts import check_weights, convert_weights, inspect_weights, load_pipeline
from animate_anyone.weights.moore import read_pth


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_moore_layout_is_recognised_and_usable(moore_folder, capsys):
    report = check_weights(moore_folder)
    assert report.kind == "moore" and report.usable, report.summary()
    assert main(["weights", "check", str(moore_folder)]) == 0
    out = capsys.readouterr().out
    assert "layout: moore" in out and "usable: yes" in out


def test_musepose_layout(moore_folder, tmp_path):
    root = tmp_path / "pretrained_weights"
    root.mkdir()
    (root / "MusePose").mkdir()
    for name in ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth", "motion_module.pth"):
        shutil.copyfile(moore_folder / name, root / "MusePose" / name)
    shutil.copytree(moore_folder / "sd-vae-ft-mse", root / "sd-vae-ft-mse")
    shutil.copytree(moore_folder / "image_encoder", root / "image_encoder")
    shutil.copytree(moore_folder / "stable-diffusion-v1-5", root / "sd-image-variations-diffusers")
    report = check_weights(root)
    assert report.kind == "musepose" and report.usable, report.summary()


def test_missing_motion_module_is_an_error_not_an_identity(moore_folder, tmp_path, capsys):
    root = _copy(moore_folder, tmp_path / "w")
    (root / "motion_module.pth").unlink()
    report = inspect_weights(root)
    assert not report.usable and any("motion_module" in m for m in report.missing)
    assert main(["weights", "check", str(root)]) == 1
    assert "MISSING: motion_module" in capsys.readouterr().out
    with pytest.raises(WeightsError, match="motion_module"):
        load_pipeline(root)


def test_mismatched_checkpoint_names_keys(moore_folder, tmp_path):
    root = _copy(moore_folder, tmp_path / "w")
    state = read_pth(root / "reference_unet.pth")
    state.pop("conv_in.weight")
    state["bogus.weight"] = torch.zeros(1)
    state["conv_in.bias"] = torch.zeros(7)
    # write a new file (the old one is memory-mapped by read_pth; never truncate it in place)
    torch.save(state, root / "tmp.pth")
    (root / "tmp.pth").replace(root / "reference_unet.pth")
    report = check_weights(root)
    assert not report.usable
    text = " ".join(report.problems)
    assert "1 missing (conv_in.weight)" in text and "bogus.weight" in text and "conv_in.bias (7,)" in text
    with pytest.raises(WeightsError, match="reference_unet"):
        load_pipeline(root)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_needing_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"x": _Evil()}, fh)
    with pytest.raises(WeightsError, match="refused|cannot read"):
        read_pth(path)
    assert "this must never run" not in capsys.readouterr().out
    torch.save({"x": _Evil()}, tmp_path / "evil2.pth")
    with pytest.raises(WeightsError, match="refused"):
        read_pth(tmp_path / "evil2.pth")
    assert "this must never run" not in capsys.readouterr().out


def test_unknown_folder_is_reported(tmp_path, capsys):
    (tmp_path / "random.txt").write_text("hi")
    assert main(["weights", "check", str(tmp_path)]) == 1
    assert "layout: not recognised" in capsys.readouterr().out
    assert main(["weights", "check", str(tmp_path / "nope")]) == 1


@torch.no_grad()
def test_convert_to_native_gives_same_video(moore_folder, tmp_path):
    out = convert_weights(moore_folder, tmp_path / "native")
    assert inspect_weights(out).kind == "native" and check_weights(out).usable
    ref = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    poses = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(3)]
    kw = dict(width=64, height=64, num_inference_steps=2, progress=False)
    a = load_pipeline(moore_folder)(ref, poses, **kw)
    b = load_pipeline(out)(ref, poses, **kw)
    np.testing.assert_array_equal(a.frames, b.frames)
    with pytest.raises(WeightsError, match="not empty"):
        convert_weights(moore_folder, out)
    half = convert_weights(moore_folder, tmp_path / "native16", dtype=torch.float16)
    assert (half / "pose_guider" / "model.safetensors").stat().st_size < (
        out / "pose_guider" / "model.safetensors"
    ).stat().st_size * 0.6
    c = load_pipeline(half)(ref, poses, **kw)
    assert np.abs(c.frames - a.frames).max() < 0.05


@torch.no_grad()
def test_convert_with_a_replacement_autoencoder(moore_folder, tmp_path, capsys):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(moore_folder / "sd-vae-ft-mse")
    for p in vae.decoder.parameters():
        p.add_(0.01)
    vae.save_pretrained(tmp_path / "dec")
    out = convert_weights(moore_folder, tmp_path / "native", vae=tmp_path / "dec")
    got = load_pipeline(out).vae.state_dict()
    want = vae.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "other")
    with pytest.raises(WeightsError, match="latent space"):
        convert_weights(moore_folder, tmp_path / "n2", vae=tmp_path / "other")
    assert main(["weights", "convert", str(moore_folder), str(tmp_path / "n3"), "--vae", str(tmp_path / "nope")]) != 0
    assert "not a loadable autoencoder" in capsys.readouterr().err
    assert not (tmp_path / "n2").exists() and not (tmp_path / "n3").exists()


def _tiny_native(folder):
    from animate_anyone.models import get_preset
    from animate_anyone.pipelines import AnimateAnyonePipeline
    from animate_anyone.weights.layouts import save_pipeline

    return save_pipeline(AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0), folder)


def test_recommended_settings_are_checked_reported_and_converted(tmp_path, capsys):
    import json

    from animate_anyone.weights.layouts import recommended_settings

    folder = _tiny_native(tmp_path / "tiny")
    assert recommended_settings(folder) == {}
    settings = {"size": 64, "steps": 3, "guidance": 1.0, "context_frames": 4, "frames": 6, "hold_steps": 0.5}
    (folder / "demo.json").write_text(json.dumps({"settings": settings, "provenance": {"commands": ["x"]}}))
    assert recommended_settings(folder) == settings
    # the Python API: from_pretrained, and the call arguments the folder recommends
    from animate_anyone.pipelines import AnimateAnyonePipeline

    pipe = AnimateAnyonePipeline.from_pretrained(folder)
    assert pipe.recommended == {"width": 64, "height": 64, "num_inference_steps": 3, "guidance_scale": 1.0,
                                "context_frames": 4, "context_overlap": 1,  # a quarter of the window
                                "reference_hold_steps": 0.5}  # used where the caller passes a reference_hold
    ref = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    poses = np.random.default_rng(1).integers(0, 255, (5, 48, 40, 3), dtype=np.uint8)
    assert pipe(ref, poses, progress=False, **pipe.recommended).frames.shape == (5, 64, 64, 3)
    with pytest.raises(WeightsError):
        AnimateAnyonePipeline.from_pretrained(tmp_path / "nothing")
    assert main(["weights", "check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "recommended settings (demo.json" in out and "size 64, steps 3, guidance 1.0, context_frames 4" in out
    assert "hold_steps 0.5" in out
    assert "frames 6" not in out  # the demo clip's length is not an inference setting
    # conversion carries the file over, byte for byte
    converted = convert_weights(folder, tmp_path / "converted", dtype=torch.float16)
    assert (converted / "demo.json").read_bytes() == (folder / "demo.json").read_bytes()

    for bad, expect in [('{"settings": {"sise": 64}}', "unknown setting 'sise'"),
                        ('{"settings": {"steps": "20"}}', "setting 'steps' must be an integer"),
                        ('{"settings": {"size": true}}', "setting 'size' must be an integer"),
                        ('{"settings": {"guidance": "high"}}', "setting 'guidance' must be a number"),
                        ('{"settings": [1]}', "'settings' must be a JSON object"),
                        ('{"settings": {', "unreadable JSON")]:
        (folder / "demo.json").write_text(bad)
        with pytest.raises(WeightsError, match=expect):
            recommended_settings(folder)
        assert main(["weights", "check", str(folder)]) == 1  # reported as a problem, not a crash
        assert expect.split("'")[0] in capsys.readouterr().out
    # a malformed file stops a conversion before anything is written
    assert main(["weights", "convert", str(folder), str(tmp_path / "c2")]) == 2
    assert "unreadable JSON" in capsys.readouterr().err and not (tmp_path / "c2").exists()
