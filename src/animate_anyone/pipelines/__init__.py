"""Inference pipelines."""

from .context import frame_coverage, uniform_windows
from .pipeline_animate import AnimateAnyonePipeline, AnimationOutput, guidance_combine, make_scheduler

__all__ = [
    "AnimateAnyonePipeline",
    "AnimationOutput",
    "frame_coverage",
    "guidance_combine",
    "make_scheduler",
    "uniform_windows",
]
