"""Holding the reference back where a frame must not copy it (the bank's ``hold``, the pipeline's
``reference_hold``)."""

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention
from PIL import Image

from animate_anyone.models import AnimateAnyoneModel
from animate_anyone.models.presets import get_preset
from animate_anyone.models.reference_attention import ReferenceBank, ReferenceReadProcessor, _attend
from animate_anyone.pipelines import AnimateAnyonePipeline
from animate_anyone.pipelines.pipeline_animate import latent_hold, latent_keep

from ..conftest import randomise_
from .test_model_core import _inputs


def _config(refiner: int = 0):
    # both co-located paths of the lab models (and their refiner), on the tiny preset
    return get_preset("tiny").replace(reference_position_features=8, reference_latent_input=True,
                                      reference_refiner_channels=refiner)


@torch.no_grad()
def test_a_frame_attends_to_the_reference_cells_it_is_not_held_from():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    bank = ReferenceBank()
    ref = torch.randn(1, 16, 8)  # a 4x4 reference
    bank.store("b", ref)
    bank.reference_latent = torch.zeros(1, 4, 4, 4)
    bank.num_frames, bank.latent_size = 2, (4, 4)
    proc = ReferenceReadProcessor(bank, "b")
    x = torch.randn(2, 16, 8)  # one sample of 2 frames, 4x4 tokens each
    full = proc(attn, x)
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    plain = _attend(attn, q, k, v)
    hold = torch.zeros(2, 4, 4, dtype=torch.bool)
    hold[1, :2, 1:3] = True  # frame 1 must not read four reference cells
    bank.hold = hold
    out = proc(attn, x)
    torch.testing.assert_close(out[0], full[0])
    seen = ref[0][~hold[1].flatten()]  # the reference tokens frame 1 still reads
    keys, values = torch.cat([k[1], attn.to_k(seen)])[None], torch.cat([v[1], attn.to_v(seen)])[None]
    torch.testing.assert_close(out[1:], _attend(attn, q[1:], keys, values))
    assert (out[1] - full[1]).abs().max() > 1e-4
    bank.hold = torch.ones(2, 4, 4, dtype=torch.bool)  # held from all of it: plain self-attention
    torch.testing.assert_close(proc(attn, x), plain)
    bank.hold = torch.zeros(2, 4, 4, dtype=torch.bool)
    torch.testing.assert_close(proc(attn, x), full)
    bank.hold = torch.zeros(3, 4, 4, dtype=torch.bool)  # a hold for another window
    with pytest.raises(ValueError, match="frames"):
        proc(attn, x)
    bank.hold = torch.zeros(2, 5, 4, dtype=torch.bool)  # and one for another reference size
    with pytest.raises(ValueError, match="reference latent is 4x4"):
        proc(attn, x)


