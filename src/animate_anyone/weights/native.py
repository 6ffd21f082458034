"""Native weights layout: one folder per component, ``config.json`` + ``model.safetensors``.

::

    DIR/model.json                      ModelConfig (architecture of every component)
    DIR/<component>/model.safetensors   for reference_unet, denoising_unet, pose_guider

Writes are atomic per file (temporary name, then ``os.replace``), so an interrupted save never
leaves a truncated checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import WeightsError
from ..models.animate_anyone import AnimateAnyoneModel
from ..models.presets import ModelConfig
from .moore import load_strict

MODEL_JSON = "model.json"
WEIGHTS_NAME = "model.safetensors"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None = None) -> None:
    """Save tensors as safetensors atomically (derived position tables are not stored)."""
    tensors = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in state_dict.items()
        if not k.endswith("pos_embed.pe")
    }
    _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read safetensors file ({exc})") from None


def save_model(model: AnimateAnyoneModel, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` in the native layout (optionally cast to ``dtype``, e.g. fp16)."""
    out = Path(out_dir)
    for name, module in model.components().items():
        save_state_dict(module.state_dict(), out / name / WEIGHTS_NAME, dtype)
    text = json.dumps(model.config.to_dict(), indent=1)
    _atomic_write(out / MODEL_JSON, lambda tmp: Path(tmp).write_text(text))
    return out


def read_model_config(folder: str | Path) -> ModelConfig:
    path = Path(folder) / MODEL_JSON
    if not path.is_file():
        raise WeightsError(f"{folder}: no {MODEL_JSON} (not a native animate-anyone weights folder)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable ({exc})") from None
    return ModelConfig.from_dict(data)


def load_model(folder: str | Path, bank_dtype: torch.dtype | None = None, reenact: bool = False) -> AnimateAnyoneModel:
    """Build the model from ``model.json`` and load every component strictly (``reenact``: a
    :class:`~animate_anyone.models.reenact.ReenactModel`, with ``pose_guider2/``)."""
    folder = Path(folder)
    if reenact:
        from ..models.reenact import ReenactModel

        model = ReenactModel(read_model_config(folder))
    else:
        model = AnimateAnyoneModel(read_model_config(folder), bank_dtype=bank_dtype)
    for name in model.components():
        module = getattr(model, name)
        state = load_state_dict(folder / name / WEIGHTS_NAME)
        dtype = next(module.parameters()).dtype
        load_strict(module, {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, name)
    return model
