"""Keypoint detectors for lab characters, trained on the lab's exact keypoints: the *lab probes*.

The general-purpose detector (mediapipe) finds only about half of the body points on the lab's
cartoon and robot characters even in the true frames, so its pose fidelity mostly measures the
detector. A probe is a small heatmap network trained on train-split characters and motions (never
on the held-out ones the benchmarks use), with blur, noise, colour and resampling augmentation so
that soft generated frames are read as fairly as sharp ones. Two kinds:

* ``body``: the OpenPose-18 body of full-figure clips (``pose_probe.safetensors``);
* ``face``: the iBUG-68 face landmarks of talking-head portraits (``framing="face"``, talk and
  turn motions; ``face_probe.safetensors``), for the face-reenactment benchmark's landmark errors.

* ``PoseProbe``: ``[B, 3, 128, 128]`` in [-1, 1] -> ``[B, K, 32, 32]`` heatmaps (a Gaussian of
  peak 1 at each visible point, zero for hidden ones).
* :func:`probe_detector` wraps one as a ``Detector`` of :mod:`animate_anyone.evaluation.pose_metrics`
  (uint8 frames of any size -> :class:`PoseSequence` with the body, or the face, filled; score =
  heatmap peak).
* :func:`train_probe` makes the shipped weights (``probe_weights/``, each with the command, the
  training time and the held-out accuracy in its JSON)::

      python -m animate_anyone.lab.pose_probe --kind body --steps 5000 --turn-clips 2 --away-clips 1 --output src/animate_anyone/lab/probe_weights
      python -m animate_anyone.lab.pose_probe --kind face --output src/animate_anyone/lab/probe_weights
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ..errors import InputError
from ..pose.facing import body_facing
from ..pose.keypoints import NUM_BODY, NUM_FACE, PoseSequence

SIZE = 128  # network input side
STRIDE = 4  # heatmap cell in input pixels
SIGMA = 1.0  # target Gaussian, in cells
# OpenPose-18 left/right pairs: a mirrored image swaps them
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
WEIGHTS_DIR = Path(__file__).with_name("probe_weights")
KINDS = {  # kind -> (weights file, number of points, framing, motion families or None = all, mirror pairs)
    "body": ("pose_probe.safetensors", NUM_BODY, "body", None, FLIP_PAIRS),
    "face": ("face_probe.safetensors", NUM_FACE, "face", ("talk", "turn"), None),
}
WEIGHTS_FILE = KINDS["body"][0]


class _Block(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.n1 = nn.GroupNorm(8, ch)
        self.n2 = nn.GroupNorm(8, ch)

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


class PoseProbe(nn.Module):
    """Stride-4 stem, dilated residual blocks (receptive field larger than the frame, so left and
    right can be told apart from the face), 1×1 heatmap head."""

    def __init__(self, width: int = 48, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8),
                 num_points: int = NUM_BODY):  # fmt: skip
        super().__init__()
        self.config = {"width": width, "dilations": list(dilations), "num_points": num_points}
        self.stem = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
        )  # fmt: skip
        self.blocks = nn.Sequential(*[_Block(width, d) for d in dilations])
        self.head = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, num_points, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# --------------------------------------------------------------------------------------------
# heatmaps <-> keypoints
# --------------------------------------------------------------------------------------------


def target_heatmaps(body: np.ndarray, cells: int = SIZE // STRIDE, sigma: float = SIGMA) -> np.ndarray:
    """``(B, K, 3)`` points in input pixels -> ``(B, K, cells, cells)`` Gaussian targets."""
    c = (np.arange(cells) + 0.5) * STRIDE - 0.5  # cell centres in pixels
    gx = (c[None, None, :] - body[..., 0:1]) / STRIDE
    gy = (c[None, None, :] - body[..., 1:2]) / STRIDE
    heat = np.exp(-(gy[..., :, None] ** 2 + gx[..., None, :] ** 2) / (2 * sigma**2))
    return (heat * (body[..., 2] > 0)[..., None, None]).astype(np.float32)


def decode_heatmaps(heat: torch.Tensor) -> np.ndarray:
    """``(B, K, h, w)`` -> ``(B, K, 3)`` (x, y in input pixels, score = peak value clipped to
    [0, 1]); the position is refined by a parabola through the log of the peak and its two
    neighbours on each axis (exact for a Gaussian peak)."""
    b, k, h, w = heat.shape
    peak, idx = heat.flatten(2).max(-1)
    iy, ix = idx // w, idx % w
    logh = heat.clamp(min=1e-4).log()
    pad = F.pad(logh, (1, 1, 1, 1), mode="replicate")
    bi = torch.arange(b)[:, None]
    ki = torch.arange(k)[None, :]

    def offset(lo, mid, hi):
        den = lo - 2 * mid + hi
        d = torch.where(den < -1e-6, 0.5 * (lo - hi) / den.where(den < -1e-6, torch.ones_like(den)), torch.zeros_like(den))
        return d.clamp(-0.5, 0.5)

    c = pad[bi, ki, iy + 1, ix + 1]
    dx = offset(pad[bi, ki, iy + 1, ix], c, pad[bi, ki, iy + 1, ix + 2])
    dy = offset(pad[bi, ki, iy, ix + 1], c, pad[bi, ki, iy + 2, ix + 1])
    x = (ix + dx + 0.5) * STRIDE - 0.5
    y = (iy + dy + 0.5) * STRIDE - 0.5
    return torch.stack([x, y, peak.clamp(0, 1)], -1).cpu().numpy().astype(np.float32)


def _to_input(frames: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


# --------------------------------------------------------------------------------------------
# loading and the Detector
# --------------------------------------------------------------------------------------------


def load_probe(weights: str | Path | None = None, kind: str = "body") -> PoseProbe:
    """A probe from a folder (its ``kind``'s file) or a file written by :func:`train_probe`;
    default: the shipped one."""
    return load_network(PoseProbe, weights, KINDS[kind][0], f"lab {kind} probe",
                        f"animate_anyone.lab.pose_probe --kind {kind}")  # fmt: skip


def load_network(cls, weights: str | Path | None, file_name: str, what: str, module: str) -> nn.Module:
    """A probe network ``cls`` from ``weights`` (a folder holding ``file_name``, or the file; default:
    the shipped folder), built from the ``config`` of the JSON beside it; missing or unreadable
    weights are :class:`InputError` naming ``what`` and the ``python -m module`` that makes them."""
    from safetensors.torch import load_file

    path = Path(weights) if weights is not None else WEIGHTS_DIR
    file = path / file_name if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"no {what} weights at {file} (make them with: python -m {module} --output {file.parent})")
    cfg_file = file.with_suffix(".json")
    cfg = json.loads(cfg_file.read_text()).get("config", {}) if cfg_file.is_file() else {}
    model = cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()})
    try:
        model.load_state_dict(load_file(str(file)))
    except Exception as exc:  # noqa: BLE001 - safetensors' own errors, missing or extra keys
        raise InputError(f"{file} is not a {what}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def save_network(model: nn.Module, output: str | Path, file_name: str, info: dict | None = None) -> Path:
    """Write ``model``'s safetensors as ``output/file_name`` and ``info`` (default: its ``config``)
    as the JSON beside it, each through a temporary file; -> the JSON's path."""
    from safetensors.torch import save_file

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (file_name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(out / Path(file_name).with_suffix(".json").name, info if info is not None else {"config": model.config})
    tmp.replace(out / file_name)
    return (out / file_name).with_suffix(".json")


def write_json(path: Path, info: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    tmp.replace(path)


def probe_detector(weights: str | Path | None = None, kind: str = "body", batch: int = 32):
    """A pose-fidelity detector (``uint8 [T, H, W, 3] -> PoseSequence``) backed by a lab probe.
    Only the body (``kind="body"``) or the face (``"face"``) points are filled; a frame counts as
    detected when any point scores ≥ 0.3."""
    model = load_probe(weights, kind)

    @torch.inference_mode()
    def detect(frames: np.ndarray) -> PoseSequence:
        t, h, w = frames.shape[:3]
        pts = np.concatenate([decode_heatmaps(model(_to_input(frames[i : i + batch]))) for i in range(0, t, batch)])
        pts[..., 0] *= w / SIZE
        pts[..., 1] *= h / SIZE
        seq = PoseSequence.empty(t, w, h)
        setattr(seq, kind, pts)
        seq.detected = (pts[..., 2] >= 0.3).any(1)
        seq.meta = {"source": f"lab {kind} probe"}
        return seq

    return detect


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


AWAY_YAW = 150.0  # degrees: a walk whose yaw is at least this far from the viewer walks away


def away_walk(character_id: int, clip_index: int, split: str) -> str:
    """The motion id of a walk of ``split`` seen from behind (``|yaw|`` ≥ :data:`AWAY_YAW`): the
    character's own walk for that clip, moved on to the next such variant of the split
    (``"all"``: the character's own split)."""
    from .motion import sample_motion
    from .split import NUM_VARIANTS, character_split, clip_motion, motion_split

    split = character_split(character_id) if split == "all" else split
    variant = int(clip_motion(character_id, clip_index, split, ("walk",)).rpartition("-")[2])
    while motion_split("walk", variant) != split or abs(sample_motion("walk", variant).params["yaw"]) < math.radians(AWAY_YAW):
        variant = (variant + 1) % NUM_VARIANTS
    return f"walk-{variant:05d}"


def _sample_frames(split: str, num_characters: int, clips: int, frames_per_clip: int, seed: int, kind: str = "body",
                   motions: tuple[str, ...] | None = None, away: bool = False):  # fmt: skip
    """Frames and exact points (the body, or the face) of lab clips: ``num_characters`` characters of
    ``split``, each with ``clips`` motions (of the families ``motions``, default: the kind's; with
    ``away``, walks seen from behind), ``frames_per_clip`` frames from 2 s after a random start."""
    from .generate import generate_clip
    from .split import character_ids, clip_motion

    _, _, framing, kind_motions, _ = KINDS[kind]
    motions = motions or kind_motions
    rng = np.random.default_rng(seed)
    images, points = [], []
    for cid in character_ids(split, num_characters, start=seed * 10_000 if split == "train" else 0):
        for k in range(clips):
            start = float(rng.uniform(0, 4))
            motion = away_walk(cid, k, split) if away else clip_motion(cid, k, split, motions)
            clip = generate_clip(cid, motion, num_frames=frames_per_clip * 6, width=SIZE,
                                 height=SIZE, view_seed=k, start_time=start, framing=framing)  # fmt: skip
            pick = np.sort(rng.choice(len(clip.frames), frames_per_clip, replace=False))
            images.append(clip.frames[pick])
            points.append(getattr(clip.poses, kind)[pick])
    return np.concatenate(images), np.concatenate(points)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of ``x`` ``[B, 3, H, W]`` with its own sigma (pixels; 0 = unchanged)."""
    r = 4
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    k = k / k.sum(-1, keepdim=True)  # [B, 2r+1]
    b, c, h, w = x.shape
    y = x.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), kk[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), kk[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def augment(x: torch.Tensor, body: np.ndarray, gen: torch.Generator,
            flip_pairs: tuple[tuple[int, int], ...] | None = FLIP_PAIRS) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """Degrade a batch the way generated frames are degraded (blur, down-up resampling, noise,
    colour shifts) and, with ``flip_pairs``, mirror half of it (swapping those left/right points)."""
    b = len(x)
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    sigma = torch.where(u(b) < 0.7, u(b) * 2.0, torch.zeros(b))
    x = _gaussian_blur(x, sigma)
    low = u(b) < 0.3
    if low.any():
        small = F.interpolate(x[low], scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        x[low] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    x = x * (1 + 0.2 * (u(b, 1, 1, 1) - 0.5)) + 0.2 * (u(b, 3, 1, 1) - 0.5)
    x = x + torch.randn(x.shape, generator=gen) * (u(b, 1, 1, 1) * 0.08)
    body = body.copy()
    flip = (u(b) < 0.5).numpy()
    if flip_pairs is not None and flip.any():
        x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
        fb = body[flip]
        fb[..., 0] = np.where(fb[..., 2] > 0, SIZE - 1 - fb[..., 0], 0)
        for a, c in flip_pairs:
            fb[:, [a, c]] = fb[:, [c, a]]
        body[flip] = fb
    return x.clamp(-1, 1), body


def probe_accuracy(detect, frames: np.ndarray, points: np.ndarray, kind: str = "body") -> dict[str, float]:
    """PCK@0.05 / 0.1 and mean error of ``detect`` on ``frames`` against the true ``points``
    ``(T, K, 3)``, normalised per frame by the diagonal of the box around the visible true points
    (for the body, the body size of :func:`~animate_anyone.evaluation.pose_metrics.pose_fidelity`)."""
    from ..evaluation.pose_metrics import body_size

    pred = np.concatenate([getattr(detect(frames[i : i + 64]), kind) for i in range(0, len(frames), 64)])
    size = body_size(points)
    visible = (points[..., 2] >= 0.3) & np.isfinite(size)[:, None]
    found = pred[..., 2] >= 0.3
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.linalg.norm(pred[..., :2] - points[..., :2], axis=-1) / size[:, None]
    n = max(int(visible.sum()), 1)
    out = {f"pck@{a:g}": float((visible & found & (norm <= a)).sum() / n) for a in (0.05, 0.1)}
    out["mean_error_norm"] = float(norm[visible & found].mean()) if (visible & found).any() else math.nan
    if kind == "body":  # PCK@0.1 by which way the true figure faces, with the number of frames
        hit = visible & found & (norm <= 0.1)
        facing = body_facing(points)
        for name in ("front", "side", "back"):
            sel = facing == name
            out[f"pck@0.1_{name}"] = float(hit[sel].sum() / max(int(visible[sel].sum()), 1)) if sel.any() else math.nan
            out[f"frames_{name}"] = int(sel.sum())
    return out


def away_accuracy(detect, num_characters: int = 40, seed: int = 3, frames_per_clip: int = 6) -> dict:
    """PCK@0.1 of ``detect`` on held-out characters walking away (:func:`away_walk`): over all
    frames and by character category (the categories' frame counts beside them)."""
    from .character import sample_character
    from .split import character_ids

    images, bodies = _sample_frames("heldout", num_characters, 1, frames_per_clip, seed, away=True)
    category = np.repeat([sample_character(c).category for c in character_ids("heldout", num_characters)], frames_per_clip)
    out = {"frames": len(images), "pck@0.1": probe_accuracy(detect, images, bodies)["pck@0.1"]}
    for name in ("human", "cartoon", "robot"):
        sel = category == name
        out[f"pck@0.1_{name}"] = probe_accuracy(detect, images[sel], bodies[sel])["pck@0.1"] if sel.any() else math.nan
        out[f"frames_{name}"] = int(sel.sum())
    return out


def fit(model: nn.Module, batch_loss, steps: int, lr: float, log, t0: float) -> None:
    """AdamW with a linear warm-up and a cosine decay over ``steps`` calls of ``batch_loss()``
    (a fresh augmented batch each), logging every 250 steps; leaves ``model`` in eval mode."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, min(100, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    for step in range(1, steps + 1):
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps:
            log(f"step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()


def train_probe(output: str | Path, kind: str = "body", steps: int = 3000, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
                num_characters: int = 240, clips: int = 2, frames_per_clip: int = 8, val_characters: int = 40,
                turn_clips: int = 0, away_clips: int = 0, log=print) -> dict:  # fmt: skip
    """Train a ``kind`` probe on train-split lab frames and write its safetensors and JSON (config,
    command, accuracy on held-out characters and motions) to ``output``. ``turn_clips``: that many
    more clips per character of turning motions (side and back views), from other train-split
    characters; ``away_clips``: that many more of walks seen from behind (where nothing but the
    head tells a back view from a faceless front one), from others again. The body kind is also
    checked on held-out turning clips, by facing, and on held-out walks seen from behind, by
    character category."""
    if away_clips and kind != "body":
        raise ValueError("away_clips is for the body probe (a talking-head portrait does not walk)")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    file_name, num_points, _, _, flip_pairs = KINDS[kind]
    images, bodies = _sample_frames("train", num_characters, clips, frames_per_clip, seed, kind)
    if turn_clips:
        more = _sample_frames("train", num_characters, turn_clips, frames_per_clip, seed + 7, kind, ("turn",))
        images, bodies = np.concatenate([images, more[0]]), np.concatenate([bodies, more[1]])
    if away_clips:
        more = _sample_frames("train", num_characters, away_clips, frames_per_clip, seed + 11, kind, away=True)
        images, bodies = np.concatenate([images, more[0]]), np.concatenate([bodies, more[1]])
    val_images, val_bodies = _sample_frames("heldout", val_characters, 1, 6, seed + 1, kind)
    log(f"{len(images)} training frames, {len(val_images)} held-out frames ({time.perf_counter() - t0:.0f} s)")
    model = PoseProbe(num_points=num_points)
    gen = torch.Generator().manual_seed(seed)
    data = _to_input(images)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        x, body = augment(data[idx].clone(), bodies[idx.numpy()], gen, flip_pairs)
        return F.mse_loss(model(x), torch.from_numpy(target_heatmaps(body))) * 100

    fit(model, batch_loss, steps, lr, log, t0)
    cfg_file = save_network(model, output, file_name)
    detect = probe_detector(output, kind)
    blurred = _gaussian_blur(_to_input(val_images), torch.full((len(val_images),), 1.5))
    blurred_u8 = ((blurred.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    info = {
        "config": model.config,
        "kind": kind,
        "command": f"python -m animate_anyone.lab.pose_probe --kind {kind} --output {output} --steps {steps} "
                   f"--seed {seed} --characters {num_characters}" + (f" --turn-clips {turn_clips}" if turn_clips else "")
                   + (f" --away-clips {away_clips}" if away_clips else ""),
        "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "frames": len(images),
                     "characters": num_characters, "turn_clips": turn_clips, "away_clips": away_clips,
                     "seconds": round(time.perf_counter() - t0)},  # fmt: skip
        "heldout": {"frames": len(val_images), "sharp": probe_accuracy(detect, val_images, val_bodies, kind),
                    "blurred_sigma_1.5": probe_accuracy(detect, blurred_u8, val_bodies, kind)},  # fmt: skip
    }
    if kind == "body":
        turn_images, turn_bodies = _sample_frames("heldout", val_characters, 1, 6, seed + 2, kind, ("turn",))
        info["heldout_turning"] = {"frames": len(turn_images), "sharp": probe_accuracy(detect, turn_images, turn_bodies)}
        info["heldout_walking_away"] = away_accuracy(detect, val_characters, seed + 3)
    write_json(cfg_file, info)
    log(json.dumps(info["heldout"]))
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="train a lab keypoint probe (see the module docstring)")
    p.add_argument("--kind", choices=sorted(KINDS), default="body")
    p.add_argument("--output", required=True, help="folder for pose_probe.safetensors / pose_probe.json")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--characters", type=int, default=240, help="train-split characters to draw frames from")
    p.add_argument("--turn-clips", type=int, default=0,
                   help="more clips per character of turning motions (side and back views)")
    p.add_argument("--away-clips", type=int, default=0,
                   help="more clips per character of walks seen from behind (body kind)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.characters < 1 or args.turn_clips < 0 or args.away_clips < 0:
        print("error: --steps and --characters must be at least 1, --turn-clips and --away-clips at least 0",
              file=sys.stderr)
        return 2
    if args.away_clips and args.kind != "body":
        print("error: --away-clips is for the body probe (a talking-head portrait does not walk)", file=sys.stderr)
        return 2
    train_probe(args.output, kind=args.kind, steps=args.steps, seed=args.seed, num_characters=args.characters,
                turn_clips=args.turn_clips, away_clips=args.away_clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
