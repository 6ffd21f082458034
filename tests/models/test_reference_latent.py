"""The optional reference latent path of the denoiser (``reference_latent_input``)."""

import pytest
import torch

from animate_anyone.models import AnimateAnyoneModel
from animate_anyone.models.presets import get_preset
from animate_anyone.models.reference_latent import ReferenceLatentInput, frame_rows
from animate_anyone.training.trainer import trainable_parameters
from animate_anyone.weights.native import load_model, save_model

from ..conftest import randomise_
from .test_model_core import _inputs

PATH_KEYS = [f"denoising_unet.reference_latent_input.{c}.{p}" for c in ("conv_in", "conv_out") for p in ("weight", "bias")]


def _pair():
    """A randomised tiny model and the same model with the reference latent path (zero output)."""
    torch.manual_seed(0)
    plain = AnimateAnyoneModel(get_preset("tiny")).eval()
    randomise_(plain)
    model = AnimateAnyoneModel(get_preset("tiny").replace(reference_latent_input=True)).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == sorted(PATH_KEYS)
    return plain, model


def test_presets():
    assert get_preset("lab-f4-ref").reference_latent_input
    assert get_preset("lab-f4-ref").reference_position_features == 16
    assert not any(get_preset(n).reference_latent_input for n in ("sd15", "small", "tiny", "lab-f4", "lab-f4-pos"))


def test_frame_rows_spread_like_the_bank():
    r = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 2, 2)  # reference 0 and reference 1
    rows = frame_rows(r, batch=4, frames=2, uncond_samples=0)  # samples 0, 1 read ref 0; 2, 3 read ref 1
    assert rows.shape == (8, 3, 2, 2)
    assert rows[:, 0, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    rows = frame_rows(r[1:] + 1, batch=3, frames=2, uncond_samples=1)  # the first sample reads nothing
    assert rows[:, 0, 0, 0].tolist() == [0, 0, 2, 2, 2, 2]
    assert frame_rows(r, batch=2, frames=3, uncond_samples=2).abs().sum() == 0
    with pytest.raises(ValueError, match="does not divide"):
        frame_rows(r, batch=3, frames=1, uncond_samples=0)
    with pytest.raises(ValueError, match="unconditional"):
        frame_rows(r, batch=1, frames=1, uncond_samples=2)


@torch.no_grad()
def test_zero_path_is_the_model_without_it_and_a_trained_one_adds_to_the_pose(tmp_path):
    plain, model = _pair()
    x = _inputs(plain.config, frames=2, h=10, w=6)
    torch.testing.assert_close(model(**x), plain(**x), atol=1e-5, rtol=0)

    path = model.denoising_unet.reference_latent_input
    randomise_(path)
    moved = model(**x)
    assert (moved - plain(**x)).abs().max() > 1e-3
    # the formula: the path's output is added to the pose features in every frame
    plain.bank.clear()
    plain.write_reference(x["ref_latents"], x["encoder_hidden_states"])
    pose = plain.pose_guider(x["pose"]) + path(x["ref_latents"]).unsqueeze(2)
    expected = plain.denoising_unet(x["noisy_latents"], x["timestep"], x["encoder_hidden_states"], pose_features=pose)
    plain.bank.clear()
    torch.testing.assert_close(moved, expected, atol=1e-5, rtol=0)
    # without a reference (empty bank) the path is off: the no-reference model is unchanged
    no_ref = {k: v for k, v in x.items() if k != "ref_latents"}
    torch.testing.assert_close(model(**no_ref), plain(**no_ref), atol=1e-5, rtol=0)
    # and it is part of the saved model
    save_model(model, tmp_path / "w")
    loaded = load_model(tmp_path / "w").eval()
    assert loaded.config.reference_latent_input
    torch.testing.assert_close(loaded(**x), moved, atol=0, rtol=0)


@torch.no_grad()
def test_a_reference_of_another_size_is_resized():
    path = ReferenceLatentInput(4, 8)
    randomise_(path)
    lat = torch.randn(1, 4, 5, 3)
    out = path(lat, (10, 6))
    assert out.shape == (1, 8, 10, 6)
    resized = torch.nn.functional.interpolate(lat, size=(10, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, path(resized), atol=0, rtol=0)
    torch.testing.assert_close(path(lat, (5, 3)), path(lat), atol=0, rtol=0)


def test_stage_one_trains_the_path_from_zero():
    _, model = _pair()
    model.train()
    params = trainable_parameters("image", model)
    assert all(k.removeprefix("model.") in params for k in PATH_KEYS)
    assert not any("reference_latent_input" in k for k in trainable_parameters("video", model))
    model(**_inputs(model.config, frames=2)).square().mean().backward()
    grad = model.denoising_unet.reference_latent_input.conv_out.weight.grad
    assert grad is not None and grad.abs().sum() > 0
