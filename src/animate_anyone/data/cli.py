"""``animate-anyone data ...``: make training data (``synth``: the procedural character lab)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make training data")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    s = data_sub.add_parser(
        "synth",
        help="generate lab clips (videos, pose videos, exact keypoints, meta.json)",
        description="Generate synthetic characters performing motions, in the on-disk format of "
        "prepared data (docs/data.md). The same arguments always give the same files.",
    )
    s.add_argument("-o", "--output", required=True, help="output folder (meta.json is written last)")
    s.add_argument("--num-characters", type=int, default=8)
    s.add_argument("--clips-per-character", type=int, default=5)
    s.add_argument("--frames", type=int, default=24, help="frames per clip")
    s.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("W", "H"), help="frame width and height")
    s.add_argument("--fps", type=float, default=24.0)
    s.add_argument("--split", choices=["train", "heldout", "all"], default="train",
                   help="which characters/motions (held-out ones are never used by 'train'; see docs/data.md)")
    s.add_argument("--seed", type=int, default=0, help="first character id considered")
    s.add_argument("--categories", nargs="+", choices=["human", "cartoon", "robot"], default=None,
                   help="only characters of these categories (default: all)")
    s.add_argument("--motions", nargs="+", choices=["dance", "walk", "wave", "turn", "talk"], default=None,
                   help="only these motion families (default: all)")
    s.add_argument("--framing", choices=["body", "face"], default="body",
                   help="'face': talking-head portraits with face-reenactment landmark maps (docs/data.md)")
    s.add_argument("--lossless", action="store_true",
                   help="store videos and pose videos as lossless .npz arrays instead of H.264 mp4")
    s.add_argument("--masks", action="store_true", help="also store the character masks (masks/<clip>.npz)")
    s.add_argument("--no-face", action="store_true",
                   help="leave the face keypoints out of the pose videos (the keypoints files keep them)")
    s.add_argument("--no-hands", action="store_true",
                   help="leave the hand keypoints out of the pose videos (the keypoints files keep them)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=run_synth)

    r = data_sub.add_parser(
        "prepare",
        help="extract poses for every video of a folder and write a training meta file (resumable)",
        description="Real data for training (UBC Fashion, TikTok, your own videos): keypoints and pose "
        "videos beside the meta file; videos already done are skipped (see docs/data.md).",
    )
    r.add_argument("video_dir", help="folder searched recursively for videos")
    r.add_argument("-o", "--output", required=True, help="meta file to write, e.g. data/ubc_train.json")
    r.add_argument("--split", help="value of the entries' 'split' field (e.g. train / test)")
    r.add_argument("--no-face", action="store_true", help="leave the face out of the pose videos")
    r.add_argument("--no-hands", action="store_true", help="leave the hands out of the pose videos")
    r.add_argument("--face", action="store_true",
                   help="talking-head videos for face reenactment: also write the upper-face and mouth "
                        "landmark maps (face_upper/, face_mouth/); videos without a face are left out")
    r.set_defaults(func=run_prepare)


def run_synth(args: argparse.Namespace) -> int:
    import sys
    import time

    from ..errors import InputError
    from ..lab.split import plan_clips
    from ..lab.writer import write_dataset

    width, height = args.size
    if args.num_characters < 1 or args.clips_per_character < 1 or args.frames < 1:
        raise InputError("--num-characters, --clips-per-character and --frames must be at least 1")
    if width < 16 or height < 16:
        raise InputError(f"--size must be at least 16x16, got {width}x{height}")
    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    categories = tuple(args.categories) if args.categories else None
    motions = tuple(args.motions) if args.motions else None
    plans = list(plan_clips(args.split, args.num_characters, args.clips_per_character, args.seed, categories, motions))
    total = len(plans)
    start = time.perf_counter()

    def progress(n: int, entry: dict) -> None:
        if not args.quiet:
            rate = n / max(time.perf_counter() - start, 1e-6)
            print(f"\r{n}/{total} clips ({rate:.1f}/s) {entry['clip_id']} {entry['category']} {entry['motion_id']}  ",
                  end="", file=sys.stderr, flush=True)

    config = {
        "command": "data synth",
        "num_characters": args.num_characters,
        "clips_per_character": args.clips_per_character,
        "frames": args.frames,
        "size": [width, height],
        "fps": args.fps,
        "split": args.split,
        "seed": args.seed,
        "categories": list(categories) if categories else None,
        "lossless": args.lossless,
        "motions": list(motions) if motions else None,
        "framing": args.framing,
        "pose_face": not args.no_face,
        "pose_hands": not args.no_hands,
    }
    try:
        meta = write_dataset(args.output, plans, args.frames, width, height, args.fps, args.lossless, args.masks,
                             framing=args.framing, config=config, progress=progress,
                             pose_face=not args.no_face, pose_hands=not args.no_hands)
    except OSError as exc:
        raise InputError(f"{args.output}: cannot write ({exc.strerror or exc})") from None
    if not args.quiet:
        print(file=sys.stderr)
    splits = {s: sum(p.split == s for p in plans) for s in ("train", "heldout")}
    print(f"wrote {total} clips ({splits['train']} train, {splits['heldout']} heldout) in "
          f"{time.perf_counter() - start:.1f} s: {meta}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare_videos

    summary = prepare_videos(args.video_dir, args.output, face=not args.no_face, hands=not args.no_hands,
                             split=args.split, face_maps=args.face)
    print(f"{summary['entries']} videos in {summary['meta']} ({summary['done']} extracted, "
          f"{summary['skipped']} already done, {len(summary['failed'])} failed)")
    return 0 if summary["entries"] else 2

