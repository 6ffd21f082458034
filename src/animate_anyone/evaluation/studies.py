"""Studies: generate every case under several conditions and compare the metrics per condition.

A study is a YAML file whose keys are the fields of :class:`StudyConfig` (unknown keys are errors)::

    name: scale_mismatch
    description: drive characters with motions of differently proportioned characters
    model: {weights: path/to/weights, width: 256, height: 256, steps: 20, guidance_scale: 3.5, seed: 42}
                                 # weights: relative to the YAML file, or `demo` (the shipped model)
    cases:                       # explicit cases (paths relative to the YAML file) ...
      - {name: tall_on_short, reference: ref.png, driving: drive.json, ground_truth: gt.mp4,
         reference_pose: ref.json, category: human}
    case_source: animate_anyone.lab.studies:scale_mismatch_cases         # ... or a function
    case_options: {num_frames: 16}                                        # giving them
    conditions:
      - {name: aligned, align: true}
      - {name: raw, align: false}
    metrics: [psnr, ssim, pose, flicker, appearance]

For each case and condition the runner (:func:`run_study`) takes the driving keypoints, aligns them
to the reference pose when the condition says so (``aligner``), renders pose maps with or without
face/hands keypoints, calls ``generate(reference_image, pose_maps) -> frames``, and measures the
result: against the ground truth when the case has one (common-size rule of :mod:`.videos`), pose
fidelity against the pose it was driven with, flicker, appearance against the reference, and
whether a pose is found in the reference at all (``reference_detected``); with ``pose`` and a ground
truth, also the detector on the ground-truth frames themselves (``gt_detection_rate``, and
``gt_pck@0.1`` against the case's own driving keypoints: the detector's ceiling for the character,
the per-category detection rate of the report's study 2). Scores are averaged per
condition and per (condition, category) and written as ``study.json``, ``study.md`` and bar plots.

Every heavy part is injected, so the same runner serves the synthetic lab on CPU (its cases and the
tiny model) and real data with real weights; :func:`default_generator` wires the pipeline.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
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
from .videos import bring_to_common

Generator = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (reference (h, w, 3), pose maps (t, h, w, 3)) -> frames
Aligner = Callable[[PoseSequence, PoseSequence], PoseSequence]  # (driving, reference pose) -> aligned driving
STUDY_METRICS = ("psnr", "ssim", "l1", "pose", "flicker", "appearance")


@dataclass
class ModelSettings:
    weights: str | None = None  # weights folder for default_generator
    width: int = 256
    height: int = 256
    steps: int = 20
    guidance_scale: float = 3.5
    seed: int = 42
    context_frames: int = 24
    context_overlap: int = 4
    device: str | None = None


@dataclass
class Condition:
    name: str
    align: bool = False  # retarget the driving skeleton to the reference's proportions
    face: bool = True  # draw face keypoints in the pose maps
    hands: bool = True  # draw hand keypoints in the pose maps


@dataclass
class CaseSpec:
    name: str
    reference: str
    driving: str  # keypoints file (.json / .npz)
    ground_truth: str | None = None
    reference_pose: str | None = None
    category: str | None = None


@dataclass
class Case:
    """One study input in memory (what a ``case_source`` function returns)."""

    name: str
    reference: np.ndarray  # (height, width, 3) uint8
    driving: PoseSequence
    ground_truth: np.ndarray | None = None  # (frames, height, width, 3) uint8
    reference_pose: PoseSequence | None = None
    category: str | None = None


@dataclass
class StudyConfig:
    name: str
    conditions: list[Condition]
    description: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    cases: list[CaseSpec] = field(default_factory=list)
    case_source: str | None = None  # "package.module:function" returning list[Case]
    case_options: dict = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(STUDY_METRICS))
    root: Path = Path(".")  # folder the relative paths are resolved against (the YAML's)


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)} - {"root"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_study(data: dict, root: Path = Path("."), source: str = "study") -> StudyConfig:
    """A :class:`StudyConfig` from a parsed YAML mapping; every problem is a ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data = dict(data)
    data["model"] = _build(ModelSettings, data.get("model", {}), f"{source}: model")
    data["conditions"] = [_build(Condition, c, f"{source}: conditions[{i}]") for i, c in enumerate(data.get("conditions") or [])]
    data["cases"] = [_build(CaseSpec, c, f"{source}: cases[{i}]") for i, c in enumerate(data.get("cases") or [])]
    cfg = _build(StudyConfig, data, source)
    cfg.root = root
    w = cfg.model.weights
    if w == "demo":  # the model shipped with the package (what `animate-anyone demo` uses)
        from ..demo import default_weights

        cfg.model.weights = str(default_weights())
    elif w and not Path(w).is_absolute():  # relative to the YAML file, like the case paths
        cfg.model.weights = str(root / w)
    if not cfg.conditions:
        raise ConfigError(f"{source}: at least one condition is needed")
    if len({c.name for c in cfg.conditions}) != len(cfg.conditions):
        raise ConfigError(f"{source}: condition names must be unique")
    if bool(cfg.cases) == bool(cfg.case_source):
        raise ConfigError(f"{source}: give either 'cases' or 'case_source'")
    bad = sorted(set(cfg.metrics) - set(STUDY_METRICS))
    if bad:
        raise ConfigError(f"{source}: unknown metric(s) {', '.join(bad)}; choose from {', '.join(STUDY_METRICS)}")
    return cfg


