"""Pure key maps from the released Moore-AnimateAnyone / MusePose ``.pth`` files to our modules.

One ``convert_moore_<component>(state_dict) -> state_dict`` per file; each checks what it can
(position tables, head tensors) and never guesses. Loading is strict (see :func:`load_strict`).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from ..errors import WeightsError

_MOTION_RENAMES = [
    (".temporal_transformer.", "."),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
]
_PE_KEY = re.compile(r"\.attention_blocks\.[01]\.pos_encoder\.pe$")
_HEAD_KEYS = ("conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias")


def sinusoid_table(length: int, channels: int) -> torch.Tensor:
    """AnimateDiff's frame-position table ``(1, length, channels)``: sin on even, cos on odd channels."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, length, channels)
    pe[0, :, 0::2] = torch.sin(position * div)
    pe[0, :, 1::2] = torch.cos(position * div)
    return pe


def convert_moore_motion_module(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``motion_module.pth`` keys -> diffusers ``UNetMotionModel`` motion keys.

    ``…temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight`` becomes
    ``…transformer_blocks.0.attn1.to_q.weight``. The stored position tables (``pos_encoder.pe``)
    are checked against the sinusoid and dropped: the model builds the same table itself.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if "motion_modules" not in key:
            raise WeightsError(f"motion module checkpoint holds a non-motion key {key!r}")
        if _PE_KEY.search(key):
            expected = sinusoid_table(value.shape[1], value.shape[2])
            if value.shape[0] != 1 or (not value.is_meta and not torch.allclose(value.float(), expected, atol=1e-4)):
                raise WeightsError(f"{key} is not the standard sinusoidal position table")
            continue
        new = key
        for old, repl in _MOTION_RENAMES:
            new = new.replace(old, repl)
        out[new] = value
    return out


def convert_moore_denoising_unet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``denoising_unet.pth``: SD UNet keys, identical to diffusers' names. A file that also holds
    motion keys (the face-reenactment release) has them converted too."""
    spatial = {k: v for k, v in state_dict.items() if "motion_modules" not in k}
    motion = {k: v for k, v in state_dict.items() if "motion_modules" in k}
    out = dict(spatial)
    if motion:
        out.update(convert_moore_motion_module(motion))
    return out


def convert_moore_reference_unet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``reference_unet.pth``: SD UNet keys. The output head (present in the reenactment release)
    feeds nothing the bank depends on and is dropped."""
    return {k: v for k, v in state_dict.items() if k not in _HEAD_KEYS}


def convert_moore_pose_guider(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``pose_guider.pth``: same names as ours (``conv_in``, ``blocks.0-5``, ``conv_out``)."""
    return dict(state_dict)


def pose_guider_channels_from_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], int, int]:
    """Read ``(block_out_channels, conditioning_channels, embedding_channels)`` off the shapes."""
    try:
        conv_in = state_dict["conv_in.weight"]
        conv_out = state_dict["conv_out.weight"]
    except KeyError as exc:
        raise WeightsError(f"pose guider checkpoint lacks {exc.args[0]}") from None
    channels = [conv_in.shape[0]]
    i = 1
    while f"blocks.{i}.weight" in state_dict:
        channels.append(state_dict[f"blocks.{i}.weight"].shape[0])
        i += 2
    return tuple(int(c) for c in channels), int(conv_in.shape[1]), int(conv_out.shape[0])


def _derived(key: str) -> bool:
    # buffers the model computes itself (frame-position tables)
    return key.endswith("pos_embed.pe")


def check_state_dict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`WeightsError` unless ``state_dict`` has exactly ``module``'s keys and shapes.

    Derived buffers (position tables) may be absent. The error names the first few keys of each
    kind and the counts.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not _derived(k)]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs expected {tuple(own[k].shape)}"
        for k in state_dict
        if k in own and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {label} ({shown})")
    if problems:
        raise WeightsError(f"{what}: checkpoint does not match the model: " + "; ".join(problems))


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state_dict`` into ``module`` after :func:`check_state_dict`."""
    check_state_dict(module, state_dict, what)
    module.load_state_dict(state_dict, strict=False)


def read_pth(path) -> dict[str, torch.Tensor]:
    """Read a released ``.pth`` state dict safely (``weights_only``: no code is ever executed)."""
    try:
        try:  # memory-map zip-format checkpoints (multi-GB files are not read into RAM twice)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as exc:  # unpickling refused or corrupt file
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise WeightsError(
                f"{path}: refused: the file needs code execution to load (not a plain tensor state dict)"
            ) from None
        raise WeightsError(f"{path}: cannot read checkpoint ({msg})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return dict(obj)


def load_moore_model(model, denoising_unet, reference_unet, pose_guider, motion_module=None) -> None:
    """Load released ``.pth`` files (paths) into an :class:`AnimateAnyoneModel`, strictly.

    The motion module may come from ``motion_module`` or be part of ``denoising_unet`` (the
    face-reenactment release); a denoising UNet without motion weights is an error, never a silent
    identity motion module.
    """
    den = convert_moore_denoising_unet(read_pth(denoising_unet))
    if motion_module is not None:
        motion = convert_moore_motion_module(read_pth(motion_module))
        overlap = sorted(set(motion) & set(den))
        if overlap:
            raise WeightsError(f"{motion_module}: motion keys also present in {denoising_unet} ({overlap[0]}, ...)")
        den.update(motion)
    if not any("motion_modules" in k for k in den):
        raise WeightsError(
            f"no motion-module weights: {denoising_unet} holds none and no motion_module.pth was given"
        )
    load_strict(model.denoising_unet, den, "denoising_unet")
    load_strict(model.reference_unet, convert_moore_reference_unet(read_pth(reference_unet)), "reference_unet")
    load_strict(model.pose_guider, convert_moore_pose_guider(read_pth(pose_guider)), "pose_guider")


def load_moore_reenact_model(model, folder, check_only: bool = False) -> None:
    """Load the released face-reenactment folder (``reenact/``) into a :class:`ReenactModel`,
    strictly: ``denoising_unet.pth`` with its motion keys, ``reference_unet.pth`` with its output
    head (checked, then dropped: it feeds nothing), ``pose_guider1.pth`` and ``pose_guider2.pth``."""
    from pathlib import Path

    folder = Path(folder)
    names = ("denoising_unet.pth", "reference_unet.pth", "pose_guider1.pth", "pose_guider2.pth")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise WeightsError(f"{folder}: not a reenactment weights folder, missing {', '.join(missing)}")
    den = convert_moore_denoising_unet(read_pth(folder / "denoising_unet.pth"))
    if not any("motion_modules" in k for k in den):
        raise WeightsError(f"{folder / 'denoising_unet.pth'}: no motion-module weights (the reenactment release has them)")
    ref = read_pth(folder / "reference_unet.pth")
    absent = sorted(k for k in _HEAD_KEYS if k not in ref)
    if absent:
        raise WeightsError(f"{folder / 'reference_unet.pth'}: lacks the output head of the reenactment release ({absent[0]})")
    for key in _HEAD_KEYS:
        expected = tuple(model.denoising_unet.state_dict()[key].shape)
        if tuple(ref[key].shape) != expected:
            raise WeightsError(f"{folder / 'reference_unet.pth'}: {key} has shape {tuple(ref[key].shape)}, expected {expected}")
    load = check_state_dict if check_only else load_strict  # check_only: keys and shapes (meta models)
    load(model.denoising_unet, den, "denoising_unet")
    load(model.reference_unet, convert_moore_reference_unet(ref), "reference_unet")
    load(model.pose_guider, convert_moore_pose_guider(read_pth(folder / "pose_guider1.pth")), "pose_guider1")
    load(model.pose_guider2, convert_moore_pose_guider(read_pth(folder / "pose_guider2.pth")), "pose_guider2")

