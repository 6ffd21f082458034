"""AnimateAnyonePipeline: behaviour on the tiny preset and agreement with a literal restatement of
the reference implementation's long pipeline (architecture.md §7-§10) on the fixture weights."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from animate_anyone.models import get_preset
from animate_anyone.pipelines import AnimateAnyonePipeline
from animate_anyone.pipelines.preprocess import clip_pixels, pose_pixels, vae_pixels
from animate_anyone.weights.layouts import load_pipeline

RNG = np.random.default_rng(0)


def _inputs(n=6, size=(64, 64)):
    w, h = size
    ref = Image.fromarray(RNG.integers(0, 255, (h + 7, w + 3, 3), dtype=np.uint8))
    poses = [RNG.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    return ref, poses


@pytest.fixture(scope="module")
def tiny_pipe():
    return AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0)


def test_output_shape_range_and_determinism(tiny_pipe):
    ref, poses = _inputs(5)
    kw = dict(width=64, height=48, num_inference_steps=2, progress=False)
    a = tiny_pipe(ref, poses, seed=3, **kw)
    b = tiny_pipe(ref, poses, seed=3, **kw)
    c = tiny_pipe(ref, poses, seed=4, **kw)
    assert a.frames.shape == (5, 48, 64, 3) and a.frames.dtype == np.float32
    assert 0 <= a.frames.min() and a.frames.max() <= 1
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(a.frames - c.frames).max() > 1e-3
    assert a.timesteps == [999, 499]


def test_long_video_windows_and_any_length(tiny_pipe):
    ref, poses = _inputs(11)
    out = tiny_pipe(ref, poses, width=64, height=64, num_inference_steps=1, context_frames=4,
                    context_overlap=1, progress=False)
    assert out.frames.shape[0] == 11
    assert out.windows[0] == [0, 1, 2, 3] and out.windows[-1] == [7, 8, 9, 10]  # no wrap by default
    moore = tiny_pipe(ref, poses, width=64, height=64, num_inference_steps=1, context_frames=4,
                      context_overlap=1, compat="moore", progress=False)
    assert moore.windows[-1] == [9, 10, 0, 1]


def test_sequential_cfg_matches_batched(tiny_pipe):
    ref, poses = _inputs(4, (128, 128))  # >= 16x16 latents: the random tiny net is well-conditioned
    kw = dict(width=128, height=128, num_inference_steps=2, progress=False)
    a = tiny_pipe(ref, poses, **kw)
    b = tiny_pipe(ref, poses, sequential_cfg=True, **kw)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-4)


def test_callback_sees_every_step(tiny_pipe):
    ref, poses = _inputs(2)
    seen = []
    tiny_pipe(ref, poses, width=64, height=64, num_inference_steps=3, progress=False,
              callback=lambda i, t, lat: seen.append((i, t, tuple(lat.shape))))
    assert [s[:2] for s in seen] == [(0, 999), (1, 666), (2, 332)]
    assert seen[0][2] == (1, 4, 2, 8, 8)


@pytest.mark.parametrize("kwargs", [
    dict(width=60), dict(num_frames=9), dict(num_inference_steps=0), dict(context_frames=40),
    dict(context_overlap=24), dict(compat="bogus"), dict(strength=0.0), dict(strength=1.5),
])
def test_bad_arguments_raise(tiny_pipe, kwargs):
    ref, poses = _inputs(3)
    base = dict(width=64, height=64, num_inference_steps=1, progress=False)
    with pytest.raises(ValueError):
        tiny_pipe(ref, poses, **{**base, **kwargs})


def test_frame_size_check_matches_what_the_unets_can_run(tiny_pipe):
    """check_frame_size refuses exactly the sizes whose group norms would fail deep inside the
    reference pass (tiny preset, every size from 8 to 48 in steps of 8)."""
    from animate_anyone.pipelines import pipeline_animate

    ref, poses = _inputs(2)
    unet = tiny_pipe.model.config.unet
    refused = []
    for w in range(8, 56, 8):
        for h in range(8, 56, 8):
            try:
                pipeline_animate.check_frame_size(unet, w, h)
            except ValueError as exc:
                assert "too small for this model" in str(exc) and "at least 40x40" in str(exc)
                refused.append((w, h))
                with pytest.MonkeyPatch.context() as mp:  # without the check, PyTorch fails inside
                    mp.setattr(pipeline_animate, "check_frame_size", lambda *a, **k: None)
                    with pytest.raises(ValueError, match="value per channel"):
                        tiny_pipe(ref, poses, width=w, height=h, num_inference_steps=1, progress=False)
            else:
                assert tiny_pipe(ref, poses, width=w, height=h, num_inference_steps=1,
                                 progress=False).frames.shape == (2, h, w, 3)
    assert (32, 32) in refused and (40, 40) not in refused and (48, 32) not in refused
    pipeline_animate.check_frame_size(get_preset("sd15").unet, 8, 8)  # wide models have no such limit


def test_lab_f4_preset_works_on_a_latent_of_a_quarter_of_the_frame(tmp_path):
    """The ``lab-f4`` preset's autoencoder down-samples 4x: latents, pose features, the frame-size
    rule and a saved-and-reloaded model all follow that factor, not SD's 8."""
    from animate_anyone.errors import ConfigError
    from animate_anyone.pipelines import pipeline_animate
    from animate_anyone.weights.layouts import save_pipeline

    cfg = get_preset("lab-f4")
    assert cfg.vae_factor == 4 and get_preset("lab").vae_factor == 8 and get_preset("sd15").vae_factor == 8
    pipe = AnimateAnyonePipeline.from_config(cfg)
    assert pipe.vae_factor == 4 and pipe.model.pose_guider.downscale_factor == 4
    ref, poses = _inputs(3)
    embeds, latents = pipe.encode_reference(ref, 64, 48)
    assert latents.shape == (1, 8, 12, 16)
    seen = []
    out = pipe(ref, poses, width=64, height=48, num_inference_steps=2, progress=False,
               callback=lambda i, t, lat: seen.append(tuple(lat.shape)))
    assert out.frames.shape == (3, 48, 64, 3) and seen[0] == (1, 8, 3, 12, 16)
    # its maps are twice as large, so 24x24 works where the 8x model needs 40x40 (sizes stay multiples of 8)
    with pytest.raises(ValueError, match="at least 24x24"):
        pipeline_animate.check_frame_size(cfg.unet, 16, 16, pipe.vae_factor)
    pipeline_animate.check_frame_size(cfg.unet, 24, 24, pipe.vae_factor)
    # a model folder keeps the factor
    save_pipeline(pipe, tmp_path / "m")
    again = load_pipeline(tmp_path / "m")
    assert again.vae_factor == 4
    np.testing.assert_allclose(again(ref, poses, width=64, height=48, num_inference_steps=2, progress=False).frames,
                               out.frames, atol=1e-5)
    # a pose guider that does not match the autoencoder is refused by name, in a config or a pipeline
    with pytest.raises(ConfigError, match="pose guider scales poses down 8x"):
        cfg.replace(pose_guider_block_out_channels=(16, 32, 64, 128))
    with pytest.raises(ConfigError, match="pose guider scales poses down 4x but the autoencoder's latent is 1/8"):
        AnimateAnyonePipeline(pipe.model, AnimateAnyonePipeline.from_config(get_preset("lab")).vae, pipe.image_encoder)


