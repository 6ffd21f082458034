"""A contact sheet of lab characters: one row per category, each cell a frame with its pose map.

``python -m animate_anyone.lab.sheet docs/images/lab_samples.png`` writes the picture in the docs.
"""

from __future__ import annotations

import sys

import numpy as np

from .character import CATEGORIES
from .generate import generate_clip
from .motion import MOTION_TYPES
from .split import character_ids, clip_motion


def contact_sheet(per_category: int = 5, width: int = 96, height: int = 128, frame: int = 9,
                  with_pose: bool = True, start: int = 0) -> np.ndarray:
    """``[rows·height, cols·width, 3]`` uint8: ``per_category`` train characters of each category,
    each with a different motion family, at frame ``frame`` (pose map beside it if ``with_pose``)."""
    rows = []
    for cat in CATEGORIES:
        cells = []
        for n, cid in enumerate(character_ids("train", per_category, start, (cat,))):
            k = (n - cid) % len(MOTION_TYPES)  # clip index whose motion family is MOTION_TYPES[n % 5]
            clip = generate_clip(cid, clip_motion(cid, k, "train"), frame + 1, width, height, view_seed=k)
            cells.append(clip.frames[frame])
            if with_pose:
                cells.append(clip.pose_maps()[frame])
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    from ..data.video_io import write_image

    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "lab_samples.png"
    write_image(out, contact_sheet())
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
