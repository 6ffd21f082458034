"""Study cases from the lab (``case_source`` functions of :mod:`animate_anyone.evaluation.studies`).

Held-out characters and motions only. The reference image is frame 0 of a clip; the ground truth is
the same clip ``gap`` frames later, so it shares the reference's background and framing.

* :func:`category_cases`: ``per_category`` characters of each category (human, cartoon, robot),
  each driven by its own exact keypoints.
* :func:`scale_mismatch_cases`: character A driven by the keypoints of character B (another
  category: other proportions, other framing) performing a motion; the ground truth is A itself
  performing that motion — what a perfect, proportion-aware system would produce.
* :func:`face_cases`: like :func:`category_cases`, with motions where the face changes (talking:
  the mouth opens and closes; turning: the face turns away and back), for the face-keypoints study.

Every case carries the ground truth's exact keypoints (``ground_truth_pose``: the face metric).
"""

from __future__ import annotations

from ..evaluation.studies import Case
from .generate import generate_clip
from .split import character_ids, clip_motion

CATEGORIES = ("human", "cartoon", "robot")


def _clip(cid: int, motion: str, frames: int, gap: int, size: int):
    return generate_clip(cid, motion, num_frames=1 + gap + frames, width=size, height=size, view_seed=0)


def _case(name: str, clip, driving_clip, frames: int, gap: int, category: str) -> Case:
    sl = slice(1 + gap, 1 + gap + frames)
    return Case(name=name, reference=clip.frames[0], driving=driving_clip.poses.frames(sl),
                ground_truth=clip.frames[sl], reference_pose=clip.poses.frames(slice(0, 1)), category=category,
                ground_truth_pose=clip.poses.frames(sl))


def category_cases(per_category: int = 4, frames: int = 16, gap: int = 8, size: int = 128) -> list[Case]:
    out = []
    for cat in CATEGORIES:
        for cid in character_ids("heldout", per_category, categories=(cat,)):
            clip = _clip(cid, clip_motion(cid, 0, "heldout"), frames, gap, size)
            out.append(_case(f"{cat}_{cid}", clip, clip, frames, gap, cat))
    return out


def scale_mismatch_cases(num_cases: int = 6, frames: int = 16, gap: int = 8, size: int = 128) -> list[Case]:
    out = []
    pools = {cat: character_ids("heldout", num_cases, categories=(cat,)) for cat in CATEGORIES}
    for i in range(num_cases):
        cat_a, cat_b = CATEGORIES[i % 3], CATEGORIES[(i + 1) % 3]
        a, b = pools[cat_a][i // 3], pools[cat_b][i // 3 + 1]
        motion = clip_motion(b, 0, "heldout")
        target = _clip(a, motion, frames, gap, size)  # A performing B's motion: the ground truth
        source = _clip(b, motion, frames, gap, size)  # B's keypoints drive A
        out.append(_case(f"{cat_a}{a}_by_{cat_b}{b}", target, source, frames, gap, f"{cat_a}<-{cat_b}"))
    return out


FACE_MOTIONS = ("talk", "turn")


def face_cases(per_category: int = 4, frames: int = 16, gap: int = 8, size: int = 128,
               motions: tuple[str, ...] = FACE_MOTIONS) -> list[Case]:  # fmt: skip
    out = []
    for cat in CATEGORIES:
        for cid in character_ids("heldout", per_category, categories=(cat,)):
            motion = clip_motion(cid, 0, "heldout", motion_types=tuple(motions))
            clip = _clip(cid, motion, frames, gap, size)
            out.append(_case(f"{cat}_{cid}_{motion.split('-')[0]}", clip, clip, frames, gap, cat))
    return out
