"""The optional reference detail refiner after the VAE decoder (``reference_refiner_channels``)."""

import numpy as np
import pytest
import torch
from PIL import Image

from animate_anyone.models import AnimateAnyoneModel
from animate_anyone.models.presets import get_preset
from animate_anyone.models.reference_refiner import GATE_OFFSET, ReferenceRefiner
from animate_anyone.pipelines.pipeline_animate import AnimateAnyonePipeline
from animate_anyone.weights.layouts import check_weights, inspect_weights, load_pipeline, save_pipeline
from animate_anyone.weights.native import load_model, save_model

from ..conftest import randomise_


def _frames(n=2, h=16, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1, torch.rand(1, 3, h, w, generator=g) * 2 - 1


@torch.no_grad()
def test_gate_and_residual_formula():
    dec, ref = _frames()
    net = ReferenceRefiner(8)
    gate = torch.sigmoid(torch.tensor(GATE_OFFSET))
    torch.testing.assert_close(net(dec, ref), dec + gate * (ref - dec), atol=1e-6, rtol=0)  # untrained: near the decoder
    net.conv_out.bias.copy_(torch.tensor([100.0, 0, 0, 0]))
    torch.testing.assert_close(net(dec, ref), ref.expand_as(dec), atol=1e-6, rtol=0)  # gate open: the reference
    net.conv_out.bias.copy_(torch.tensor([-100.0, 0.25, -0.5, 0]))
    expected = dec + torch.tensor([0.25, -0.5, 0]).view(1, 3, 1, 1)  # gate shut: decoder + residual
    torch.testing.assert_close(net(dec, ref), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_output_depends_on_the_reference_per_frame_and_shapes_are_checked():
    dec, ref = _frames(h=20, w=12)  # 20: not a multiple of 8, the U-Net's levels still line up
    net = ReferenceRefiner(8)
    randomise_(net)
    out = net(dec, ref)
    assert out.shape == dec.shape
    torch.testing.assert_close(net(dec[1:], ref), out[1:], atol=1e-6, rtol=0)  # frames are independent
    assert (net(dec, -ref) - out).abs().max() > 1e-3
    with pytest.raises(ValueError, match="does not match"):
        net(dec, ref[..., :8])


def test_presets_and_config():
    assert get_preset("lab-f4-refine").reference_refiner_channels == 32
    assert get_preset("lab-f4-refine").reference_latent_input
    assert not any(get_preset(n).reference_refiner_channels for n in ("sd15", "small", "tiny", "lab-f4-ref"))
    assert AnimateAnyoneModel(get_preset("tiny")).refiner is None
    from animate_anyone.errors import ConfigError

    with pytest.raises(ConfigError, match="reference_refiner_channels"):
        get_preset("tiny").replace(reference_refiner_channels=-1)


@torch.no_grad()
def test_saved_checked_and_loaded_with_the_model(tmp_path):
    torch.manual_seed(0)
    model = AnimateAnyoneModel(get_preset("tiny").replace(reference_refiner_channels=8))
    assert "reference_refiner" in model.components()
    randomise_(model.reference_refiner)
    save_model(model, tmp_path / "w")
    loaded = load_model(tmp_path / "w")
    dec, ref = _frames()
    torch.testing.assert_close(loaded.refiner(dec, ref), model.refiner(dec, ref), atol=0, rtol=0)

    pipe = AnimateAnyonePipeline.from_config(get_preset("tiny").replace(reference_refiner_channels=8))
    save_pipeline(pipe, tmp_path / "p")
    assert check_weights(tmp_path / "p").usable
    (tmp_path / "p" / "reference_refiner" / "model.safetensors").unlink()
    report = inspect_weights(tmp_path / "p")
    assert not report.usable and "reference_refiner" in report.summary()


@torch.no_grad()
def test_pipeline_refines_with_the_reference_and_not_without_it():
    torch.manual_seed(0)
    pipe = AnimateAnyonePipeline.from_config(get_preset("tiny").replace(reference_refiner_channels=8), seed=0)
    rng = np.random.default_rng(0)
    ref = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    poses = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    kw = dict(width=64, height=64, num_inference_steps=1, guidance_scale=1.0, progress=False)
    pipe.model.refiner.conv_out.bias.copy_(torch.tensor([100.0, 0, 0, 0]))  # gate open: every pixel from the reference
    out = pipe(ref, poses, **kw).frames
    expected = np.asarray(ref, dtype=np.float32) / 255.0
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=1e-5)
    # without the reference (the no-ReferenceNet ablation) there is nothing to refine with
    no_ref = pipe(ref, poses, use_reference=False, **kw).frames
    refiner = pipe.model.reference_refiner
    del pipe.model.reference_refiner
    np.testing.assert_array_equal(no_ref, pipe(ref, poses, use_reference=False, **kw).frames)
    pipe.model.reference_refiner = refiner
    # the ceiling row of the benchmarks: autoencode with the reference refines as well
    gt = (np.stack([np.asarray(ref)] * 2)).astype(np.uint8)
    assert np.abs(pipe.autoencode(gt, reference=np.asarray(ref)).astype(int) - gt).max() <= 1


def test_refiner_survives_a_native_round_trip_of_the_pipeline(tmp_path):
    pipe = AnimateAnyonePipeline.from_config(get_preset("tiny").replace(reference_refiner_channels=8), seed=0)
    randomise_(pipe.model.reference_refiner)
    save_pipeline(pipe, tmp_path / "p")
    back = load_pipeline(tmp_path / "p")
    assert back.model.config.reference_refiner_channels == 8
    for k, v in pipe.model.reference_refiner.state_dict().items():
        torch.testing.assert_close(back.model.reference_refiner.state_dict()[k], v, atol=0, rtol=0)