def load_study(path: str | Path) -> StudyConfig:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: study config not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_study(data, path.parent, str(path))


def load_cases(cfg: StudyConfig) -> list[Case]:
    """The cases of a study: read from the listed files, or returned by ``case_source``."""
    if cfg.case_source:
        module_name, _, func = cfg.case_source.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), func)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"case_source {cfg.case_source}: not available ({exc})") from None
        cases = list(fn(**cfg.case_options))
        if not cases or not all(isinstance(c, Case) for c in cases):
            raise InputError(f"case_source {cfg.case_source}: must return a non-empty list of Case")
        return cases
    from ..data.video_io import read_image, read_video

    out = []
    for spec in cfg.cases:
        p = lambda rel: rel if Path(rel).is_absolute() else cfg.root / rel  # noqa: E731
        out.append(Case(
            name=spec.name,
            reference=np.asarray(read_image(p(spec.reference))),
            driving=load_keypoints(p(spec.driving)),
            ground_truth=read_video(p(spec.ground_truth)).frames if spec.ground_truth else None,
            reference_pose=load_keypoints(p(spec.reference_pose)) if spec.reference_pose else None,
            category=spec.category,
        ))  # fmt: skip
    return out


def default_aligner() -> Aligner:
    """``align_pose(driving, reference_pose)`` of ``animate_anyone.pose.align`` (resolved on use;
    its report is dropped)."""
    try:
        align_pose = importlib.import_module("animate_anyone.pose.align").align_pose
    except (ImportError, AttributeError) as exc:
        raise InputError(f"pose alignment is not available ({exc})") from None

    def align(driving: PoseSequence, reference: PoseSequence) -> PoseSequence:
        out = align_pose(driving, reference)
        return out[0] if isinstance(out, tuple) else out

    return align


def default_generator(model: ModelSettings) -> Generator:
    """The animation pipeline on ``model.weights`` at the study's size, steps and seed."""
    import torch
    from PIL import Image

    from ..weights.layouts import load_pipeline

    if not model.weights:
        raise InputError("model.weights: a weights folder is needed to generate")
    device = model.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = load_pipeline(model.weights, device=device, dtype=torch.float16 if device.startswith("cuda") else torch.float32)

    def generate(reference: np.ndarray, pose_maps: np.ndarray) -> np.ndarray:
        out = pipe(Image.fromarray(reference), pose_maps, width=model.width, height=model.height,
                   num_inference_steps=model.steps, guidance_scale=model.guidance_scale, seed=model.seed,
                   context_frames=min(model.context_frames, len(pose_maps)),
                   context_overlap=min(model.context_overlap, max(min(model.context_frames, len(pose_maps)) - 1, 0)),
                   progress=False)  # fmt: skip
        return out.to_uint8()

    return generate


@dataclass
class StudyResult:
    config: StudyConfig
    rows: list[dict]  # one per (condition, case): names, category and scores
    by_condition: dict[str, dict[str, float]]
    by_condition_category: dict[str, dict[str, dict[str, float]]]
    notes: list[str] = field(default_factory=list)


def _scores(case: Case, cond: Condition, frames: np.ndarray, pose: PoseSequence, ref_pose: PoseSequence | None,
            metrics: list[str], detector: Detector | None) -> dict[str, float]:  # fmt: skip
    h, w = frames.shape[1:3]
    pose = pose.frames(slice(0, len(frames))).scaled(w, h)
    scores: dict[str, float] = {}
    if case.ground_truth is not None and {"psnr", "ssim", "l1"} & set(metrics):
        pf, gf, _ = bring_to_common(frames, case.ground_truth)
        for m, fn in (("psnr", M.psnr), ("ssim", M.ssim), ("l1", M.l1)):
            if m in metrics:
                v = fn(pf, gf)
                scores[m] = M.summarise(np.minimum(v, M.PSNR_IDENTICAL_DB) if m == "psnr" else v)
    if "flicker" in metrics:
        scores["flicker"] = temporal_flicker(frames, pose).mean
    if "pose" in metrics:
        scores.update(pose_fidelity(frames, pose, detector).to_dict())
    if "appearance" in metrics and ref_pose is not None:
        scores["appearance"] = appearance_consistency(frames, pose, case.reference, ref_pose.frames(slice(0, 1))).mean
    return scores


