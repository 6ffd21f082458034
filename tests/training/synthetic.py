"""A tiny in-memory dataset for trainer tests: a coloured square moving on a grey background,
with its 'pose' map (a white square at the same place)."""

from __future__ import annotations

import numpy as np
import torch


class MovingSquares:
    def __init__(self, n: int = 6, size: int = 64, frames: int = 1, bad: tuple[int, ...] = (), face: bool = False):
        self.n, self.size, self.frames, self.bad, self.face = n, size, frames, set(bad), face

    def __len__(self) -> int:
        return self.n

    def _frame(self, colour, pos):
        s = self.size
        img = torch.full((3, s, s), -0.2)
        pose = torch.zeros(3, s, s)
        y, x = pos
        img[:, y : y + s // 4, x : x + s // 4] = colour.view(3, 1, 1)
        pose[:, y : y + s // 4, x : x + s // 4] = 1.0
        return img, pose

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index in self.bad:
            raise ValueError(f"sample {index}: unreadable video")
        colour = torch.tensor(np.random.default_rng(index).uniform(-1, 1, 3), dtype=torch.float32)
        span = self.size - self.size // 4
        start = int(torch.randint(0, span, (1,)))  # global RNG: seeded by the trainer per sample
        frames = [self._frame(colour, ((start + 3 * t) % span, (2 * start + t) % span)) for t in range(self.frames)]
        ref, _ = self._frame(colour, (span // 2, span // 2))
        pixels = torch.stack([f[0] for f in frames], 1)  # (3, f, s, s)
        poses = torch.stack([f[1] for f in frames], 1)
        if self.frames == 1:
            pixels, poses = pixels[:, 0], poses[:, 0]
        clip = torch.nn.functional.interpolate(ref[None], size=(32, 32), mode="bilinear")[0]
        item = {"pixels": pixels, "poses": poses, "ref_pixels": ref, "ref_clip": clip}
        if self.face:  # face reenactment: a second map stream (the 'mouth': the square's lower half)
            mouth = poses.clone()
            mouth[..., : self.size // 2, :] = 0
            item["poses2"] = mouth
        return item
