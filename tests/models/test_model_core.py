"""Behaviour of the model core on the tiny preset (CPU, seconds)."""

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from animate_anyone.models import AnimateAnyoneModel, FrameGroupNorm, PoseGuider, ReferenceBank
from animate_anyone.models.reference_attention import spatial_self_attention_paths
from animate_anyone.models.unets import motion_module_paths
from animate_anyone.weights.native import load_model, save_model


def _inputs(config, batch=1, frames=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    cross = config.cross_attention_dim
    return dict(
        noisy_latents=torch.randn(batch, 4, frames, h, w, generator=g),
        timestep=torch.tensor(500),
        encoder_hidden_states=torch.randn(batch, 1, cross, generator=g),
        pose=torch.rand(batch, 3, frames, 8 * h, 8 * w, generator=g),
        ref_latents=torch.randn(batch, 4, h, w, generator=g),
    )


def test_structure_matches_released_model(tiny_model):
    # 16 reference-attention blocks (down 0-2 x2, mid x1, up 1-3 x3) and 21 motion modules
    assert len(spatial_self_attention_paths(tiny_model.reference_unet)) == 16
    assert spatial_self_attention_paths(tiny_model.reference_unet) == spatial_self_attention_paths(
        tiny_model.denoising_unet
    )
    paths = motion_module_paths(tiny_model.denoising_unet)
    assert len(paths) == 21
    for p in paths:
        assert isinstance(tiny_model.denoising_unet.get_submodule(p).norm, FrameGroupNorm)
    assert not hasattr(tiny_model.reference_unet, "conv_out") or isinstance(
        tiny_model.reference_unet.conv_out, torch.nn.Identity
    )


@torch.no_grad()
def test_native_save_load_round_trip(tiny_model, tmp_path):
    x = _inputs(tiny_model.config)
    before = tiny_model(**x)
    save_model(tiny_model, tmp_path / "w")
    loaded = load_model(tmp_path / "w").eval()
    after = loaded(**x)
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    for name, module in tiny_model.components().items():
        for (k, a), (k2, b) in zip(module.state_dict().items(), getattr(loaded, name).state_dict().items()):
            assert k == k2 and torch.equal(a, b), k


def test_forward_backward_reaches_every_component(tiny_model):
    tiny_model.train()
    x = _inputs(tiny_model.config, batch=2, frames=2)
    out = tiny_model(**x)
    assert out.shape == x["noisy_latents"].shape
    out.square().mean().backward()
    for name, module in tiny_model.components().items():
        grads = [p.grad for n, p in module.named_parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    # the reference UNet's gradient arrives only through the bank
    ref_grad = tiny_model.reference_unet.conv_in.weight.grad
    assert ref_grad is not None and ref_grad.abs().sum() > 0


@torch.no_grad()
def test_reference_changes_output_and_empty_bank_is_plain_attention(tiny_model):
    x = _inputs(tiny_model.config)
    with_ref = tiny_model(**x)
    no_ref = tiny_model(**{k: v for k, v in x.items() if k != "ref_latents"})
    assert (with_ref - no_ref).abs().mean() > 1e-3
    # an empty bank must be exactly diffusers' own self-attention
    den = tiny_model.denoising_unet
    pose = tiny_model.pose_guider(x["pose"])
    ours = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    den.set_attn_processor(AttnProcessor2_0())
    plain = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=0)


@torch.no_grad()
def test_projection_cache_gives_same_output(tiny_model):
    x = _inputs(tiny_model.config)
    tiny_model.write_reference(x["ref_latents"], x["encoder_hidden_states"])
    pose = tiny_model.pose_guider(x["pose"])
    den = tiny_model.denoising_unet
    a = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    tiny_model.bank.cache_projections = True
    b = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    c = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(b, c, atol=0, rtol=0)


@torch.no_grad()
def test_bank_rows_expand_over_frames_and_uncond_rows(tiny_model):
    """A 1-row bank read by batch 2 equals a 2-row bank of identical rows; with
    uncond_samples=1 the first sample equals a run without reference."""
    x = _inputs(tiny_model.config, batch=2, frames=2)
    den, bank = tiny_model.denoising_unet, tiny_model.bank
    pose = tiny_model.pose_guider(x["pose"])
    tiny_model.write_reference(x["ref_latents"][:1], x["encoder_hidden_states"][:1])
    one = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    tiny_model.write_reference(x["ref_latents"][:1].repeat(2, 1, 1, 1), x["encoder_hidden_states"][:1].repeat(2, 1, 1))
    two = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    torch.testing.assert_close(one, two, atol=1e-5, rtol=0)
    tiny_model.write_reference(x["ref_latents"][:1], x["encoder_hidden_states"][:1])
    bank.uncond_samples = 1
    mixed = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    bank.uncond_samples = 0
    bank.clear()
    plain = den(x["noisy_latents"], 500, x["encoder_hidden_states"], pose_features=pose)
    torch.testing.assert_close(mixed[:1], plain[:1], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1:], one[1:], atol=1e-5, rtol=0)


