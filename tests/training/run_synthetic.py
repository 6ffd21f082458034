"""Run the trainer on the synthetic dataset (used by the subprocess tests: SIGKILL/resume and
multi-process). Usage: python run_synthetic.py OUT_DIR STAGE MAX_STEPS [--resume]"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import MovingSquares  # noqa: E402

from animate_anyone.training import config_from_dict  # noqa: E402
from animate_anyone.training.trainer import Trainer  # noqa: E402

out, stage, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = config_from_dict({
    "stage": stage, "output_dir": out, "max_steps": steps, "batch_size": 2, "checkpoint_every": 2,
    "keep_checkpoints": 10, "seed": 7, "validate_every": -1, "log_every": 1,
    "data": {"width": 64, "height": 64, "num_frames": 3},
    "optim": {"lr": 1e-3, "ema_decay": 0.9},
    "noise": {"uncond_ratio": 0.3},
})  # fmt: skip
Trainer(cfg, dataset=MovingSquares(frames=3 if stage == "video" else 1), cpu=True).train(resume="--resume" in sys.argv)
