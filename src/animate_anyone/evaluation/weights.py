"""The public weight files of the learned metrics, and strict loading into :mod:`.networks`.

All files go in one folder (``--weights-dir``), under the names they are published with:

==============================================  ==========================  ==========================
file                                            published by                used for
==============================================  ==========================  ==========================
``alexnet-owt-7be5be79.pth``                    torchvision (AlexNet)       LPIPS-Alex backbone
``vgg16-397923af.pth``                          torchvision (VGG-16)        LPIPS-VGG backbone
``alex.pth``                                    lpips package, weights/v0.1 LPIPS-Alex linear layers
``vgg.pth``                                     lpips package, weights/v0.1 LPIPS-VGG linear layers
``pt_inception-2015-12-05-6726825d.pth``        pytorch-fid release         FID
``i3d_pretrained_400.pt`` (or ``rgb_imagenet.pt``)  pytorch-i3d layout (RGB,   FID-VID, FVD
                                                Kinetics-400)
==============================================  ==========================  ==========================

A missing file is an :class:`~animate_anyone.errors.InputError` that names it; a file whose keys or
shapes do not match is a :class:`~animate_anyone.errors.WeightsError` that quotes the differences.
Files are read with ``torch.load(weights_only=True)``: tensors only, no pickled code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, WeightsError
from .networks import LPIPS, FIDInceptionV3, InceptionI3d

# file names per role; the first existing one is used
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet-owt-7be5be79.pth",),
    "vgg16": ("vgg16-397923af.pth",),
    "lpips_alex": ("alex.pth",),
    "lpips_vgg": ("vgg.pth",),
    "inception": ("pt_inception-2015-12-05-6726825d.pth",),
    "i3d": ("i3d_pretrained_400.pt", "rgb_imagenet.pt"),
}

# which files each learned metric needs
METRIC_FILES: dict[str, tuple[str, ...]] = {
    "lpips": ("alexnet", "lpips_alex"),
    "lpips_vgg": ("vgg16", "lpips_vgg"),
    "fid": ("inception",),
    "fid_vid": ("i3d",),
    "fvd": ("i3d",),
}

# keys a file may hold beyond what we load (torchvision's classifier heads)
_IGNORED_PREFIXES = ("classifier.",)


def find_weight_file(weights_dir: str | Path | None, role: str, metric: str | None = None) -> Path:
    """Path of the file for ``role`` inside ``weights_dir``, or an InputError naming what is missing."""
    names = WEIGHT_FILES[role]
    wanted = " or ".join(names)
    purpose = f" (needed for {metric})" if metric else ""
    if weights_dir is None:
        raise InputError(f"no --weights-dir given: weight file {wanted} is needed{purpose}")
    folder = Path(weights_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: weights folder not found")
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: weight file {wanted} not found{purpose}; see docs/evaluation.md for where to get it")


def missing_files(weights_dir: str | Path | None, metric: str) -> list[str]:
    """File names ``metric`` needs that are not in ``weights_dir`` (empty when it can run)."""
    out = []
    for role in METRIC_FILES[metric]:
        try:
            find_weight_file(weights_dir, role)
        except InputError:
            out.append(" or ".join(WEIGHT_FILES[role]))
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"{path}: not a readable PyTorch weight file ({type(exc).__name__})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return data


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path,
                ignore_prefixes: tuple[str, ...] = _IGNORED_PREFIXES) -> None:  # fmt: skip
    """Load ``state`` into ``module`` with exactly matching names and shapes (``num_batches_tracked``
    may be absent from the file; keys under ``ignore_prefixes`` are skipped), else WeightsError."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise WeightsError(
            f"{source}: keys do not match the network ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]})"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise WeightsError(f"{source}: '{k}' has shape {tuple(v.shape)}, the network expects {tuple(own[k].shape)}")
    merged = {k: state.get(k, own[k]) for k in own}
    module.load_state_dict(merged, strict=True)


def load_lpips(weights_dir: str | Path | None, net: str = "alex") -> LPIPS:
    """LPIPS with torchvision's backbone file and the lpips package's v0.1 linear layers."""
    metric = "lpips" if net == "alex" else "lpips_vgg"
    backbone_role, lin_role = METRIC_FILES[metric]
    backbone_file = find_weight_file(weights_dir, backbone_role, metric)
    lin_file = find_weight_file(weights_dir, lin_role, metric)
    model = LPIPS(net)
    load_strict(model.backbone, read_state_dict(backbone_file), backbone_file)
    load_strict(model.linear, read_state_dict(lin_file), lin_file)
    return model.eval().requires_grad_(False)


def load_fid_inception(weights_dir: str | Path | None) -> FIDInceptionV3:
    path = find_weight_file(weights_dir, "inception", "fid")
    model = FIDInceptionV3()
    load_strict(model, read_state_dict(path), path)
    return model.eval().requires_grad_(False)


def load_i3d(weights_dir: str | Path | None, metric: str = "fvd") -> InceptionI3d:
    path = find_weight_file(weights_dir, "i3d", metric)
    state = read_state_dict(path)
    num_classes = state["logits.conv3d.bias"].shape[0] if "logits.conv3d.bias" in state else 400
    model = InceptionI3d(num_classes)
    load_strict(model, state, path)
    return model.eval().requires_grad_(False)
