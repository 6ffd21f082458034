"""Model components (``nn.Module``s only: no file I/O, no device strings)."""

from .animate_anyone import COMPONENTS, AnimateAnyoneModel
from .pose_guider import PoseGuider
from .presets import ModelConfig, get_preset
from .reference_attention import ReferenceBank
from .unets import DenoisingUNet, FrameGroupNorm, ReferenceUNet

__all__ = [
    "COMPONENTS",
    "AnimateAnyoneModel",
    "DenoisingUNet",
    "FrameGroupNorm",
    "ModelConfig",
    "PoseGuider",
    "ReferenceBank",
    "ReferenceUNet",
    "get_preset",
]
