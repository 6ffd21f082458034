"""Quality of a lab-trained model on held-out lab sequences, next to two baselines.

For each of ``--sequences`` held-out characters (never trained on) performing a held-out motion,
the first frame is the reference image and the next ``--frames`` frames (after a gap) are the
ground truth; their exact keypoints, drawn as pose maps, drive the model. Printed per method:

* SSIM, PSNR (textbook, dB) and L1 against the ground truth over the whole frame;
* PSNR and L1 over the **character region**: the pixels covered by the character in the ground-truth
  frame or in the reference (the lab's exact masks, grown by 2 px). A lab clip is mostly static
  background, which whole-frame scores reward copying; this region is where animation happens;
* the same whole-frame SSIM / PSNR split by the reference's background (repeating fine pattern or
  smooth), with paired model − copy differences;
* pose fidelity split by the motion (turning, where the character shows its side and back, or
  not), with paired model − no-referencenet differences, and by the way the true frame faces
  (front, side, back: :func:`animate_anyone.pose.facing.body_facing`), over frames;
* pose fidelity, PCK@0.1 of the body pose re-detected in the frames, by two detectors:
  the **lab pose probe** (``animate_anyone.lab.pose_probe``, trained on train-split lab frames with
  exact keypoints; the shipped weights) and **mediapipe** (the bundled general-purpose estimator,
  when the ``pose`` extra is installed; it misses about half of the points on lab characters even in
  the true frames). Two ways per detector: against the exact keypoints ("PCK"), and against the
  same detector's reading of the true frames ("agreement",
  :func:`animate_anyone.evaluation.pose_metrics.pose_agreement`: the way real videos, which have no
  exact keypoints, are scored; a true frame the detector misreads then ranks no method).

Methods, all measured in this run:
* ``model``            the model as shipped (with its demo settings, reference hold included);
* ``model-no-hold``    (only when the settings hold the reference back: ``hold_steps`` > 0) the
                       same model without the hold, which differs only on sequences with frames
                       that face away from the reference (the others reuse the model's frames);
* ``model-no-keep``    (only when the settings keep what does not move: ``keep_steps`` > 0) the
                       same model without keeping the reference latent where the poses say that
                       nothing moved (:func:`animate_anyone.pose.static.static_mask`);
* ``no-referencenet``  the same model and seed with the ReferenceNet switched off (empty bank;
                       a model with a reference latent input loses that too: it rides in the bank;
                       a model with a reference detail refiner runs without it);
* ``copy-reference``   the reference image repeated (what a model that ignores the pose gets);
* ``autoencoder``      the ground truth encoded and decoded by the model's autoencoder (and
                       refined against the reference, for a model with a reference detail
                       refiner): the ceiling any denoiser working in its latent space can reach;
* ``ground-truth``     (pose fidelity only) how well the detector does on the true frames.

    python benchmarks/lab_quality.py                      # the shipped demo model
    python benchmarks/lab_quality.py --weights runs/demo/stage2/final --sequences 20
    python benchmarks/lab_quality.py --sequences 40 --save-frames runs/q40_frames   # keep the frames
    python benchmarks/lab_quality.py --sequences 40 --frames-from runs/q40_frames   # score them again
    python benchmarks/lab_quality.py --start 40 --sequences 20   # 20 others (held-out #40 to #59)

``--save-frames DIR`` keeps each sequence's generated frames (``seq_NNN.npz``, uint8, the methods
that need the model) and the settings (``settings.json``); ``--frames-from DIR`` scores those
frames again (a new detector, say) without the model, in a few minutes instead of most of an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animate_anyone.demo import (
    default_weights,
    demo_settings,
    example_parts,
    frame_metrics,
    heldout_clip,
    lab_hold,
    lab_keep,
)
from animate_anyone.errors import InputError
from animate_anyone.evaluation.pose_metrics import (
    body_size,
    compare_poses,
    mask_region_fidelity,
    run_detector,
)
from animate_anyone.evaluation.studies import study_detector
from animate_anyone.lab.background import PATTERNED_BACKGROUNDS
from animate_anyone.pose.facing import body_facing

FACINGS = ("front", "side", "back")

DETECTORS = {"probe": "lab-probe", "mediapipe": "mediapipe"}  # column name -> study_detector's name
MODEL_METHODS = ("model", "model-no-hold", "model-no-keep", "no-referencenet", "autoencoder")  # what --save-frames keeps
VARIANTS = ("model-no-hold", "model-no-keep")  # saved only where they differ from the model's frames


def save_frames(folder: Path, index: int, outs: dict) -> None:
    """Write sequence ``index``'s frames of the :data:`MODEL_METHODS` to ``folder`` (atomically;
    the variants only where they differ from the model)."""
    keep = {k: v for k, v in outs.items()
            if k in MODEL_METHODS and not (k in VARIANTS and v is outs["model"])}  # fmt: skip
    path = folder / f"seq_{index:03d}.npz"
    tmp = path.with_name(f".{path.stem}.partial.npz")
    np.savez_compressed(tmp, **keep)
    os.replace(tmp, path)


def load_frames(folder: Path, index: int, methods: list[str]) -> dict:
    """The frames :func:`save_frames` wrote for sequence ``index`` (a variant of the model: the
    model's frames themselves where it was not saved, so their scores are reused)."""
    path = folder / f"seq_{index:03d}.npz"
    try:
        with np.load(path) as z:
            outs = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the saved frames of sequence {index}: {path} ({exc})") from None
    for variant in VARIANTS:
        if variant in methods and variant not in outs:
            outs[variant] = outs["model"]
    missing = [m for m in MODEL_METHODS if m in methods and m not in outs]
    if missing:
        raise SystemExit(f"error: {path} holds no frames of {', '.join(missing)}")
    return outs


def make_detectors(names, probe: str | None = None) -> dict:
    """The named detectors (``probe``: the lab probe from that weights folder instead of the shipped
    one, which must load); another that cannot be made is reported and left out (None)."""
    out = {}
    for name in names:
        if name == "probe" and probe:
            from animate_anyone.lab.pose_probe import probe_detector

            try:
                out[name] = probe_detector(probe)
            except InputError as exc:
                raise SystemExit(f"error: {exc}") from None
            continue
        try:
            out[name] = study_detector(DETECTORS[name])
        except Exception as exc:  # noqa: BLE001 - report and go on without that detector
            print(f"pose fidelity by {name} off: {exc}", file=sys.stderr)
            out[name] = None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="model folder (default: the shipped demo model)")
    p.add_argument("--sequences", type=int, default=20)
    p.add_argument("--start", type=int, default=0,
                   help="first held-out example (0: the demo's); a later start gives sequences never looked at")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the model's demo setting)")
    p.add_argument("--strength", type=float,
                   help="fraction of the schedule run from the noised reference latent, for the model and "
                        "no-referencenet rows alike (default: the model's demo setting, 1.0 = pure noise)")
    p.add_argument("--hold-steps", type=float,
                   help="fraction of the steps during which frames facing away from the reference do not read "
                        "its face (default: the model's demo setting; 0 = off)")
    p.add_argument("--keep-steps", type=float,
                   help="fraction of the steps during which the reference latent is kept where the poses say nothing "
                        "moved (default: the model's demo setting; 0 = off)")
    p.add_argument("--no-pose", action="store_true", help="skip pose fidelity")
    p.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS),
                   help="pose detectors for pose fidelity (default: both)")
    p.add_argument("--probe", metavar="DIR", help="lab probe weights folder (default: the shipped probe)")
    p.add_argument("--json", help="also write the per-sequence numbers here")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--save-frames", metavar="DIR", help="keep the generated frames and settings here")
    g.add_argument("--frames-from", metavar="DIR",
                   help="score the frames a --save-frames run kept here, with its settings, without the model")
    args = p.parse_args(argv)
    if args.sequences < 1 or args.start < 0:
        print("error: --sequences must be at least 1 and --start at least 0", file=sys.stderr)
        return 2
    model_options = [o for o, v in (("--weights", args.weights), ("--steps", args.steps), ("--strength", args.strength),
                                    ("--hold-steps", args.hold_steps), ("--keep-steps", args.keep_steps))
                     if v is not None]  # fmt: skip
    if args.frames_from and model_options:
        print(f"error: {', '.join(model_options)} would be ignored: --frames-from scores kept frames with the "
              "model and settings they were made with", file=sys.stderr)  # fmt: skip
        return 2

    from animate_anyone.lab.generate import generate_clip  # noqa: F401  (fail early without the lab)
    from animate_anyone.weights.layouts import load_pipeline

    weights = args.weights or default_weights()
    if args.frames_from:
        saved = Path(args.frames_from)
        try:
            s = json.loads((saved / "settings.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {saved} holds no readable settings.json of a --save-frames run ({exc})", file=sys.stderr)
            return 2
    else:
        s = demo_settings(Path(weights))
        if args.steps:
            s["steps"] = args.steps
        if args.strength is not None:
            s["strength"] = args.strength
        if args.hold_steps is not None:
            s["hold_steps"] = args.hold_steps
        if args.keep_steps is not None:
            s["keep_steps"] = args.keep_steps
    s.setdefault("keep_steps", 0.0)  # runs saved before the option
    detectors = {} if args.no_pose else make_detectors(args.detectors, args.probe)
    pipe = None if args.frames_from else load_pipeline(weights)
    if args.save_frames:
        Path(args.save_frames).mkdir(parents=True, exist_ok=True)
        (Path(args.save_frames) / "settings.json").write_text(json.dumps(s, indent=1, default=str))
    methods = ["model"] + (["model-no-hold"] if s["hold_steps"] > 0 else [])
    methods += ["model-no-keep"] if s["keep_steps"] > 0 else []
    methods += ["no-referencenet", "copy-reference", "autoencoder", "ground-truth"]
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for i in range(args.start, args.start + args.sequences):
        clip, sl = heldout_clip(i, s["size"], s["frames"], s["gap"])
        ref, poses, gt, info = example_parts(clip, sl)
        seq, region = clip.poses.frames(sl), _character_region(clip, sl)
        facing = body_facing(seq.body)
        kw = dict(width=s["size"], height=s["size"], num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                  seed=s["seed"], context_frames=s["context_frames"], context_overlap=s["context_overlap"],
                  strength=s["strength"], progress=False)  # fmt: skip
        hold = lab_hold(clip, sl, s["size"], s["hold_steps"])
        keep = lab_keep(clip, sl, s["size"], s["keep_steps"])
        keep_kw = dict(reference_keep=keep, reference_keep_steps=s["keep_steps"])
        readings = {det: None if fn is None else run_detector(fn, gt) for det, fn in detectors.items()}
        if pipe is None:
            outs = load_frames(Path(args.frames_from), i, methods)
        else:
            with torch.inference_mode():
                outs = {"model": pipe(Image.fromarray(ref), list(poses), reference_hold=hold,
                                      reference_hold_steps=s["hold_steps"], **keep_kw, **kw).to_uint8()}  # fmt: skip
                if "model-no-hold" in rows:
                    outs["model-no-hold"] = (pipe(Image.fromarray(ref), list(poses), **keep_kw, **kw).to_uint8()
                                             if hold is not None and hold.any() else outs["model"])  # fmt: skip
                if "model-no-keep" in rows:
                    outs["model-no-keep"] = (pipe(Image.fromarray(ref), list(poses), reference_hold=hold,
                                                  reference_hold_steps=s["hold_steps"], **kw).to_uint8()
                                             if keep is not None and keep.any() else outs["model"])  # fmt: skip
                outs["no-referencenet"] = pipe(Image.fromarray(ref), list(poses), use_reference=False, **kw).to_uint8()
            outs["autoencoder"] = pipe.autoencode(gt, reference=ref)  # refined too, if the model has a refiner
            if args.save_frames:
                save_frames(Path(args.save_frames), i, outs)
        outs["copy-reference"] = np.repeat(ref[None], len(gt), axis=0)
        outs["ground-truth"] = gt
        outs = {m: outs[m] for m in methods}  # the table's order
        for name, frames in outs.items():
            if name in VARIANTS and frames is outs["model"]:  # the same frames: the same scores
                rows[name].append(dict(rows["model"][-1]))
                continue
            truth_row = name == "ground-truth"
            r = {} if truth_row else frame_metrics(frames, gt)
            if not truth_row:
                r["region_psnr"], r["region_l1"] = mask_region_fidelity(frames, gt, region)
            for det, fn in detectors.items():  # the true frames are read once, for their row and for agreement
                reading = readings[det] if truth_row or fn is None else run_detector(fn, frames)
                r.update(_pose_scores(reading, seq, facing, det, None if truth_row else readings[det]))
            r.update(info, **{f"frames_{f}": int((facing == f).sum()) for f in FACINGS})
            rows[name].append(r)
        print(f"[{i + 1 - args.start}/{args.sequences}] #{i} {info['category']:8s} {info['motion']:14s} "
              f"SSIM model {rows['model'][-1]['ssim']:.3f} | no-ref {rows['no-referencenet'][-1]['ssim']:.3f} | "
              f"copy {rows['copy-reference'][-1]['ssim']:.3f}", flush=True)  # fmt: skip
    print(f"\n{args.sequences} held-out sequences (from #{args.start}), {s['frames']} frames at {s['size']}x{s['size']}, "
          f"{s['steps']} steps, guidance {s['guidance']}, strength {s['strength']}, reference hold "
          f"{s['hold_steps']:g} of the steps, reference keep {s['keep_steps']:g} of the steps, "
          f"{time.perf_counter() - t0:.0f} s\n")
    heads = ["SSIM ↑", "PSNR (dB) ↑", "L1 ↓", "char. PSNR ↑", "char. L1 ↓"] + [f"PCK@0.1 {d} ↑" for d in detectors]
    heads += [f"agreement {d} ↑" for d in detectors]
    print("| method | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for name, rs in rows.items():
        cells = [f"{_mean(rs, 'ssim'):.3f}", f"{_mean(rs, 'psnr'):.2f}", f"{_mean(rs, 'l1'):.4f}",
                 f"{_mean(rs, 'region_psnr'):.2f}", f"{_mean(rs, 'region_l1'):.4f}"]
        cells += [f"{_mean(rs, f'pck_{d}'):.3f}" for d in detectors]
        cells += [f"{_mean(rs, f'agree_{d}'):.3f}" for d in detectors]
        print(f"| {name} | " + " | ".join("–" if c == "nan" else c for c in cells) + " |")
    print_paired(rows, list(detectors))
    print_background_groups(rows)
    print_pose_by_motion(rows, list(detectors))
    print_pose_by_facing(rows, list(detectors))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"settings": s, "rows": rows}, fh, indent=1, default=float)
    return 0