def test_strength_runs_the_tail_of_the_schedule_from_the_reference(tiny_pipe):
    ref, poses = _inputs(3)
    kw = dict(width=64, height=64, num_inference_steps=4, progress=False)
    full = tiny_pipe(ref, poses, **kw)
    same = tiny_pipe(ref, poses, strength=1.0, **kw)
    np.testing.assert_array_equal(full.frames, same.frames)
    seen = []
    half = tiny_pipe(ref, poses, strength=0.5, callback=lambda i, t, lat: seen.append(t), **kw)
    assert half.timesteps == [499, 249] and seen == [499, 249]
    assert np.abs(half.frames - full.frames).max() > 1e-3
    # the start is the reference latent noised to t=499 with the seed's noise, the same in every frame
    start, step = [], tiny_pipe.scheduler.step

    def spy(model_output, t, latents):
        if not start:
            start.append(latents.clone())
        return step(model_output, t, latents)

    tiny_pipe.scheduler.step = spy
    try:
        tiny_pipe(ref, poses, strength=0.5, **kw)
    finally:
        del tiny_pipe.scheduler.step  # back to the class's method
    _, ref_latent = tiny_pipe.encode_reference(ref, 64, 64)
    noise = torch.randn((1, 4, 3, 8, 8), generator=torch.Generator("cpu").manual_seed(42))
    a = tiny_pipe.scheduler.alphas_cumprod[499]
    expected = a.sqrt() * ref_latent.unsqueeze(2) + (1 - a).sqrt() * noise
    torch.testing.assert_close(start[0], expected, atol=1e-5, rtol=1e-5)


def test_bank_is_released_after_call(tiny_pipe):
    ref, poses = _inputs(2)
    tiny_pipe(ref, poses, width=64, height=64, num_inference_steps=1, progress=False)
    bank = tiny_pipe.model.bank
    assert len(bank) == 0 and bank.uncond_samples == 0 and not bank.cache_projections


def test_autoencode_is_the_reference_encoding_decoded(tiny_pipe):
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    out = tiny_pipe.autoencode(frames, chunk_size=2)
    assert out.shape == frames.shape and out.dtype == np.uint8
    # frame 1 alone, encoded the way the pipeline encodes its reference image, then decoded
    _, latent = tiny_pipe.encode_reference(Image.fromarray(frames[1]), 64, 64)
    one = tiny_pipe.decode_latents(latent.unsqueeze(2))
    np.testing.assert_allclose(out[1].astype(float), np.round(one[0] * 255), atol=1.0)


