"""Feature networks: state-dict names and shapes of the public weight files, strict loading, shapes.

Expected names/shapes come from the public definitions (torchvision alexnet/vgg16/inception_v3,
the lpips package's NetLinLayer, pytorch-fid's FID Inception, piergiaj's pytorch-i3d)."""

import pytest
import torch

from animate_anyone.errors import InputError, WeightsError
from animate_anyone.evaluation import weights as W
from animate_anyone.evaluation.learned import i3d_features, inception_features, lpips_distance, video_clips
from animate_anyone.evaluation.networks import (
    LPIPS,
    AlexNetFeatures,
    FIDInceptionV3,
    InceptionI3d,
    VGG16Features,
)


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _count(module, skip=("num_batches_tracked", "running_mean", "running_var")):
    return sum(v.numel() for k, v in module.state_dict().items() if not k.endswith(skip))


def test_alexnet_and_vgg_features_match_torchvision_layout():
    alex = _shapes(AlexNetFeatures())
    assert alex == {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    }  # fmt: skip
    vgg = _shapes(VGG16Features())
    assert [k for k in vgg if k.endswith("weight")] == [f"features.{i}.weight" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert vgg["features.28.weight"] == (512, 512, 3, 3)
    # torchvision's parameter counts (61,100,840 / 138,357,544) minus their classifier heads
    assert _count(AlexNetFeatures()) == 2_469_696 and _count(VGG16Features()) == 14_714_688


def test_lpips_linear_layers_match_the_lpips_package_files():
    for net, chans in (("alex", (64, 192, 384, 256, 256)), ("vgg", (64, 128, 256, 512, 512))):
        assert _shapes(LPIPS(net).linear) == {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(chans)}


def test_fid_inception_matches_pytorch_fid_layout():
    shapes = _shapes(FIDInceptionV3())
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_var"] == (32,)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["fc.weight"] == (1008, 2048) and not any(k.startswith("AuxLogits") for k in shapes)
    # torchvision inception_v3: 27,161,264 parameters with the aux head (3,326,696) and 1000 classes
    assert _count(FIDInceptionV3(num_classes=1000)) == 27_161_264 - 3_326_696


def test_i3d_matches_pytorch_i3d_layout():
    shapes = _shapes(InceptionI3d())
    assert shapes["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert shapes["Conv3d_2c_3x3.bn.running_mean"] == (192,)
    assert shapes["Mixed_3b.b1b.conv3d.weight"] == (128, 96, 3, 3, 3)
    assert shapes["Mixed_4f.b3b.conv3d.weight"] == (128, 528, 1, 1, 1)
    assert shapes["Mixed_5c.b0.conv3d.weight"] == (384, 832, 1, 1, 1)
    assert shapes["logits.conv3d.weight"] == (400, 1024, 1, 1, 1) and shapes["logits.conv3d.bias"] == (400,)
    assert not any(".bias" in k and "logits" not in k and "bn" not in k for k in shapes)  # convs have no bias


def test_lpips_forward_with_random_weights():
    lp = LPIPS("alex").eval()
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    d = lp(x, y)
    assert d.shape == (2,) and torch.allclose(lp(x, x), torch.zeros(2), atol=1e-6)
    assert torch.allclose(d, lp(y, x), atol=1e-6)
    assert LPIPS("vgg").eval()(x[:1, :, :32, :32], y[:1, :, :32, :32]).shape == (1,)
    # FID Inception and I3D forwards: test_feature_extractors_on_frames


def _torchvision_like_alexnet_file(path):
    """A file shaped like torchvision's: features + classifier keys (random values)."""
    state = dict(AlexNetFeatures().state_dict())
    state.update({"classifier.1.weight": torch.zeros(4096, 9216), "classifier.1.bias": torch.zeros(4096)})
    torch.save(state, path)


def test_public_files_load_without_renaming(tmp_path):
    _torchvision_like_alexnet_file(tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(LPIPS("alex").linear.state_dict(), tmp_path / "alex.pth")
    model = W.load_lpips(tmp_path, "alex")
    frames = torch.randint(0, 256, (3, 48, 40, 3), dtype=torch.uint8).numpy()
    assert lpips_distance(frames, frames, model).tolist() == pytest.approx([0, 0, 0], abs=1e-6)
    # BatchNorm files without num_batches_tracked (older torch saves) load too
    i3d_state = {k: v for k, v in InceptionI3d().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(i3d_state, tmp_path / "rgb_imagenet.pt")
    assert isinstance(W.load_i3d(tmp_path), InceptionI3d)
    assert W.missing_files(tmp_path, "lpips") == [] and W.missing_files(tmp_path, "fid") == ["pt_inception-2015-12-05-6726825d.pth"]


def test_missing_or_mismatched_weight_files_are_named(tmp_path):
    with pytest.raises(InputError, match="pt_inception-2015-12-05-6726825d.pth not found"):
        W.load_fid_inception(tmp_path)
    with pytest.raises(InputError, match="no --weights-dir"):
        W.load_lpips(None)
    torch.save({"lin0.model.0.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "alex.pth")
    _torchvision_like_alexnet_file(tmp_path / "alexnet-owt-7be5be79.pth")
    with pytest.raises(WeightsError, match=r"alex.pth: keys do not match .*lin0.model.1.weight"):
        W.load_lpips(tmp_path)
    (tmp_path / "i3d_pretrained_400.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="i3d_pretrained_400.pt: not a readable"):
        W.load_i3d(tmp_path)
    bad = dict(LPIPS("alex").linear.state_dict())
    bad["lin0.model.1.weight"] = torch.zeros(1, 65, 1, 1)
    torch.save(bad, tmp_path / "alex.pth")
    with pytest.raises(WeightsError, match=r"'lin0.model.1.weight' has shape \(1, 65, 1, 1\)"):
        W.load_lpips(tmp_path)


def test_feature_extractors_on_frames():
    frames = torch.randint(0, 256, (20, 40, 48, 3), dtype=torch.uint8).numpy()
    assert video_clips(frames, 16).shape == (1, 16, 40, 48, 3)
    assert video_clips(frames[:5], 16).shape == (1, 16, 40, 48, 3)  # short video: last frame repeated
    with torch.no_grad():
        feats = inception_features(frames[:2], FIDInceptionV3().eval())
        logits, pooled = i3d_features(frames[:16], InceptionI3d().eval(), clip_frames=16, size=64)
    assert feats.shape == (2, 2048) and logits.shape == (1, 400) and pooled.shape == (1, 1024)


def test_real_weight_files_load_when_available():
    """Set ANIMATE_ANYONE_EVAL_WEIGHTS to a folder of the public files to check them (see docs/evaluation.md)."""
    import os
    from pathlib import Path

    folder = os.environ.get("ANIMATE_ANYONE_EVAL_WEIGHTS")
    if not folder:
        pytest.skip("set ANIMATE_ANYONE_EVAL_WEIGHTS to a folder of the public weight files")
    checks = {"alexnet": lambda: AlexNetFeatures(), "vgg16": lambda: VGG16Features(),
              "lpips_alex": lambda: LPIPS("alex").linear, "lpips_vgg": lambda: LPIPS("vgg").linear,
              "inception": FIDInceptionV3, "i3d": InceptionI3d}  # fmt: skip
    found = 0
    for role, make in checks.items():
        try:
            path = W.find_weight_file(Path(folder), role)
        except InputError:
            continue
        W.load_strict(make(), W.read_state_dict(path), path)
        found += 1
    assert found, f"none of the weight files in {folder}"
