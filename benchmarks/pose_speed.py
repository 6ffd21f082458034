"""Frames per second of pose extraction on CPU, and what the later stages cost.

Runs the MediaPipe Holistic backend (tracking mode, as ``pose extract`` does) over a video — by
default every real movement and talking-head video of ``shared/assets`` — and reports, per video:
frames, resolution, extraction FPS (model only), FPS of the cleaning step (gap filling + One-Euro),
rendering FPS of the pose maps, detection rate and the jitter reduction of the smoothing.

    python benchmarks/pose_speed.py                      # all shared videos
    python benchmarks/pose_speed.py VIDEO [VIDEO ...] --max-frames 100
    python benchmarks/pose_speed.py --backend dwpose --dwpose-dir models/dwpose

The first frame (graph start-up) is not timed. Set ``OMP_NUM_THREADS``/``taskset`` to pin cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"
DEFAULT_VIDEOS = ("drive_dance_01.mp4", "drive_gesture_01.mp4", "talk_01.mp4", "talk_02.mp4")


def measure(path: Path, args) -> dict:
    from animate_anyone.data.video_io import read_video
    from animate_anyone.pose.extract import extract_raw, make_extractor
    from animate_anyone.pose.render import render_sequence
    from animate_anyone.pose.smooth import clean_sequence

    video = read_video(path, max_frames=args.max_frames)
    extractor = make_extractor(args.backend, dwpose_dir=args.dwpose_dir)
    try:
        extractor(video.frames[0])  # warm-up
        start = time.perf_counter()
        raw = extract_raw(video.frames, *video.size, video.fps, extractor)
        t_extract = time.perf_counter() - start
    finally:
        extractor.close()
    start = time.perf_counter()
    clean, report = clean_sequence(raw)
    t_clean = time.perf_counter() - start
    start = time.perf_counter()
    render_sequence(clean)
    t_render = time.perf_counter() - start
    n = len(video)
    return {
        "video": path.name, "frames": n, "size": "{}x{}".format(*video.size),
        "extract_fps": n / t_extract, "clean_fps": n / t_clean, "render_fps": n / t_render,
        "detected": report.detection_rate,
        "jitter_cut": 1 - report.jitter_after / report.jitter_before if report.jitter_before else float("nan"),
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", help=f"videos (default: {', '.join(DEFAULT_VIDEOS)} from shared/assets)")
    parser.add_argument("--backend", choices=["mediapipe", "dwpose"], default="mediapipe")
    parser.add_argument("--dwpose-dir", default=None)
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    videos = [Path(v) for v in args.videos] or [SHARED_ASSETS / name for name in DEFAULT_VIDEOS]
    missing = [str(v) for v in videos if not v.exists()]
    if missing:
        print(f"pose_speed: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(f"backend {args.backend}, CPU, {os.cpu_count()} logical cores visible")
    header = f"{'video':<22} {'frames':>6} {'size':>9} {'extract fps':>11} {'clean fps':>9} {'render fps':>10} " \
             f"{'detected':>8} {'jitter cut':>10}"  # fmt: skip
    print(header)
    print("-" * len(header))
    total_frames, total_time = 0, 0.0
    for path in videos:
        r = measure(path, args)
        total_frames += r["frames"]
        total_time += r["frames"] / r["extract_fps"]
        print(f"{r['video']:<22} {r['frames']:>6} {r['size']:>9} {r['extract_fps']:>11.1f} {r['clean_fps']:>9.0f} "
              f"{r['render_fps']:>10.1f} {r['detected']:>8.1%} {r['jitter_cut']:>10.0%}")  # fmt: skip
    print(f"overall extraction: {total_frames / total_time:.1f} frames per second ({total_frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
