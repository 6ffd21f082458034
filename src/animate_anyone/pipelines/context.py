"""Context-window schedules for videos longer than one denoiser call.

The motion modules see at most ``motion_max_seq_length`` frames (32 for the released model), so a
long video is denoised in overlapping windows whose predictions are averaged per frame. These
are pure functions of the frame count; the pipeline calls one once per generation.
"""

from __future__ import annotations

import math


def uniform_windows(
    num_frames: int, context_frames: int = 24, context_overlap: int = 4, wrap_around: bool = True
) -> list[list[int]]:
    """Frame indices of each window.

    Args:
        num_frames: frames in the video.
        context_frames: frames per window.
        context_overlap: frames shared by consecutive windows.
        wrap_around: ``True`` reproduces the reference implementation (Moore's ``uniform``
            schedule with ``closed_loop``, stride 1): windows start every
            ``context_frames - context_overlap`` frames and the last one wraps to the first
            frames, e.g. 12 frames, 8/4 -> [0..7], [4..11], [8, 9, 10, 11, 0, 1, 2, 3]. ``False``
            never wraps: the last window is shifted back to end on the last frame (no frame
            attends across the seam between the video's end and its start).

    Returns:
        A list of windows, each a list of ``min(context_frames, num_frames)`` frame indices;
        every frame is covered at least once.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if context_frames < 1:
        raise ValueError(f"context_frames must be at least 1, got {context_frames}")
    if not 0 <= context_overlap < context_frames:
        raise ValueError(f"context_overlap must be in [0, {context_frames}), got {context_overlap}")
    if num_frames <= context_frames:
        return [list(range(num_frames))]
    step = context_frames - context_overlap
    if wrap_around:
        return [
            [(start + k) % num_frames for k in range(context_frames)] for start in range(0, num_frames, step)
        ]
    count = math.ceil((num_frames - context_frames) / step) + 1
    starts = [min(i * step, num_frames - context_frames) for i in range(count)]
    return [list(range(s, s + context_frames)) for s in starts]


def frame_coverage(windows: list[list[int]], num_frames: int) -> list[int]:
    """How many windows contain each frame (the divisor of the per-frame average)."""
    counts = [0] * num_frames
    for window in windows:
        for f in window:
            counts[f] += 1
    return counts
