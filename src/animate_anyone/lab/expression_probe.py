"""How open are the eyes and the mouth? A reader of lab talking heads, trained on the lab's exact states.

The face-reenactment benchmark asks whether a generated portrait blinks and speaks with its
driver. Reading that through landmarks (the lab face probe) is too coarse for the eyes: a lab
eye at 128×128 is a few pixels tall, so the eyelid gap read from the probe's points is off by about
as much as a blink moves it, and its error on the true frames is as large as on a copied, never
blinking face. This probe reads the two *states* the lab animates instead: ``eye_open`` (0 closed …
1 open, both eyes share it) and ``mouth_open`` (0 closed … 1 wide open), exactly as
:func:`animate_anyone.lab.motion.motion_state` drives the drawing.

* ``ExpressionProbe``: ``[B, 3, 128, 128]`` in [-1, 1] -> ``[B, 2]`` states. The body of the lab
  keypoint probe (stride-4 stem, dilated residual blocks), then per state a value map and an
  attention map: the state is the attention-weighted mean of the values, so the network learns
  *where* to look (the eyes move with the head) as well as what it sees there.
* :func:`expression_reader`: uint8 frames of any size -> ``[T, 2]`` states.
* :func:`state_errors`: mean absolute error of read states against true ones, in percentage
  points of the full 0–1 range.
* :func:`train_expression_probe` makes the shipped weights (train-split characters, talk motions,
  blur/noise/colour/resampling augmentation so that soft generated frames are read as fairly as
  sharp ones; held-out error in the JSON)::

      python -m animate_anyone.lab.expression_probe --output src/animate_anyone/lab/probe_weights
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

from .pose_probe import (
    SIZE,
    WEIGHTS_DIR,
    _Block,
    _gaussian_blur,
    _to_input,
    augment,
    fit,
    load_network,
    save_network,
    write_json,
)

__all__ = ["STATES", "WEIGHTS_DIR", "WEIGHTS_FILE", "ExpressionProbe", "clip_states", "expression_reader",
           "load_expression_probe", "state_errors", "train_expression_probe"]

STATES = ("eye_open", "mouth_open")
WEIGHTS_FILE = "expression_probe.safetensors"


class ExpressionProbe(nn.Module):
    def __init__(self, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)):
        super().__init__()
        self.config = {"width": width, "dilations": list(dilations)}
        self.stem = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
        )  # fmt: skip
        self.blocks = nn.Sequential(*[_Block(width, d) for d in dilations])
        self.head = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, 2 * len(STATES), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.blocks(self.stem(x))).flatten(2)  # (B, 2 * states, cells)
        value, attention = h.chunk(2, dim=1)
        return (torch.sigmoid(value) * attention.softmax(-1)).sum(-1)


def load_expression_probe(weights: str | Path | None = None) -> ExpressionProbe:
    """The probe in ``weights`` (a folder holding :data:`WEIGHTS_FILE`, or the file); default: the shipped one."""
    return load_network(ExpressionProbe, weights, WEIGHTS_FILE, "lab expression probe",
                        "animate_anyone.lab.expression_probe")  # fmt: skip


def expression_reader(weights: str | Path | None = None, batch: int = 32):
    """``uint8 [T, H, W, 3]`` portraits -> ``[T, 2]`` (eye_open, mouth_open) as read by the probe."""
    model = load_expression_probe(weights)

    @torch.inference_mode()
    def read(frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, len(STATES)), np.float32)
        return np.concatenate([model(_to_input(frames[i : i + batch])).numpy() for i in range(0, len(frames), batch)])

    return read


def state_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean absolute error of ``pred`` against ``true`` (both ``[T, 2]``, eye_open and mouth_open in
    [0, 1]), in percentage points of the full range: ``eyes_state_err`` and ``mouth_state_err``."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != len(STATES):
        raise ValueError(f"expected two [T, {len(STATES)}] arrays, got {pred.shape} and {true.shape}")
    err = 100 * np.abs(pred - true).mean(0) if len(true) else np.full(len(STATES), math.nan)
    return {"eyes_state_err": float(err[0]), "mouth_state_err": float(err[1])}


def clip_states(clip, frames: slice | np.ndarray | None = None, start_time: float = 0.0) -> np.ndarray:
    """The exact ``[T, 2]`` (eye_open, mouth_open) of a :class:`~animate_anyone.lab.generate.LabClip`
    rendered from ``start_time`` (the value given to :func:`generate_clip`), optionally of some frames."""
    from .motion import motion_state

    state = motion_state(clip.motion, start_time + np.arange(len(clip.frames)) / clip.fps)
    out = np.stack([np.clip(state.eye_open, 0, 1), np.clip(state.mouth_open, 0, 1)], 1).astype(np.float32)
    return out if frames is None else out[frames]


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _sample_portraits(split: str, num_characters: int, clips: int, frames_per_clip: int, seed: int):
    """Talking-head frames and their exact states: ``frames_per_clip`` frames of each of ``clips``
    talk clips per character, drawn with extra weight on blinking and speaking frames (blinks
    close the eyes in roughly one frame in ten)."""
    from .generate import generate_clip
    from .split import character_ids, clip_motion

    rng = np.random.default_rng(seed)
    images, states = [], []
    for cid in character_ids(split, num_characters, start=seed * 10_000 if split == "train" else 0):
        for k in range(clips):
            start = float(rng.uniform(0, 4))
            clip = generate_clip(cid, clip_motion(cid, k, split, ("talk",)), num_frames=frames_per_clip * 6, width=SIZE,
                                 height=SIZE, view_seed=k, start_time=start, framing="face")  # fmt: skip
            s = clip_states(clip, start_time=start)
            w = 1.0 + 4.0 * (1.0 - s[:, 0]) + 1.0 * s[:, 1]
            pick = np.sort(rng.choice(len(clip.frames), frames_per_clip, replace=False, p=w / w.sum()))
            images.append(clip.frames[pick])
            states.append(s[pick])
    return np.concatenate(images), np.concatenate(states).astype(np.float32)


def train_expression_probe(output: str | Path, steps: int = 2000, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                           num_characters: int = 300, clips: int = 2, frames_per_clip: int = 8, val_characters: int = 40,
                           log=print) -> dict:  # fmt: skip
    """Train the probe on train-split lab portraits; write its safetensors and JSON (config, command,
    error on held-out characters and motions, sharp and blurred) to ``output``."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    images, states = _sample_portraits("train", num_characters, clips, frames_per_clip, seed)
    val_images, val_states = _sample_portraits("heldout", val_characters, 1, 6, seed + 1)
    log(f"{len(images)} training frames, {len(val_images)} held-out frames ({time.perf_counter() - t0:.0f} s)")
    model = ExpressionProbe()
    gen = torch.Generator().manual_seed(seed)
    data, target = _to_input(images), torch.from_numpy(states)
    no_points = np.zeros((batch_size, 1, 3), np.float32)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        x, _ = augment(data[idx].clone(), no_points, gen, flip_pairs=())  # mirroring keeps both states
        return F.smooth_l1_loss(model(x), target[idx], beta=0.05)

    fit(model, batch_loss, steps, lr, log, t0)
    cfg_file = save_network(model, output, WEIGHTS_FILE)
    read = expression_reader(output)
    blurred = _gaussian_blur(_to_input(val_images), torch.full((len(val_images),), 1.5))
    blurred_u8 = ((blurred.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    always_open = np.tile(np.array([[1.0, 0.0]], np.float32), (len(val_states), 1))
    info = {
        "config": model.config,
        "states": list(STATES),
        "command": f"python -m animate_anyone.lab.expression_probe --output {output} --steps {steps} "
                   f"--seed {seed} --characters {num_characters}",
        "training": {"steps": steps, "batch_size": batch_size, "lr": lr, "frames": len(images),
                     "characters": num_characters, "seconds": round(time.perf_counter() - t0)},  # fmt: skip
        "heldout": {"frames": len(val_images), "sharp": state_errors(read(val_images), val_states),
                    "blurred_sigma_1.5": state_errors(read(blurred_u8), val_states),
                    "constant_open_eyes_closed_mouth": state_errors(always_open, val_states)},  # fmt: skip
    }
    write_json(cfg_file, info)
    log(json.dumps(info["heldout"]))
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="train the lab expression probe (see the module docstring)")
    p.add_argument("--output", required=True, help="folder for expression_probe.safetensors / .json")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--characters", type=int, default=300, help="train-split characters to draw frames from")
    args = p.parse_args(argv)
    if args.steps < 1 or args.characters < 1:
        print("error: --steps and --characters must be at least 1", file=sys.stderr)
        return 2
    train_expression_probe(args.output, steps=args.steps, seed=args.seed, num_characters=args.characters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