@torch.no_grad()
def test_non_multiple_of_eight_latents(tiny_model):
    x = _inputs(tiny_model.config, frames=2, h=10, w=6)
    out = tiny_model(**x)
    assert out.shape == (1, 4, 2, 10, 6)
    assert torch.isfinite(out).all()


@torch.no_grad()
def test_motion_modules_mix_frames_and_frames_are_otherwise_independent(tiny_model):
    x = _inputs(tiny_model.config, frames=3)
    base = tiny_model(**x)
    x2 = dict(x, noisy_latents=x["noisy_latents"].clone())
    x2["noisy_latents"][:, :, 2] += 1.0
    moved = tiny_model(**x2)
    assert (moved[:, :, 0] - base[:, :, 0]).abs().max() > 1e-4  # frame 0 sees frame 2
    # zeroing every motion module's output projection makes it the identity: frames decouple
    for p in motion_module_paths(tiny_model.denoising_unet):
        m = tiny_model.denoising_unet.get_submodule(p)
        m.proj_out.weight.zero_()
        m.proj_out.bias.zero_()
    base = tiny_model(**x)
    moved = tiny_model(**x2)
    torch.testing.assert_close(moved[:, :, 0], base[:, :, 0], atol=1e-5, rtol=0)


def test_frame_group_norm_is_per_frame():
    torch.manual_seed(0)
    norm = FrameGroupNorm(2, 4)
    x = torch.randn(2, 4, 3, 5, 5)
    x[:, :, 1] *= 10  # frames with different statistics
    y = norm(x)
    plain = torch.nn.GroupNorm(2, 4)
    for f in range(3):
        torch.testing.assert_close(y[:, :, f], plain(x[:, :, f]), atol=1e-5, rtol=0)
    assert (plain(x) - y).abs().max() > 0.1  # diffusers' across-frame norm differs


def test_pose_guider_shapes_and_zero_init():
    g = PoseGuider(32, 3, (16, 32, 64, 128))
    pose = torch.rand(2, 3, 4, 64, 48)
    out = g(pose)
    assert out.shape == (2, 32, 4, 8, 6)
    assert torch.count_nonzero(out) == 0  # a fresh guider leaves the denoiser unchanged
    assert g(pose[:, :, 0]).shape == (2, 32, 8, 6)
    with pytest.raises(ValueError):
        PoseGuider(32, 3, (16,))


def test_bank_dtype_is_explicit():
    bank = ReferenceBank(torch.float16)
    bank.store("a", torch.randn(1, 4, 8))
    assert bank.features["a"].dtype == torch.float16
    bank = ReferenceBank(None)
    bank.store("a", torch.randn(1, 4, 8, dtype=torch.float64))
    assert bank.features["a"].dtype == torch.float64