def print_background_groups(rows: dict[str, list[dict]]) -> None:
    """Model against copying, split by the reference's background: repeating fine patterns
    (``PATTERNED_BACKGROUNDS``), which copying reproduces exactly and the model has to rebuild, and the
    smooth rest; paired model − copy differences (mean ± standard error, sequences where the model is higher)."""
    print("\n| background | sequences | SSIM model / copy / autoencoder | PSNR (dB) model / copy | "
          "SSIM model − copy | PSNR model − copy |")
    print("|---|---|---|---|---|---|")
    for name, patterned in (("repeating pattern (" + ", ".join(PATTERNED_BACKGROUNDS) + ")", True), ("smooth (the rest)", False)):
        idx = [i for i, r in enumerate(rows["model"]) if (r["background"] in PATTERNED_BACKGROUNDS) == patterned]
        if not idx:
            continue
        cells = [_paired(rows, "copy-reference", key, idx) for key in ("ssim", "psnr")]
        sel = {m: [rows[m][i] for i in idx] for m in ("model", "copy-reference", "autoencoder")}
        print(f"| {name} | {len(idx)} | {_mean(sel['model'], 'ssim'):.3f} / {_mean(sel['copy-reference'], 'ssim'):.3f} / "
              f"{_mean(sel['autoencoder'], 'ssim'):.3f} | {_mean(sel['model'], 'psnr'):.2f} / "
              f"{_mean(sel['copy-reference'], 'psnr'):.2f} | {cells[0]} | {cells[1]} |")


