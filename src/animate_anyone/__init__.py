"""animate-anyone: pose-driven character animation with diffusion (Animate Anyone, Hu et al. 2023).

Heavy modules (torch, diffusers) load on first use of a name below, not at import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "AnimateAnyoneModel": "animate_anyone.models.animate_anyone",
    "ModelConfig": "animate_anyone.models.presets",
    "get_preset": "animate_anyone.models.presets",
    "PoseGuider": "animate_anyone.models.pose_guider",
    "ReferenceBank": "animate_anyone.models.reference_attention",
    "DenoisingUNet": "animate_anyone.models.unets",
    "ReferenceUNet": "animate_anyone.models.unets",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'animate_anyone' has no attribute {name!r}")