def test_model_config_round_trip_and_strict_keys(tiny_config):
    from animate_anyone.errors import ConfigError
    from animate_anyone.models import ModelConfig, get_preset

    assert ModelConfig.from_dict(tiny_config.to_dict()) == tiny_config
    with pytest.raises(ConfigError, match="unknown model config keys: bogus"):
        ModelConfig.from_dict({**tiny_config.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("sd99")
    with pytest.raises(ConfigError, match="use_linear_projection"):
        ModelConfig(unet={**tiny_config.unet, "use_linear_projection": True})


def test_tiny_preset_is_small(tiny_model):
    n = sum(p.numel() for p in tiny_model.parameters())
    assert n < 8_000_000, n


def test_model_builds_for_each_preset_on_meta():
    from animate_anyone.models import get_preset

    with torch.device("meta"):
        model = AnimateAnyoneModel(get_preset("sd15"))
    assert model.config.pose_guider_embedding_channels == 320


def _temporal_attentions(unet):
    return [a for p in motion_module_paths(unet) for b in unet.get_submodule(p).transformer_blocks
            for a in (b.attn1, b.attn2)]


def test_motion_modules_use_the_temporal_processor(tiny_model):
    from animate_anyone.models.temporal_attention import TemporalAttnProcessor

    attns = _temporal_attentions(tiny_model.denoising_unet)
    assert len(attns) == 42
    assert all(isinstance(a.processor, TemporalAttnProcessor) for a in attns)


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 5, 24, 40])
def test_temporal_processor_matches_sdpa(tiny_model, frames):
    from animate_anyone.models.temporal_attention import TemporalAttnProcessor

    torch.manual_seed(frames)
    attn = _temporal_attentions(tiny_model.denoising_unet)[0]
    proc = TemporalAttnProcessor(math_frames=(1, 64))  # the matmul path at every length
    x = torch.randn(37, frames, attn.to_q.in_features) * 3  # (rows, frames, channels)
    assert proc.uses_math_path(attn, x, None, None)
    torch.testing.assert_close(proc(attn, x), AttnProcessor2_0()(attn, x), atol=2e-6, rtol=1e-5)
    # by default the path is only taken where it measured faster (24-frame windows) and is exact
    # to float32 rounding; anything else is SDPA itself
    assert TemporalAttnProcessor().uses_math_path(attn, x, None, None) == (frames == 24)
    assert not proc.uses_math_path(attn, x.half(), None, None)
    assert not proc.uses_math_path(attn, x, x, None)
    assert not TemporalAttnProcessor(math_frames=(1, 64), max_head_dim=2).uses_math_path(attn, x, None, None)


def test_temporal_processor_gradients_match_sdpa(tiny_model):
    from animate_anyone.models.temporal_attention import TemporalAttnProcessor

    attn = _temporal_attentions(tiny_model.denoising_unet)[0]
    x = torch.randn(6, 24, attn.to_q.in_features, requires_grad=True)
    grads = []
    assert TemporalAttnProcessor().uses_math_path(attn, x, None, None)
    for proc in (TemporalAttnProcessor(), AttnProcessor2_0()):
        x.grad = None
        proc(attn, x).square().sum().backward()
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("zero_context", [False, True])
def test_single_token_cross_attention_matches_sdpa(tiny_model, zero_context):
    from animate_anyone.models.cross_attention import (
        SingleTokenCrossAttnProcessor,
        spatial_cross_attention_modules,
    )

    unets = (tiny_model.denoising_unet, tiny_model.reference_unet)
    for unet in unets:  # every spatial cross-attention has it; the motion modules' attn2 does not
        mods = spatial_cross_attention_modules(unet)
        assert mods and all(isinstance(m.processor, SingleTokenCrossAttnProcessor) for m in mods)
    attn = spatial_cross_attention_modules(tiny_model.denoising_unet)[0]
    torch.manual_seed(3)
    x = torch.randn(5, 64, attn.to_q.in_features) * 3  # (rows, tokens, channels)
    ctx = torch.zeros(5, 1, attn.to_k.in_features) if zero_context else torch.randn(5, 1, attn.to_k.in_features)
    proc = SingleTokenCrossAttnProcessor()
    with torch.no_grad():
        assert proc.takes_shortcut(attn, x, ctx, None)
        fast, full = proc(attn, x, ctx), AttnProcessor2_0()(attn, x, ctx)
        torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-6)
        assert fast.shape == full.shape == x.shape
        # only where the one-key softmax makes it exact
        assert not proc.takes_shortcut(attn, x, torch.randn(5, 2, ctx.shape[-1]), None)
        assert not proc.takes_shortcut(attn, x, None, None)
        assert not proc.takes_shortcut(attn, x, ctx, torch.zeros(5, 1, 1))
        two = torch.randn(5, 2, ctx.shape[-1])
        torch.testing.assert_close(proc(attn, x, two), AttnProcessor2_0()(attn, x, two))
    # with gradients on (training) the full attention runs: every parameter still gets a gradient
    assert not proc.takes_shortcut(attn, x, ctx, None)
    attn.zero_grad(set_to_none=True)
    proc(attn, x, ctx).sum().backward()
    assert attn.to_q.weight.grad is not None and attn.to_k.weight.grad is not None