@torch.no_grad()
def test_a_whole_hold_is_the_model_without_reference_and_a_partial_one_is_between():
    torch.manual_seed(0)
    model = AnimateAnyoneModel(_config()).eval()
    randomise_(model)
    x = _inputs(model.config, frames=2, h=8, w=8)
    full = model(**x)
    no_ref = model(**{k: v for k, v in x.items() if k != "ref_latents"})

    def held(mask):
        model.bank.clear()
        model.write_reference(x["ref_latents"], x["encoder_hidden_states"])
        model.bank.hold = mask
        try:
            return model.denoising_unet(x["noisy_latents"], x["timestep"], x["encoder_hidden_states"],
                                        pose_features=model.pose_guider(x["pose"]))
        finally:
            model.bank.clear()
            model.bank.hold = None

    torch.testing.assert_close(held(torch.ones(2, 8, 8, dtype=torch.bool)), no_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(held(torch.zeros(2, 8, 8, dtype=torch.bool)), full, atol=1e-5, rtol=0)
    part = torch.zeros(2, 8, 8, dtype=torch.bool)
    part[1, 2:5, 3:6] = True
    some = held(part)
    assert (some - full).abs().max() > 1e-3 and (some - no_ref).abs().max() > 1e-3
    # the frame that reads all of the reference moves far less than the one held from part of it
    # (only the motion modules carry the change across frames)
    assert (some - full)[:, :, 0].abs().mean() < 0.5 * (some - full)[:, :, 1].abs().mean()


def test_latent_hold_pools_pixel_masks_onto_the_latent_grid():
    flags = latent_hold([True, False], 2, (3, 4))
    assert flags.shape == (2, 3, 4) and flags[0].all() and not flags[1].any()
    masks = np.zeros((2, 24, 32), dtype=bool)
    masks[0, 9, 17] = True  # one pixel: latent cell (1, 2) of an 8x latent
    out = latent_hold(masks, 2, (3, 4))
    assert out[0].nonzero().tolist() == [[1, 2]] and not out[1].any()
    with pytest.raises(ValueError, match="one flag or one mask per frame"):
        latent_hold([True], 2, (3, 4))


def _random_call():
    """A random-weight lab-style pipeline (with a refiner), a random reference, 3 random pose
    images and the call's size and steps."""
    pipe = AnimateAnyonePipeline.from_config(_config(refiner=8), seed=0)
    randomise_(pipe.model)
    rng = np.random.default_rng(0)
    ref = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    poses = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    kw = dict(width=64, height=64, num_inference_steps=4, progress=False)
    return pipe, ref, poses, kw


def test_pipeline_hold_covers_the_first_steps():
    pipe, ref, poses, kw = _random_call()
    full = pipe(ref, poses, **kw).frames
    no_ref = pipe(ref, poses, use_reference=False, **kw).frames
    everywhere = [True] * 3  # held from all of the reference: no reference, and no refining against it
    np.testing.assert_allclose(pipe(ref, poses, reference_hold=everywhere, **kw).frames, no_ref, atol=1e-5)
    np.testing.assert_array_equal(pipe(ref, poses, reference_hold=everywhere, reference_hold_steps=0.0,
                                       **kw).frames, full)
    half = pipe(ref, poses, reference_hold=everywhere, reference_hold_steps=0.5, **kw).frames
    assert np.abs(half - full).max() > 1e-3 and np.abs(half - no_ref).max() > 1e-3
    assert pipe.model.bank.hold is None
    with pytest.raises(ValueError, match="reference_hold_steps"):
        pipe(ref, poses, reference_hold=everywhere, reference_hold_steps=1.5, **kw)


def test_latent_keep_keeps_a_cell_only_where_every_pixel_over_it_is_kept():
    masks = np.ones((2, 24, 32), dtype=bool)
    masks[0, 9, 17] = False  # one pixel: latent cell (1, 2) of an 8x latent is not kept
    out = latent_keep(masks, 2, (3, 4))
    assert (~out[0]).nonzero().tolist() == [[1, 2]] and out[1].all()
    with pytest.raises(ValueError, match="one mask per frame"):
        latent_keep(masks[:1], 2, (3, 4))


def test_pipeline_keep_ends_kept_cells_on_the_reference_latent():
    pipe, ref, poses, kw = _random_call()
    seen = []
    full = pipe(ref, poses, callback=lambda i, t, x: seen.append(x.clone()), **kw).frames
    keep = np.zeros((3, 64, 64), dtype=bool)
    keep[1, :32, :] = True  # the top half of frame 1
    kept = []
    out = pipe(ref, poses, reference_keep=keep, callback=lambda i, t, x: kept.append(x.clone()), **kw).frames
    _, ref_latent = pipe.encode_reference(ref, 64, 64)
    h = 32 // pipe.vae_factor
    torch.testing.assert_close(kept[-1][0, :, 1, :h], ref_latent[0, :, :h].to(kept[-1].dtype))
    assert (kept[-1][0, :, 1, h:] - seen[-1][0, :, 1, h:]).abs().max() > 1e-4  # the rest is drawn around it
    assert (kept[-1][0, :, 1, :h] - seen[-1][0, :, 1, :h]).abs().max() > 1e-3
    assert np.abs(out - full).max() > 1e-3
    # nothing kept, no step, or no reference: exactly the plain call
    np.testing.assert_array_equal(pipe(ref, poses, reference_keep=np.zeros_like(keep), **kw).frames, full)
    np.testing.assert_array_equal(pipe(ref, poses, reference_keep=keep, reference_keep_steps=0.0, **kw).frames, full)
    np.testing.assert_array_equal(pipe(ref, poses, reference_keep=keep, use_reference=False, **kw).frames,
                                  pipe(ref, poses, use_reference=False, **kw).frames)
    # kept for the first half only: the last steps may move away from the reference latent
    half = []
    pipe(ref, poses, reference_keep=keep, reference_keep_steps=0.5, callback=lambda i, t, x: half.append(x.clone()), **kw)
    torch.testing.assert_close(half[0], kept[0])
    assert (half[-1][0, :, 1, :h] - ref_latent[0, :, :h]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="reference_keep_steps"):
        pipe(ref, poses, reference_keep=keep, reference_keep_steps=1.5, **kw)
    with pytest.raises(ValueError, match="one mask per frame"):
        pipe(ref, poses, reference_keep=keep[:2], **kw)
