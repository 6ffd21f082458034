"""``animate-anyone evaluate``: generated vs ground-truth videos -> a report folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare generated videos with ground truth (PSNR, SSIM, LPIPS, FID, FVD, pose fidelity...)",
        description="Writes REPORT_DIR/{metrics.json, metrics.md, plots/, videos/, index.html}. "
        "Metrics whose inputs are missing are skipped with a note, unless named in --metrics.",
    )
    p.add_argument("--pred", required=True, help="generated video, or a folder of videos (paired with --gt by file name)")
    p.add_argument("--gt", required=True, help="ground-truth video, or a folder of videos")
    p.add_argument("--driving", help="driving keypoints (.json/.npz) or driving video, or a folder of them named like the videos")
    p.add_argument("--ref", help="reference image (or folder of them named like the videos), for appearance consistency")
    p.add_argument("--ref-pose", help="keypoints of the reference image (default: detected with the pose extractor)")
    p.add_argument("--weights-dir", help="folder with the public weight files of LPIPS / FID / FVD (see docs/evaluation.md)")
    p.add_argument("--metrics", help="comma-separated metrics to compute (default: every one whose inputs are present)")
    p.add_argument("--size", help="evaluate at WIDTHxHEIGHT (default: the ground truth's size)")
    p.add_argument("--max-frames", type=int, help="read at most this many frames of each video")
    p.add_argument("--clip-frames", type=int, default=16, help="I3D clip length for FID-VID/FVD (default 16)")
    p.add_argument("--categories", help="JSON {video name: category} or CSV 'name,category' lines: per-category bars")
    p.add_argument("--device", help="device of the learned metrics (default: cuda if available, else cpu)")
    p.add_argument("--no-videos", action="store_true", help="do not write the side-by-side comparison videos")
    p.add_argument("--overwrite", action="store_true", help="replace REPORT_DIR if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--output", "-o", required=True, help="report folder")
    p.set_defaults(func=run_evaluate)

    s = sub.add_parser("study", help="generate a set of cases under several conditions and compare the metrics",
                       description="Runs a study config (see docs/evaluation.md, 'Studies'); writes "
                       "REPORT_DIR/{study.json, study.md, plots/}.")  # fmt: skip
    s.add_argument("config", help="study YAML file")
    s.add_argument("--weights", help="weights folder (overrides model.weights of the config; conditions with their own weights keep them)")
    s.add_argument("--overwrite", action="store_true", help="replace REPORT_DIR if it exists")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--output", "-o", required=True, help="report folder")
    s.set_defaults(func=run_study_command)


def parse_size(text: str) -> tuple[int, int]:
    from ..errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 256x256") from None
    if w < 16 or h < 16:
        raise InputError(f"--size {text!r}: width and height must be at least 16")
    return w, h


def read_categories(path: str) -> dict[str, str]:
    import json

    from ..errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: categories file not found")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a JSON object {{video name: category}}")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            parts = [s.strip() for s in line.split(",")]
            if len(parts) != 2:
                raise InputError(f"{p}:{i}: expected 'name,category'")
            out[parts[0]] = parts[1]
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .evaluate import EvaluationSettings, evaluate
    from .report import atomic_directory, write_report, write_side_by_side

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError("--max-frames must be at least 1")
    if args.clip_frames < 8:
        raise InputError("--clip-frames must be at least 8 (I3D downsamples time by 8)")
    for flag in ("driving", "ref", "ref_pose", "weights_dir"):
        value = getattr(args, flag)
        if value is not None and not Path(value).exists():
            raise InputError(f"--{flag.replace('_', '-')} {value}: not found")
    settings = EvaluationSettings(
        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None,
        weights_dir=Path(args.weights_dir) if args.weights_dir else None,
        size=parse_size(args.size) if args.size else None,
        max_frames=args.max_frames,
        clip_frames=args.clip_frames,
        device=args.device,
        categories=read_categories(args.categories) if args.categories else {},
    )
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        media: dict[str, dict[str, str]] = {}

        def on_pair(result, pred, gt):
            if not args.no_videos:
                media[result.name] = write_side_by_side(tmp, result, pred, gt)

        result = evaluate(args.pred, args.gt, driving=args.driving, ref=args.ref, ref_pose=args.ref_pose,
                          settings=settings, progress=not args.quiet, on_pair=on_pair)  # fmt: skip
        write_report(result, tmp, media)
    out = Path(args.output)
    print(f"wrote {out / 'index.html'} ({len(result.videos)} video(s); metrics: {', '.join(result.metrics)})")
    for name, reason in result.skipped.items():
        print(f"  skipped {name}: {reason}")
    return 0


def run_study_command(args: argparse.Namespace) -> int:
    from .report import atomic_directory
    from .studies import condition_generators, load_cases, load_study, run_study, write_study_report

    cfg = load_study(args.config)
    if args.weights:
        cfg.model.weights = args.weights
    cases = load_cases(cfg)
    generate = condition_generators(cfg)
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        result = run_study(cfg, cases, generate, progress=not args.quiet)
        write_study_report(result, tmp)
    print(f"wrote {Path(args.output) / 'study.md'} ({len(cases)} case(s) x {len(cfg.conditions)} condition(s))")
    return 0