@pytest.mark.slow
def test_compiled_denoiser_matches_eager_on_the_demo_model():
    """torch.compile (inductor) of the denoising UNet gives the eager video of the trained demo
    model (random-weight models are too badly conditioned to compare this way)."""
    import numpy as np
    from PIL import Image

    from animate_anyone.demo import default_weights, heldout_example
    from animate_anyone.weights.layouts import load_pipeline

    pipe = load_pipeline(default_weights())
    ref, poses, _, _ = heldout_example(0, 64, 4, 8)
    kw = dict(width=64, height=64, num_inference_steps=2, guidance_scale=1.0, context_frames=4, context_overlap=1,
              progress=False)
    with torch.inference_mode():
        eager = np.asarray(pipe(Image.fromarray(ref), list(poses), **kw).frames)
        pipe.compile()
        compiled = np.asarray(pipe(Image.fromarray(ref), list(poses), **kw).frames)
    np.testing.assert_allclose(compiled, eager, atol=1e-4)


def test_denoiser_traces_as_one_graph_and_clears_its_pose_residual():
    """The pose features reach ``conv_in``'s output through an attribute set around the call:
    dynamo traces a guided, reference-reading, pose-conditioned call as one graph (``--compile``
    fuses across all of it), and the residual never outlives a call, not even one that fails."""
    from animate_anyone.models.presets import get_preset

    torch.manual_seed(0)
    model = AnimateAnyoneModel(get_preset("tiny")).eval()
    unet, bank = model.denoising_unet, model.bank
    emb = torch.randn(1, 1, 32)
    x, pose = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 32, 3, 8, 8)
    with torch.no_grad():
        model.write_reference(torch.randn(1, 4, 8, 8), emb)
        bank.uncond_samples = 1
        explained = torch._dynamo.explain(unet)(x, torch.tensor(500), torch.cat([torch.zeros_like(emb), emb]),
                                                pose_features=pose)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
        assert unet.conv_in.residual is None
        # the residual is what the call adds after conv_in: without pose features the output changes
        bank.uncond_samples = 0
        with_pose = unet(x[:1], 500, emb, pose_features=pose[:1])
        assert not torch.allclose(with_pose, unet(x[:1], 500, emb))
        with pytest.raises(ValueError):
            unet(x[:1], 500, torch.cat([emb, emb]), pose_features=pose[:1])  # batch mismatch
        assert unet.conv_in.residual is None
        with pytest.raises(RuntimeError):
            unet(x[:1, :3], 500, emb, pose_features=pose[:1])  # 3 latent channels: conv_in fails
        assert unet.conv_in.residual is None
        torch.testing.assert_close(unet(x[:1], 500, emb, pose_features=pose[:1]), with_pose)
