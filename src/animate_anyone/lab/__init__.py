"""The synthetic character lab: procedural 2-D characters with exact keypoints (no GPU, no OpenCV).

Public API::

    generate_clip(character, motion, num_frames, width, height, fps, view_seed) -> LabClip
    sample_character(character_id) -> CharacterSpec        sample_motion(family, variant) -> MotionSpec
    plan_clips(split, num_characters, clips_per_character, start) -> ClipPlan...
    character_split(id) / motion_split(family, variant) -> "train" | "heldout"
    write_dataset(out_dir, plans, ...) -> meta.json path

See ``docs/data.md`` for the on-disk format and the held-out split.
"""

from .character import CATEGORIES, CharacterSpec, sample_character
from .generate import LabClip, generate_clip
from .motion import MOTION_TYPES, MotionSpec, sample_motion
from .split import (
    HELDOUT_CHARACTER_PERCENT,
    HELDOUT_MOTION_PERCENT,
    ClipPlan,
    character_ids,
    character_split,
    clip_motion,
    motion_split,
    plan_clips,
)
from .writer import write_dataset

__all__ = [
    "CATEGORIES", "HELDOUT_CHARACTER_PERCENT", "HELDOUT_MOTION_PERCENT", "MOTION_TYPES", "CharacterSpec",
    "ClipPlan", "LabClip", "MotionSpec", "character_ids", "character_split", "clip_motion", "generate_clip",
    "motion_split", "plan_clips", "sample_character", "sample_motion", "write_dataset",
]  # fmt: skip
