"""The lab's held-out split: characters and motions that training never sees.

* A **character id** is held out when ``sha256("lab-split-character:<id>")`` falls in the lowest
  :data:`HELDOUT_CHARACTER_PERCENT` % (10 %) of its range: a fixed property of the id, whatever
  the seed or the number of characters generated.
* A **motion** ``<family>-<variant>`` is held out in the same way with
  ``sha256("lab-split-motion:<family>:<variant>")`` and :data:`HELDOUT_MOTION_PERCENT` (15 %). Motion
  parameters (tempo, amplitudes, view angle, syllable timing, ...) are drawn from the variant, so
  held-out motions are parameter combinations never used in training (same five families).
* A data set of split ``train`` holds only train characters performing train motions; ``heldout``
  only held-out characters performing held-out motions. Mixed combinations (a train character with
  a held-out motion and vice versa) are available through :func:`~.generate.generate_clip` for
  "new motion" / "new character" studies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from .character import sample_character, stable_rng
from .motion import MOTION_TYPES

HELDOUT_CHARACTER_PERCENT = 10
HELDOUT_MOTION_PERCENT = 15
SPLITS = ("train", "heldout", "all")
NUM_VARIANTS = 100_000


def _bucket(*key) -> int:
    digest = hashlib.sha256(":".join(str(k) for k in key).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def character_split(character_id: int) -> str:
    """``"train"`` or ``"heldout"``."""
    return "heldout" if _bucket("lab-split-character", int(character_id)) < HELDOUT_CHARACTER_PERCENT else "train"


def motion_split(motion_type: str, variant: int) -> str:
    """``"train"`` or ``"heldout"``."""
    return "heldout" if _bucket("lab-split-motion", motion_type, int(variant)) < HELDOUT_MOTION_PERCENT else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def character_ids(split: str, count: int, start: int = 0, categories: tuple[str, ...] | None = None) -> list[int]:
    """The first ``count`` character ids from ``start`` on that belong to ``split`` (and to one of
    ``categories`` when given)."""
    _check_split(split)
    out, cid = [], int(start)
    while len(out) < count:
        if (split == "all" or character_split(cid) == split) and (
            categories is None or sample_character(cid).category in categories
        ):
            out.append(cid)
        cid += 1
    return out


def clip_motion(character_id: int, clip_index: int, split: str, motion_types: tuple[str, ...] | None = None) -> str:
    """The motion id of clip ``clip_index`` of a character: families rotate from clip to clip
    (starting at a family that depends on the character), the variant is drawn from the ids and
    moved to the next one of ``split`` (``"all"``: the character's own split)."""
    if split == "all":
        split = character_split(character_id)
    _check_split(split)
    kinds = tuple(motion_types) if motion_types else MOTION_TYPES  # a subset keeps the same variants
    kind = kinds[(int(character_id) + int(clip_index)) % len(kinds)]
    variant = int(stable_rng("lab-clip-motion", int(character_id), int(clip_index)).integers(NUM_VARIANTS))
    while motion_split(kind, variant) != split:
        variant = (variant + 1) % NUM_VARIANTS
    return f"{kind}-{variant:05d}"


@dataclass(frozen=True)
class ClipPlan:
    """What one clip of a data set is (everything :func:`~.generate.generate_clip` needs)."""

    clip_id: str
    character_id: int
    motion_id: str
    view_seed: int
    split: str


def plan_clips(split: str, num_characters: int, clips_per_character: int, start: int = 0,
               categories: tuple[str, ...] | None = None,
               motion_types: tuple[str, ...] | None = None) -> Iterator[ClipPlan]:
    """The clips of a data set: ``num_characters`` characters of ``split`` from id ``start``, each
    with ``clips_per_character`` clips; each clip's split is its character's."""
    for cid in character_ids(split, num_characters, start, categories):
        cs = character_split(cid)
        for k in range(clips_per_character):
            yield ClipPlan(f"c{cid:06d}_{k:02d}", cid, clip_motion(cid, k, cs, motion_types), k, cs)
