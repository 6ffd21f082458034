"""Evaluate generated videos against ground truth: every metric, per video and over the set.

:func:`evaluate` is what ``animate-anyone evaluate`` runs; it returns an :class:`EvaluationResult`
that :mod:`.report` writes out. Metrics (names as in ``--metrics`` and ``metrics.json``):

=====================  ==========================================================  ===================
name                   what                                                        needs
=====================  ==========================================================  ===================
``l1``                 mean absolute error, values in [0, 1]                       —
``l1_disco``           DisCo's L1 (0-255 MAE / (height·width))                     —
``psnr``               PSNR in dB (identical frames counted as 100 dB)             —
``psnr_disco_uint8``   DisCo's uint8 wrap-around PSNR (the published "PSNR")       —
``ssim``               SSIM, Gaussian 11×11 σ 1.5, RGB (scikit-image settings)     —
``ssim_disco``         DisCo's SSIM (grey, 7×7 uniform, sample covariance)         —
``flicker``            frame-to-frame change where the pose is still               (driving pose)
``pose``               PCK@0.05/0.1 and keypoint error of the re-detected pose     driving pose
``appearance``         part colour-histogram distance to the reference image       --ref + driving pose
``lpips``/``lpips_vgg``  LPIPS with AlexNet / VGG-16                               weight files
``fid``                FID over all frames (Inception pool3)                       weight file
``fid_vid``/``fvd``    Fréchet distance of I3D pooled features / logits of clips   weight file
=====================  ==========================================================  ===================

Without ``metrics`` every metric whose inputs are present runs and the others are listed under
``skipped`` with the reason; naming a metric whose inputs are missing is an InputError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.video_io import VIDEO_SUFFIXES, read_image, read_video
from ..errors import InputError
from ..pose.keypoints import PoseSequence, load_keypoints
from . import metrics as M
from .pose_metrics import (
    Detector,
    appearance_consistency,
    default_detector,
    pose_fidelity,
    run_detector,
    temporal_flicker,
)
from .videos import COMMON_SIZE_RULE, Alignment, bring_to_common, find_companion, pair_videos
from .weights import METRIC_FILES, missing_files

FRAME_METRICS = ("l1", "l1_disco", "psnr", "psnr_disco_uint8", "ssim", "ssim_disco")
LEARNED_METRICS = ("lpips", "lpips_vgg", "fid", "fid_vid", "fvd")
POSE_METRICS = ("flicker", "pose", "appearance")
ALL_METRICS = FRAME_METRICS + POSE_METRICS + LEARNED_METRICS
DATASET_METRICS = ("fid", "fid_vid", "fvd")  # Fréchet distances: one number over the whole set
KEYPOINT_SUFFIXES = {".json", ".npz"}
HIGHER_IS_BETTER = {"psnr", "psnr_disco_uint8", "ssim", "ssim_disco", "pck@0.05", "pck@0.1", "detection_rate"}


@dataclass
class EvaluationSettings:
    metrics: tuple[str, ...] | None = None  # None: all whose inputs are present
    weights_dir: Path | None = None
    size: tuple[int, int] | None = None  # (width, height) to evaluate at; default: the ground truth's
    max_frames: int | None = None  # read at most this many frames of each video
    clip_frames: int = 16  # I3D clip length for FID-VID / FVD
    device: str | None = None  # for the learned metrics; default cuda when available
    detector: Detector | None = None  # default: the bundled mediapipe extractor
    categories: dict[str, str] = field(default_factory=dict)  # video name -> category


@dataclass
class VideoResult:
    name: str
    pred: str
    gt: str
    category: str | None
    alignment: Alignment
    scores: dict[str, float]
    per_frame: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


@dataclass
class EvaluationResult:
    videos: list[VideoResult]
    summary: dict[str, float]  # mean over videos of each per-video score
    dataset: dict[str, float]  # set-level metrics (Fréchet distances) and their sample counts
    skipped: dict[str, str]  # metric -> why it did not run
    metrics: list[str]  # the metrics that ran
    settings: dict
    notes: list[str] = field(default_factory=list)
    common_size_rule: str = COMMON_SIZE_RULE

    def category_summary(self) -> dict[str, dict[str, float]]:
        groups: dict[str, list[VideoResult]] = {}
        for v in self.videos:
            if v.category is not None:
                groups.setdefault(v.category, []).append(v)
        return {c: _mean_scores(vs) for c, vs in sorted(groups.items())}


def _mean_scores(videos: list[VideoResult]) -> dict[str, float]:
    keys = sorted({k for v in videos for k in v.scores})
    return {k: M.summarise([v.scores.get(k, math.nan) for v in videos]) for k in keys}


def plan_metrics(settings: EvaluationSettings, have_driving: bool, have_ref: bool) -> tuple[list[str], dict[str, str]]:
    """Which metrics run and why the others do not; raises InputError for a requested metric whose
    inputs are missing (naming the missing weight file)."""
    requested = settings.metrics
    if requested is not None:
        unknown = sorted(set(requested) - set(ALL_METRICS))
        if unknown:
            raise InputError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL_METRICS)}")
    selected, skipped = [], {}
    for name in ALL_METRICS:
        if requested is not None and name not in requested:
            continue
        reason = None
        if name in METRIC_FILES:
            missing = missing_files(settings.weights_dir, name)
            if missing:
                where = f"not in {settings.weights_dir}" if settings.weights_dir else "no --weights-dir given"
                reason = f"needs weight file {' and '.join(missing)} ({where})"
        elif name == "pose" and not have_driving:
            reason = "needs --driving (keypoints file or driving video)"
        elif name == "appearance" and not (have_ref and have_driving):
            reason = "needs --ref and --driving"
        if reason is None:
            selected.append(name)
        elif requested is not None:
            raise InputError(f"metric {name} was requested but {reason}")
        else:
            skipped[name] = reason
    return selected, skipped


class _Networks:
    """Learned-metric networks, loaded once on first use."""

    def __init__(self, settings: EvaluationSettings) -> None:
        self.settings = settings
        self._cache: dict[str, object] = {}

    def device(self):
        import torch

        return self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def get(self, name: str):
        if name not in self._cache:
            from . import weights as W

            wd = self.settings.weights_dir
            net = {"lpips": lambda: W.load_lpips(wd, "alex"), "lpips_vgg": lambda: W.load_lpips(wd, "vgg"),
                   "fid": lambda: W.load_fid_inception(wd), "i3d": lambda: W.load_i3d(wd)}[name]()  # fmt: skip
            self._cache[name] = net.to(self.device())
        return self._cache[name]


def _load_pose(path: Path, detector: Callable[[], Detector], max_frames: int | None) -> tuple[PoseSequence, str]:
    if path.suffix.lower() in KEYPOINT_SUFFIXES:
        return load_keypoints(path), f"driving keypoints from {path.name}"
    video = read_video(path, max_frames)
    seq = run_detector(detector(), video.frames)
    return seq, f"driving pose detected in {path.name}"


def evaluate(pred: str | Path, gt: str | Path, driving: str | Path | None = None, ref: str | Path | None = None,
             ref_pose: str | Path | None = None, settings: EvaluationSettings | None = None,
             progress: bool = True, on_pair: Callable[[VideoResult, np.ndarray, np.ndarray], None] | None = None,
             ) -> EvaluationResult:  # fmt: skip
    """Evaluate ``pred`` against ``gt`` (two videos, or two folders of videos paired by name).

    ``driving``: keypoints file (.json/.npz) or driving video (pose detected), or a folder of them
    named like the videos. ``ref``: reference image (or folder of them); its pose comes from
    ``ref_pose`` or the detector. ``on_pair(result, pred_frames, gt_frames)`` is called with the
    aligned frames of each pair (the report uses it to write side-by-side videos).
    """
    settings = settings or EvaluationSettings()
    pairs = pair_videos(pred, gt)
    multi = Path(pred).is_dir() and len(pairs) > 0 and pairs[0][1] != Path(pred)
    selected, skipped = plan_metrics(settings, driving is not None, ref is not None)
    nets = _Networks(settings)
    detector_cache: list[Detector] = []
    detector_error: list[str] = []

    def get_detector() -> Detector:
        if not detector_cache:
            detector_cache.append(settings.detector or default_detector())
        return detector_cache[0]

    features: dict[str, list[np.ndarray]] = {k: [] for k in ("fid_pred", "fid_gt", "fvd_pred", "fvd_gt", "vid_pred", "vid_gt")}
    results: list[VideoResult] = []
    from tqdm.auto import tqdm

    # SSIM filters with scipy on CPU, with torch on an accelerator
    ssim_device = settings.device if settings.device and not str(settings.device).startswith("cpu") else None
    frame_fns = {"l1": M.l1, "l1_disco": M.l1_disco, "psnr": M.psnr, "psnr_disco_uint8": M.psnr_disco_uint8,
                 "ssim": lambda a, b: M.ssim(a, b, device=ssim_device), "ssim_disco": M.ssim_disco}  # fmt: skip
    for name, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="video", disable=not progress):
        pv, gv = read_video(pred_path, settings.max_frames), read_video(gt_path, settings.max_frames)
        pf, gf, info = bring_to_common(pv.frames, gv.frames, pv.fps, gv.fps, settings.size)
        width, height = info.eval_size
        scores: dict[str, float] = {}
        curves: dict[str, np.ndarray] = {}
        notes: list[str] = []
        # 1. frame metrics
        for m in FRAME_METRICS:
            if m in selected:
                values = frame_fns[m](pf, gf)
                if m == "psnr":
                    values = np.minimum(values, M.PSNR_IDENTICAL_DB)  # identical frames: DisCo's 100 dB cap
                curves[m], scores[m] = values, M.summarise(values)
        # 2. driving pose, in the evaluation frame
        pose = None
        driving_path = find_companion(driving, name, KEYPOINT_SUFFIXES | VIDEO_SUFFIXES, multi)
        if driving is not None and driving_path is None:
            notes.append(f"no driving file named '{name}' in {driving}")
        if driving_path is not None and ({"pose", "flicker", "appearance"} & set(selected)):
            try:
                pose, how = _load_pose(driving_path, get_detector, settings.max_frames)
                notes.append(how)
            except InputError as exc:
                if settings.metrics is not None and {"pose", "appearance"} & set(settings.metrics):
                    raise
                detector_error.append(str(exc))
                pose = None
            if pose is not None:
                if len(pose) < info.eval_frames:
                    raise InputError(f"{driving_path}: {len(pose)} driving poses for {info.eval_frames} frames")
                pose = pose.frames(slice(0, info.eval_frames)).scaled(width, height)
        # 3. weightless pose-based metrics
        if "flicker" in selected:
            fl, fl_gt = temporal_flicker(pf, pose), temporal_flicker(gf, pose)
            curves["flicker"], scores["flicker"], scores["flicker_gt"] = fl.per_pair, fl.mean, fl_gt.mean
            curves["flicker_gt"] = fl_gt.per_pair
            scores["still_fraction"] = fl.still_fraction
        if "pose" in selected and pose is not None:
            try:
                pf_res = pose_fidelity(pf, pose, get_detector())
                scores.update(pf_res.to_dict())
                curves["pck@0.1"] = pf_res.per_frame_pck
            except InputError as exc:
                if settings.metrics is not None:
                    raise
                detector_error.append(str(exc))
        if "appearance" in selected and pose is not None:
            _appearance(name, ref, ref_pose, multi, pf, gf, pose, get_detector, scores, curves, notes, settings)
        # 4. learned metrics
        for m in ("lpips", "lpips_vgg"):
            if m in selected:
                from .learned import lpips_distance

                curves[m] = lpips_distance(pf, gf, nets.get(m))
                scores[m] = M.summarise(curves[m])
        if "fid" in selected:
            from .learned import inception_features

            features["fid_pred"].append(inception_features(pf, nets.get("fid")))
            features["fid_gt"].append(inception_features(gf, nets.get("fid")))
        if {"fvd", "fid_vid"} & set(selected):
            from .learned import i3d_features

            for side, frames in (("pred", pf), ("gt", gf)):
                logits, pooled = i3d_features(frames, nets.get("i3d"), settings.clip_frames)
                features[f"fvd_{side}"].append(logits)
                features[f"vid_{side}"].append(pooled)
        result = VideoResult(name, str(pred_path), str(gt_path), settings.categories.get(name), info, scores, curves, notes)
        results.append(result)
        if on_pair is not None:
            on_pair(result, pf, gf)
    dataset = _dataset_metrics(selected, features, skipped)
    for m in ("pose", "appearance"):
        if m in selected and not any(m in _metric_family(v.scores) for v in results):
            skipped[m] = detector_error[0] if detector_error else "no driving pose for any video"
    ran = [m for m in selected if m not in skipped]
    return EvaluationResult(
        videos=results, summary=_mean_scores(results), dataset=dataset, skipped=skipped, metrics=ran,
        settings=_settings_dict(settings), notes=sorted(set(detector_error)),
    )  # fmt: skip


def _metric_family(scores: dict[str, float]) -> set[str]:
    fam = set()
    if any(k.startswith("pck@") for k in scores):
        fam.add("pose")
    if "appearance" in scores:
        fam.add("appearance")
    return fam


def _appearance(name, ref, ref_pose, multi, pf, gf, pose, get_detector, scores, curves, notes, settings) -> None:
    from ..data.video_io import IMAGE_SUFFIXES

    ref_path = find_companion(ref, name, IMAGE_SUFFIXES, multi)
    if ref_path is None:
        notes.append(f"no reference image named '{name}' in {ref}")
        return
    ref_img = np.asarray(read_image(ref_path))
    try:
        if ref_pose is not None:
            rp_path = find_companion(ref_pose, name, KEYPOINT_SUFFIXES, multi)
            if rp_path is None:
                notes.append(f"no reference keypoints named '{name}' in {ref_pose}")
                return
            rp = load_keypoints(rp_path)
        else:
            rp = run_detector(get_detector(), ref_img[None])
        app, app_gt = (appearance_consistency(f, pose, ref_img, rp.frames(slice(0, 1))) for f in (pf, gf))
    except InputError as exc:
        if settings.metrics is not None and "appearance" in settings.metrics:
            raise
        notes.append(f"appearance skipped: {exc}")
        return
    scores.update(app.to_dict())
    scores["appearance_gt"] = app_gt.mean
    curves["appearance"] = app.per_frame


def _dataset_metrics(selected: list[str], feats: dict[str, list[np.ndarray]], skipped: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric, key in (("fid", "fid"), ("fvd", "fvd"), ("fid_vid", "vid")):
        if metric not in selected:
            continue
        a, b = feats[f"{key}_pred"], feats[f"{key}_gt"]
        fa, fb = np.concatenate(a), np.concatenate(b)
        if min(len(fa), len(fb)) < 2:
            skipped[metric] = f"needs at least 2 samples per side, got {len(fa)}"
            continue
        out[metric] = M.frechet_distance_from_features(fa, fb)
        out[f"{metric}_samples"] = float(len(fa))
    return out


def _settings_dict(s: EvaluationSettings) -> dict:
    return {
        "metrics": list(s.metrics) if s.metrics else None,
        "weights_dir": str(s.weights_dir) if s.weights_dir else None,
        "size": list(s.size) if s.size else None,
        "max_frames": s.max_frames,
        "clip_frames": s.clip_frames,
        "detector": getattr(s.detector, "__name__", type(s.detector).__name__) if s.detector else "default (mediapipe)",
    }
