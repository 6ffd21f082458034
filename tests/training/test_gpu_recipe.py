"""scripts/train_lab_gpu.sh (the one-sitting GPU recipe for the lab demo model) and its preset."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from animate_anyone.models.presets import get_preset

ROOT = Path(__file__).resolve().parents[2]


def test_lab_large_vae_preset_keeps_the_lab_latent_shape():
    from diffusers import AutoencoderKL

    lab, large = get_preset("lab"), get_preset("lab-large-vae")
    assert large.unet == lab.unet and large.pose_guider_block_out_channels == lab.pose_guider_block_out_channels
    small_vae, large_vae = AutoencoderKL(**lab.vae), AutoencoderKL(**large.vae)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert large_vae.encode(x).latent_dist.mean.shape == small_vae.encode(x).latent_dist.mean.shape == (1, 16, 8, 8)
    n_small = sum(p.numel() for p in small_vae.parameters())
    n_large = sum(p.numel() for p in large_vae.parameters())
    assert n_large > 4 * n_small and 2 * n_large < 4e6  # fp16: well under the 20 MB shipping limit


@pytest.mark.slow
def test_gpu_recipe_runs_end_to_end_at_toy_size(tmp_path):
    """The whole recipe on the CPU with two tiny data parts and a budget of one step per stage:
    data, four stages, export; the archive parts unpack into a loadable model of that preset."""
    env = dict(os.environ, LAB_PARTS="2", LAB_CHARACTERS="1", RUNS=str(tmp_path / "runs"), MIXED_PRECISION="no",
               PYTHON=sys.executable, OMP_NUM_THREADS="1")
    res = subprocess.run(["bash", str(ROOT / "scripts" / "train_lab_gpu.sh"), str(tmp_path / "out"), "0.001"],
                         env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = tmp_path / "out"
    parts = sorted(out.glob("model.tar.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    assert {p.name for p in out.glob("*.csv")} == {f"lab_gpu_{s}.csv" for s in ("vae", "vae_decoder", "stage1", "stage2")}
    unpack = tmp_path / "unpacked"
    unpack.mkdir()
    with open(unpack / "model.tar", "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    subprocess.run(["tar", "-xf", "model.tar"], cwd=unpack, check=True)
    from animate_anyone.weights.layouts import load_pipeline

    pipe = load_pipeline(unpack / "model")
    assert list(pipe.vae.config.block_out_channels) == get_preset("lab-large-vae").vae["block_out_channels"]
    assert (unpack / "model" / "training_stage1.json").is_file()
