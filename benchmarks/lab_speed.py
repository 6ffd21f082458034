"""Lab generation speed: seconds per clip (render, pose video, full write) at a few sizes.

    python benchmarks/lab_speed.py [--frames 24] [--clips 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from animate_anyone.lab import generate_clip, plan_clips
from animate_anyone.lab.writer import write_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--clips", type=int, default=5)
    args = ap.parse_args()
    plans = list(plan_clips("train", args.clips, 1))
    generate_clip(plans[0].character_id, plans[0].motion_id, 2, 64, 64)  # warm-up
    print(f"{args.frames} frames per clip, mean of {args.clips} clips (one process)")
    for w, h in ((128, 128), (256, 256), (512, 512), (512, 768)):
        t0 = time.perf_counter()
        clips = [generate_clip(p.character_id, p.motion_id, args.frames, w, h) for p in plans]
        t1 = time.perf_counter()
        for c in clips:
            c.pose_maps()
        t2 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for p in plans:
                write_clip(Path(tmp), p, args.frames, w, h, 24.0)
        t3 = time.perf_counter()
        n = len(plans)
        print(f"{w}x{h}: render {(t1 - t0) / n:.3f} s  pose video {(t2 - t1) / n:.3f} s  "
              f"write mp4+json {(t3 - t2) / n:.3f} s per clip")


if __name__ == "__main__":
    main()