def run_study(cfg: StudyConfig, cases: list[Case], generate: Generator, aligner: Aligner | None = None,
              detector: Detector | None = None, progress: bool = True) -> StudyResult:  # fmt: skip
    """Generate and measure every case under every condition (see the module docstring)."""
    from tqdm.auto import tqdm

    from ..pose.render import render_sequence

    detect = detector or (default_detector() if {"pose", "appearance"} & set(cfg.metrics) else None)
    rows, notes = [], []
    jobs = [(cond, case) for cond in cfg.conditions for case in cases]
    ref_poses: dict[str, PoseSequence | None] = {}
    gt_scores: dict[str, dict[str, float]] = {}  # the detector on each case's ground truth (once per case)
    for cond, case in tqdm(jobs, desc=cfg.name, unit="video", disable=not progress):
        if case.name not in ref_poses:
            rp = case.reference_pose
            if rp is None and detect is not None:
                rp = run_detector(detect, case.reference[None])
            ref_poses[case.name] = rp if rp is not None and rp.detected.any() else None
        ref_pose = ref_poses[case.name]
        pose = case.driving
        if cond.align:
            if ref_pose is None:
                notes.append(f"{cond.name}/{case.name}: no pose in the reference, driven without alignment")
            else:
                pose = (aligner or default_aligner())(copy.deepcopy(pose), ref_pose)  # the case stays intact
        maps = render_sequence(pose, cfg.model.width, cfg.model.height, draw_face=cond.face, draw_hands=cond.hands)
        frames = generate(case.reference, maps)
        scores = _scores(case, cond, frames, pose, ref_pose, cfg.metrics, detect)
        scores["reference_detected"] = float(ref_pose is not None)
        if "pose" in cfg.metrics and case.ground_truth is not None:
            if case.name not in gt_scores:
                gt = np.asarray(case.ground_truth)
                drv = case.driving.frames(slice(0, len(gt))).scaled(gt.shape[2], gt.shape[1])
                fid = pose_fidelity(gt, drv, detect)
                gt_scores[case.name] = {"gt_detection_rate": fid.detection_rate, "gt_pck@0.1": fid.pck[0.1]}
            scores.update(gt_scores[case.name])
        rows.append({"condition": cond.name, "case": case.name, "category": case.category, "scores": scores})
    by_cond = {c.name: _mean([r["scores"] for r in rows if r["condition"] == c.name]) for c in cfg.conditions}
    cats = sorted({r["category"] for r in rows if r["category"]})
    by_cat = {c.name: {k: _mean([r["scores"] for r in rows if r["condition"] == c.name and r["category"] == k])
                       for k in cats} for c in cfg.conditions}  # fmt: skip
    return StudyResult(cfg, rows, by_cond, by_cat, notes)


def _mean(score_dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in score_dicts for k in d})
    return {k: M.summarise([d.get(k, math.nan) for d in score_dicts]) for k in keys}


def write_study_report(result: StudyResult, folder: Path) -> None:
    """``study.json``, ``study.md`` and ``plots/<metric>.png`` (bars per condition and category)."""
    from .report import _fmt, _json_value

    cfg = result.config
    keys = [k for k in ("psnr", "ssim", "l1", "pck@0.05", "pck@0.1", "detection_rate", "flicker", "appearance",
                        "reference_detected", "gt_detection_rate", "gt_pck@0.1")
            if any(k in s for s in result.by_condition.values())]  # fmt: skip
    data = {"schema": "animate-anyone/study/1", "name": cfg.name, "description": cfg.description,
            "conditions": [dataclasses.asdict(c) for c in cfg.conditions], "model": dataclasses.asdict(cfg.model),
            "by_condition": result.by_condition, "by_condition_category": result.by_condition_category,
            "rows": result.rows, "notes": result.notes}  # fmt: skip
    (folder / "study.json").write_text(json.dumps(_json_value(data), indent=1, allow_nan=False))
    lines = [f"# Study: {cfg.name}", "", cfg.description, "", "| condition | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for cond, s in result.by_condition.items():
        lines.append(f"| {cond} | " + " | ".join(_fmt(k, s.get(k)) for k in keys) + " |")
    for cond, cats in result.by_condition_category.items():
        for cat, s in cats.items():
            lines.append(f"| {cond} / {cat} | " + " | ".join(_fmt(k, s.get(k)) for k in keys) + " |")
    lines += [""] + [f"- {n}" for n in result.notes]
    (folder / "study.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    (folder / "plots").mkdir(exist_ok=True)
    conds = list(result.by_condition)
    cats = sorted({c for v in result.by_condition_category.values() for c in v}) or [None]
    for k in keys:
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(conds) * len(cats), 3))
        width = 0.8 / len(cats)
        for j, cat in enumerate(cats):
            vals = [(result.by_condition_category[c].get(cat, {}) if cat else result.by_condition[c]).get(k, math.nan)
                    for c in conds]  # fmt: skip
            ax.bar(np.arange(len(conds)) + j * width, vals, width, label=cat or "all")
        ax.set_xticks(np.arange(len(conds)) + 0.4 - width / 2, conds)
        ax.set_title(k)
        if cats != [None]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "plots" / f"{k.replace('@', '_at_')}.png", dpi=90)
        plt.close(fig)
