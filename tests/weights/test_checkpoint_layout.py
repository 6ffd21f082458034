"""The sd15 preset has exactly the tensors of the released checkpoints (after the documented map)."""

import json

import pytest
import torch

from animate_anyone.models import AnimateAnyoneModel, get_preset
from animate_anyone.weights import moore


@pytest.fixture(scope="module")
def sd15_meta():
    with torch.device("meta"):
        return AnimateAnyoneModel(get_preset("sd15"))


@pytest.fixture(scope="module")
def layout():
    from tests.conftest import LAYOUT

    if not LAYOUT.is_file():
        pytest.skip(f"shared checkpoint layout not found at {LAYOUT}")
    return json.loads(LAYOUT.read_text())["files"]


def _meta_state(layout, name):
    return {key: torch.empty(shape, device="meta") for key, shape, _dtype in layout[name]["keys"]}


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("pos_embed.pe")}


def _assert_same(ours, theirs):
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    wrong = [k for k in ours if ours[k] != theirs[k]]
    assert not wrong, f"shape mismatch: {[(k, ours[k], theirs[k]) for k in wrong[:5]]}"


def test_denoising_unet_plus_motion_module(sd15_meta, layout):
    state = moore.convert_moore_denoising_unet(_meta_state(layout, "denoising_unet.pth"))
    motion = moore.convert_moore_motion_module(_meta_state(layout, "motion_module.pth"))
    assert not set(state) & set(motion)
    state.update(motion)
    _assert_same(_shapes(sd15_meta.denoising_unet.state_dict()), _shapes(state))
    assert len(motion) == 588 - 42  # 42 position tables are rebuilt, not loaded


def test_reference_unet(sd15_meta, layout):
    state = moore.convert_moore_reference_unet(_meta_state(layout, "reference_unet.pth"))
    _assert_same(_shapes(sd15_meta.reference_unet.state_dict()), _shapes(state))


def test_pose_guider(sd15_meta, layout):
    state = moore.convert_moore_pose_guider(_meta_state(layout, "pose_guider.pth"))
    _assert_same(_shapes(sd15_meta.pose_guider.state_dict()), _shapes(state))
    assert sum(v.numel() for v in sd15_meta.pose_guider.parameters()) == layout["pose_guider.pth"]["num_elements"]
    channels, cond, emb = moore.pose_guider_channels_from_state_dict(state)
    assert (channels, cond, emb) == ((16, 32, 96, 256), 3, 320)


def test_reenact_release_files(sd15_meta, layout):
    den = moore.convert_moore_denoising_unet(_meta_state(layout, "reenact/denoising_unet.pth"))
    _assert_same(_shapes(sd15_meta.denoising_unet.state_dict()), _shapes(den))
    ref = moore.convert_moore_reference_unet(_meta_state(layout, "reenact/reference_unet.pth"))
    _assert_same(_shapes(sd15_meta.reference_unet.state_dict()), _shapes(ref))


def test_parameter_counts(sd15_meta, layout):
    n_ref = sum(p.numel() for p in sd15_meta.reference_unet.parameters())
    assert n_ref == layout["reference_unet.pth"]["num_elements"]
    n_den = sum(p.numel() for p in sd15_meta.denoising_unet.parameters())
    expected = layout["denoising_unet.pth"]["num_elements"] + layout["motion_module.pth"]["num_elements"]
    assert n_den == expected
