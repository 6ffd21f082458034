"""The optional position term of the reference attention (``reference_position_features``)."""

import pytest
import torch
from diffusers.models.attention_processor import Attention

from animate_anyone.errors import ConfigError
from animate_anyone.models import AnimateAnyoneModel
from animate_anyone.models.presets import get_preset
from animate_anyone.models.reference_attention import (
    ReferencePosition,
    _attend_with_position,
    spatial_self_attention_paths,
    token_grid,
)
from animate_anyone.weights.native import load_model, save_model

from ..conftest import randomise_
from .test_model_core import _inputs


def test_token_grid_follows_the_unet_levels():
    assert token_grid((32, 32), 1024) == (32, 32)
    assert token_grid((32, 32), 256) == (16, 16)
    assert token_grid((32, 32), 16) == (4, 4)
    # odd sides round up at every level, as diffusers' stride-2 convolutions do
    assert [token_grid((10, 7), n) for n in (70, 20, 6, 2, 1)] == [(10, 7), (5, 4), (3, 2), (2, 1), (1, 1)]
    with pytest.raises(ValueError, match="no level"):
        token_grid((32, 32), 100)


def test_config_rejects_bad_feature_counts():
    with pytest.raises(ConfigError, match="multiple of 4"):
        get_preset("tiny").replace(reference_position_features=6)
    assert get_preset("lab-f4-pos").reference_position_features == 16
    assert get_preset("lab-f4").reference_position_features == 0


def test_features_score_the_same_place_highest():
    pos = ReferencePosition(heads=2, features=16)
    f = pos.grid_features((12, 12), (12, 12), "cpu", torch.float32)
    scores = f @ f.T  # sum_k cos(w_k dy) + cos(w_k dx)
    assert torch.allclose(scores.diagonal(), torch.full((144,), 8.0))
    off = scores - torch.eye(144) * 1e3
    assert (scores.diagonal() - off.max(dim=1).values).min() > 1.0  # the neighbours score clearly lower
    # a reference of half the size is stretched onto the query's grid: its cell (i, j) covers
    # the query cells (2i or 2i+1, 2j or 2j+1)
    half = pos.grid_features((6, 6), (12, 12), "cpu", torch.float32)
    best = (half @ f.T).argmax(dim=1)
    for cell, b in enumerate(best.tolist()):
        assert b // 12 in (2 * (cell // 6), 2 * (cell // 6) + 1) and b % 12 in (2 * (cell % 6), 2 * (cell % 6) + 1)


@torch.no_grad()
def test_attention_with_position_is_the_written_formula():
    torch.manual_seed(0)
    heads, d, f = 2, 4, 8
    attn = Attention(query_dim=heads * d, heads=heads, dim_head=d)
    pos = ReferencePosition(heads, f)
    pos.gain.copy_(torch.tensor([0.7, -0.3]))
    n, own, ref = 3, 12, 6  # a 3x4 query grid, a 2x3 reference grid
    q, k, v = (torch.randn(n, own + (ref if i else 0), heads * d) for i in range(3))
    out = _attend_with_position(attn, pos, q[:, :own], k, v, ref, (3, 4), (2, 3))
    # explicit: scores = q.k / sqrt(d), plus GAIN * gain[h] * f_q . f_ref / sqrt(d) on reference keys
    fq, fr = pos.grid_features((3, 4), (3, 4), "cpu", q.dtype), pos.grid_features((2, 3), (3, 4), "cpu", q.dtype)
    qh = q[:, :own].view(n, own, heads, d).transpose(1, 2)
    kh, vh = (x.view(n, own + ref, heads, d).transpose(1, 2) for x in (k, v))
    scores = qh @ kh.transpose(-1, -2) / d**0.5
    bias = (ReferencePosition.GAIN * pos.gain).view(1, heads, 1, 1) * (fq @ fr.T) / d**0.5
    scores[..., own:] += bias
    torch.testing.assert_close(pos.score_bias((3, 4), (2, 3), d, "cpu", q.dtype), bias[0], atol=1e-6, rtol=0)
    expected = (scores.softmax(-1) @ vh).transpose(1, 2).reshape(n, own, heads * d)
    expected = attn.to_out[1](attn.to_out[0](expected))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # a large gain and no content: each query reads the reference token at its own place
    pos.gain.fill_(20.0)
    zero = torch.zeros(1, 16 + 16, heads * d)
    values = torch.randn(1, 32, heads * d)
    attn.to_out[0].weight.copy_(torch.eye(heads * d))
    attn.to_out[0].bias.zero_()
    got = _attend_with_position(attn, pos, zero[:, :16], zero, values, 16, (4, 4), (4, 4))
    torch.testing.assert_close(got, values[:, 16:], atol=1e-3, rtol=0)


@torch.no_grad()
def test_zero_gains_compute_the_model_without_the_term(tmp_path):
    plain_cfg = get_preset("tiny")
    pos_cfg = plain_cfg.replace(reference_position_features=8)
    torch.manual_seed(0)
    plain = AnimateAnyoneModel(plain_cfg).eval()
    randomise_(plain)
    model = AnimateAnyoneModel(pos_cfg).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    paths = spatial_self_attention_paths(model.denoising_unet)
    assert not unexpected and sorted(missing) == sorted(f"denoising_unet.{p}.attn1.reference_position.gain" for p in paths)
    x = _inputs(plain_cfg, frames=2, h=10, w=6)  # odd-sized levels too
    torch.testing.assert_close(model(**x), plain(**x), atol=1e-5, rtol=0)
    # with gains the output changes, only when the reference is read, and survives save/load
    for p in paths:
        model.denoising_unet.get_submodule(f"{p}.attn1.reference_position").gain.fill_(0.5)
    moved = model(**x)
    assert (moved - plain(**x)).abs().max() > 1e-3
    no_ref = {k: v for k, v in x.items() if k != "ref_latents"}
    torch.testing.assert_close(model(**no_ref), plain(**no_ref), atol=1e-5, rtol=0)
    save_model(model, tmp_path / "w")
    loaded = load_model(tmp_path / "w").eval()
    assert loaded.config.reference_position_features == 8
    torch.testing.assert_close(loaded(**x), moved, atol=0, rtol=0)


def test_gains_get_gradients_from_zero():
    torch.manual_seed(0)
    model = AnimateAnyoneModel(get_preset("tiny").replace(reference_position_features=8)).train()
    randomise_(model)
    for p in spatial_self_attention_paths(model.denoising_unet):
        model.denoising_unet.get_submodule(f"{p}.attn1.reference_position").gain.data.zero_()
    model(**_inputs(model.config, frames=2)).square().mean().backward()
    grads = [model.denoising_unet.get_submodule(f"{p}.attn1.reference_position").gain.grad
             for p in spatial_self_attention_paths(model.denoising_unet)]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
