"""Inference pipelines. Names load on first use, so importing the CLI stays fast."""

from __future__ import annotations

import importlib

_LAZY = {
    "AnimateAnyonePipeline": "pipeline_animate",
    "AnimationOutput": "pipeline_animate",
    "guidance_combine": "pipeline_animate",
    "make_scheduler": "pipeline_animate",
    "frame_coverage": "context",
    "uniform_windows": "context",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