def print_paired(rows: dict[str, list[dict]], detectors: list[str]) -> None:
    """Model − every other method, paired over all sequences (mean ± standard error, sequences where
    the model is higher)."""
    keys = [("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("region_psnr", "char. PSNR (dB)")]
    keys += [(f"pck_{d}", f"PCK {d}") for d in detectors] + [(f"agree_{d}", f"agreement {d}") for d in detectors]
    idx = list(range(len(rows["model"])))
    print("\n| model − | " + " | ".join(label for _, label in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name in rows:
        if name in ("model", "ground-truth", "autoencoder"):
            continue
        print(f"| {name} | " + " | ".join(_paired(rows, name, key, idx) for key, _ in keys) + " |")


def print_pose_by_motion(rows: dict[str, list[dict]], detectors: list[str]) -> None:
    """Pose fidelity split by the driving motion: turning (the character shows its side and back
    in part of the clip) and the rest, with the paired model − no-referencenet difference (mean ±
    standard error, sequences where the model is higher). Detectors that could not score a
    sequence are left out of its pair."""
    if not detectors:
        return
    print("\n| motion | detector | score | sequences | model / no-referencenet / copy / ground truth | "
          "model − no-referencenet |")
    print("|---|---|---|---|---|---|")
    for name, turning in (("all", None), ("turning", True), ("the rest", False)):
        idx = [i for i, r in enumerate(rows["model"])
               if turning is None or str(r.get("motion", "")).startswith("turn") == turning]  # fmt: skip
        if not idx:
            continue
        for det in detectors:
            for kind, label in (("pck", "PCK@0.1"), ("agree", "agreement")):
                key = f"{kind}_{det}"
                sel = {m: [rows[m][i] for i in idx] for m in ("model", "no-referencenet", "copy-reference", "ground-truth")}
                cells = " / ".join(f"{_mean(sel[m], key):.3f}".replace("nan", "–") for m in sel)
                print(f"| {name} | {det} | {label} | {len(idx)} | {cells} | "
                      f"{_paired(rows, 'no-referencenet', key, idx)} |")  # fmt: skip


def _pose_scores(reading, truth, facing: np.ndarray, det: str, truth_reading=None) -> dict[str, float]:
    """``pck_<det>``: PCK@0.1 of a detector's ``reading`` of a method's frames against the exact
    keypoints ``truth`` (NaN without a reading: no detector); ``pck_<det>_<f>``: the mean per-frame
    PCK@0.1 over the frames whose true figure faces ``f`` (NaN: no such frame). With
    ``truth_reading`` (the detector's reading of the true frames), the same as ``agree_<det>`` and
    ``agree_<det>_<f>`` against it, distances normalised by the exact body size."""
    nan = float("nan")
    kinds = ["pck"] + (["agree"] if truth_reading is not None else [])
    if reading is None:
        return {f"{k}_{det}{f}": nan for k in kinds for f in ("", *(f"_{f}" for f in FACINGS))}
    out = {}
    for kind in kinds:
        if kind == "pck":
            fid = compare_poses(reading, truth, thresholds=(0.1,))
        else:
            fid = compare_poses(reading, truth_reading.scaled(truth.width, truth.height), thresholds=(0.1,),
                                sizes=body_size(truth.body))
        # no point to score (the detector found nobody in the true frames): no score, not a zero
        out[f"{kind}_{det}"] = fid.pck[0.1] if np.isfinite(fid.per_frame_pck).any() else nan
        for f in FACINGS:
            per = fid.per_frame_pck[facing == f]
            per = per[np.isfinite(per)]
            out[f"{kind}_{det}_{f}"] = float(per.mean()) if len(per) else nan
    return out


def print_pose_by_facing(rows: dict[str, list[dict]], detectors: list[str]) -> None:
    """Pose fidelity by the way the true figure faces, over all sequences' frames (each sequence's
    per-facing mean weighted by its number of such frames)."""
    if not detectors:
        return
    methods = [m for m in ("model", "model-no-hold", "model-no-keep", "no-referencenet", "copy-reference", "ground-truth")
               if m in rows]
    print(f"\n| true figure faces | detector | score | frames | {' / '.join(methods)} |")
    print("|---|---|---|---|---|")
    for f in FACINGS:
        n = sum(r[f"frames_{f}"] for r in rows["model"])
        if not n:
            continue
        for det in detectors:
            for kind, label in (("pck", "PCK@0.1"), ("agree", "agreement")):
                cells = []
                for m in methods:
                    pairs = [(r.get(f"{kind}_{det}_{f}", np.nan), r[f"frames_{f}"]) for r in rows[m] if r[f"frames_{f}"]]
                    pairs = [(v, k) for v, k in pairs if np.isfinite(v)]
                    k = sum(k for _, k in pairs)
                    cells.append(f"{sum(v * k for v, k in pairs) / k:.3f}" if k else "–")
                print(f"| {f} | {det} | {label} | {n} | {' / '.join(cells)} |")


def _paired(rows: dict[str, list[dict]], baseline: str, key: str, idx: list[int]) -> str:
    """Model − ``baseline`` on ``key`` over the sequences ``idx``, pairs a score is missing from left
    out: mean ± standard error (sequences where the model is higher / pairs), "–" for no pair."""
    d = np.array([rows["model"][i].get(key, np.nan) - rows[baseline][i].get(key, np.nan) for i in idx], dtype=float)
    d = d[np.isfinite(d)]
    if not len(d):
        return "–"
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return f"{d.mean():+.3f} ± {se:.3f} ({int((d > 0).sum())}/{len(d)})"


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def _character_region(clip, sl: slice) -> np.ndarray:
    """Per ground-truth frame, where the character is in it or in the reference (frame 0), grown by 2 px."""
    covered = (clip.masks[sl] > 0) | (clip.masks[0] > 0)[None]
    grown = torch.nn.functional.max_pool2d(torch.from_numpy(covered).float()[:, None], 5, stride=1, padding=2)
    return grown[:, 0].bool().numpy()


if __name__ == "__main__":
    sys.exit(main())
