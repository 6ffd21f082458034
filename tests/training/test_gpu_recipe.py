"""scripts/train_lab_gpu.sh (the one-sitting GPU recipe for the lab demo model) and its preset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from animate_anyone.models.presets import get_preset

ROOT = Path(__file__).resolve().parents[2]


def test_lab_f4_preset_keeps_the_lab_networks_on_a_finer_latent():
    from diffusers import AutoencoderKL

    lab, f4 = get_preset("lab"), get_preset("lab-f4")
    same = {k: v for k, v in f4.unet.items() if k not in ("in_channels", "out_channels")}
    assert same == {k: v for k, v in lab.unet.items() if k not in ("in_channels", "out_channels")}
    vae = AutoencoderKL(**f4.vae)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert vae.encode(x).latent_dist.mean.shape == (1, f4.unet["in_channels"], 16, 16)
    # what the recipe exports fits the 20 MB shipping limit in fp16
    from animate_anyone.pipelines import AnimateAnyonePipeline

    pipe = AnimateAnyonePipeline.from_config(f4)
    n = sum(p.numel() for m in (pipe.model, pipe.vae, pipe.image_encoder) for p in m.parameters())
    assert 2 * n < 20e6


def _recipe(out: Path, runs: Path, minutes: str, **env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAB_PARTS="2", LAB_CHARACTERS="1", RUNS=str(runs), MIXED_PRECISION="no", BATCH="8",
               PYTHON=sys.executable, OMP_NUM_THREADS="1", **env)
    return subprocess.run(["bash", str(ROOT / "scripts" / "train_lab_gpu.sh"), str(out), minutes],
                          env=env, capture_output=True, text=True, timeout=1500)


def _unpack(out: Path, dest: Path) -> Path:
    parts = sorted(out.glob("model.tar.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    dest.mkdir()
    with open(dest / "model.tar", "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    subprocess.run(["tar", "-xf", "model.tar"], cwd=dest, check=True)
    return dest / "model"


def test_gpu_recipe_refuses_a_continuation_folder_that_is_no_model_before_any_work(tmp_path):
    (tmp_path / "not_a_model").mkdir()
    res = _recipe(tmp_path / "out", tmp_path / "runs", "1", INIT_MODEL=str(tmp_path / "not_a_model"))
    assert res.returncode == 2
    assert "INIT_MODEL" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_gpu_recipe_runs_end_to_end_at_toy_size_and_continues(tmp_path):
    """The whole recipe on the CPU with two tiny data parts and a budget of one step per stage:
    data, four stages, export; the archive parts unpack into a loadable model of that preset.
    Then a second call continues that model (INIT_MODEL): stages 1 and 2 only, its autoencoder kept."""
    from safetensors.torch import load_file

    from animate_anyone.weights.layouts import load_pipeline, recommended_settings

    runs = tmp_path / "runs"
    res = _recipe(tmp_path / "out", runs, "0.001")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = tmp_path / "out"
    assert {p.name for p in out.glob("*.csv")} == {f"lab_gpu_{s}.csv" for s in ("vae", "vae_decoder", "stage1", "stage2", "refiner")}
    first = _unpack(out, tmp_path / "unpacked")
    pipe = load_pipeline(first)
    assert list(pipe.vae.config.block_out_channels) == get_preset("lab-f4").vae["block_out_channels"]
    assert pipe.vae_factor == 4
    assert (first / "training_stage1.json").is_file() and (first / "training_refiner.json").is_file()
    assert pipe.model.config.reference_refiner_channels == 32 and pipe.model.refiner is not None
    for f in sorted((runs / "vae_decoder" / "final" / "vae").glob("*.safetensors")):  # the tuned decoder ships
        a, b = load_file(f), load_file(first / "vae" / f.name)
        assert all(torch.equal(a[k].to(b[k].dtype), b[k]) for k in a)
    # its recommended inference settings travel with it (lab size, guidance off)
    assert recommended_settings(first) == {**recommended_settings(first), "size": 128, "guidance": 1.0, "context_frames": 8}

    res = _recipe(tmp_path / "out2", runs, "0.001", INIT_MODEL=str(first))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "continuing" in (tmp_path / "out2" / "train.log").read_text()
    assert {p.name for p in (tmp_path / "out2").glob("*.csv")} == {"lab_gpu_stage1.csv", "lab_gpu_stage2.csv",
                                                                  "lab_gpu_refiner.csv"}
    second = _unpack(tmp_path / "out2", tmp_path / "unpacked2")
    load_pipeline(second)
    names = {p.name for p in second.glob("*.json")}
    assert {"training_stage1.json", "training_stage2.json", "previous_training_vae.json"} <= names
    assert "training_vae.json" not in names
    assert recommended_settings(second)["size"] == 128
    assert f"INIT_MODEL={first}" in json.loads((second / "demo.json").read_text())["provenance"]["commands"][0]
    vae_files = sorted((first / "vae").glob("*.safetensors"))
    assert vae_files
    for f in vae_files:  # the autoencoder (with its noise-tolerant decoder) is carried over unchanged
        a, b = load_file(f), load_file(second / "vae" / f.name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    unet_a = load_file(next((first / "denoising_unet").glob("*.safetensors")))
    unet_b = load_file(next((second / "denoising_unet").glob("*.safetensors")))
    assert any(not torch.equal(unet_a[k], unet_b[k]) for k in unet_a)  # and the denoiser trained on
    ref_a = load_file(first / "reference_refiner" / "model.safetensors")
    ref_b = load_file(second / "reference_refiner" / "model.safetensors")
    assert ref_a.keys() == ref_b.keys() and any(not torch.equal(ref_a[k], ref_b[k]) for k in ref_a)  # continued