def test_bf16_runs(tiny_pipe):
    ref, poses = _inputs(2)
    pipe = AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0).to("cpu", torch.bfloat16)
    out = pipe(ref, poses, width=64, height=64, num_inference_steps=1, progress=False)
    assert np.isfinite(out.frames).all()


# ---------------------------------------------------------------------------------------------
# A literal, slow restatement of the reference long pipeline (architecture.md §7-§10)


def _reference_long_pipeline(pipe, ref, poses, width, height, steps, cfg, seed, ctx, overlap):
    model, unet = pipe.model, pipe.model.denoising_unet
    scale = 0.18215
    f = len(poses)
    # §7: CLIP on the squashed image; VAE mean latent; zeros as unconditional context
    e = pipe.image_encoder(clip_pixels(ref, pipe.image_encoder.config.image_size)).image_embeds.unsqueeze(1)
    ref_lat = pipe.vae.encode(vae_pixels(ref, width, height)).latent_dist.mean * scale
    # §6: reference UNet run with batch [uncond, cond] and contexts [zeros, e]; bank rounded to fp16
    bank = model.bank
    bank.storage_dtype = torch.float16
    model.reference_unet.write_bank(ref_lat.repeat(2, 1, 1, 1), torch.cat([torch.zeros_like(e), e]))
    for k in list(bank.features):  # the uncond row is never read: Moore replaces those rows
        bank.features[k] = bank.features[k][1:]
    pose_feat = model.pose_guider(pose_pixels(poses, width, height))
    # §9: noise from the global generator, in the pipeline dtype
    torch.manual_seed(seed)
    latents = torch.randn((1, 4, f, height // 8, width // 8))
    alphas = pipe.scheduler.alphas_cumprod
    ts = [int(round(x)) - 1 for x in np.arange(1000, 0, -1000 / steps)]
    # §10: windows with wrap-around
    step = ctx - overlap
    windows = [list(range(f))] if f <= ctx else [[(j + k) % f for k in range(ctx)] for j in range(0, f, step)]
    for t in ts:
        acc = torch.zeros((2, 4, f, height // 8, width // 8))
        count = torch.zeros(f)
        for win in windows:
            x = latents[:, :, win].repeat(2, 1, 1, 1, 1)
            bank.uncond_samples = 1
            pred = unet(x, t, torch.cat([torch.zeros_like(e), e]), pose_features=pose_feat[:, :, win].repeat(2, 1, 1, 1, 1))
            bank.uncond_samples = 0
            acc[:, :, win] += pred
            count[win] += 1
        avg = acc / count.view(1, 1, -1, 1, 1)
        v = avg[:1] + cfg * (avg[1:] - avg[:1])
        # DDIM, v-prediction, eta 0; previous timestep = t - 1000 // steps
        a_t = alphas[t]
        prev = t - 1000 // steps
        a_prev = alphas[prev] if prev >= 0 else torch.tensor(1.0)
        x0 = a_t.sqrt() * latents - (1 - a_t).sqrt() * v
        eps = a_t.sqrt() * v + (1 - a_t).sqrt() * latents
        latents = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    bank.clear()
    bank.storage_dtype = None
    frames = [pipe.vae.decode(latents[:, :, i] / scale).sample for i in range(f)]  # one frame at a time
    video = torch.cat(frames)
    return (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def test_moore_compat_matches_reference_long_pipeline(moore_folder):
    pipe = load_pipeline(moore_folder)
    ref, poses = _inputs(10, (128, 128))
    kw = dict(width=128, height=128, steps=3, cfg=3.5, seed=7, ctx=8, overlap=4)
    expected = _reference_long_pipeline(pipe, ref, poses, **kw)
    out = pipe(ref, poses, width=128, height=128, num_inference_steps=3, guidance_scale=3.5, seed=7,
               context_frames=8, context_overlap=4, compat="moore", progress=False)
    assert out.windows == [list(range(8)), [4, 5, 6, 7, 8, 9, 0, 1], [8, 9, 0, 1, 2, 3, 4, 5]]
    np.testing.assert_allclose(out.frames, expected, atol=1e-3)


@pytest.mark.slow
def test_sd15_preset_end_to_end_on_cpu():
    """The full-size model (random weights, ~2 B parameters) runs end to end: 64x64, 2 frames, 1 step."""
    torch.manual_seed(0)
    pipe = AnimateAnyonePipeline.from_config(get_preset("sd15"), seed=0)
    ref, poses = _inputs(2, (64, 64))
    out = pipe(ref, poses, width=64, height=64, num_inference_steps=1, progress=False)
    assert out.frames.shape == (2, 64, 64, 3)
    assert np.isfinite(out.frames).all() and 0 <= out.frames.min() and out.frames.max() <= 1


def test_animate_prefers_expandable_segments_but_keeps_the_users_setting(monkeypatch):
    from animate_anyone.pipelines.pipeline_animate import prefer_expandable_segments

    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    prefer_expandable_segments()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    prefer_expandable_segments()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"
