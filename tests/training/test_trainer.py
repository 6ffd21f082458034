"""Training loop: strict configs, what each stage trains, exact resume after SIGKILL, 2 processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from animate_anyone.errors import ConfigError, InputError, WeightsError
from animate_anyone.training import config_from_dict, load_config
from animate_anyone.training.trainer import (
    Trainer,
    list_checkpoints,
    min_snr_weights,
    pose_loss_weights,
    pupil_loss_weights,
)

from .synthetic import MovingSquares

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "run_synthetic.py"


def _cfg(tmp_path, **over):
    base = {"stage": "image", "output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 2,
            "validate_every": -1, "data": {"width": 64, "height": 64, "num_frames": 3},
            "log_every": 1, "optim": {"lr": 1e-3}}  # fmt: skip
    base.update(over)
    return config_from_dict(base)


# ---- configs --------------------------------------------------------------------------------


def test_strict_config_rejects_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'max_step'"):
        config_from_dict({"max_step": 3})
    with pytest.raises(ConfigError, match="optim: unknown key 'learning_rate'"):
        config_from_dict({"optim": {"learning_rate": 1e-4}})
    with pytest.raises(ConfigError, match="batch_size: expected int"):
        config_from_dict({"batch_size": "four"})
    with pytest.raises(ConfigError, match="stage must be"):
        config_from_dict({"stage": "three"})
    with pytest.raises(ConfigError, match="multiples of 8"):
        config_from_dict({"data": {"width": 100}})
    with pytest.raises(ConfigError, match="expected a list of 2"):
        config_from_dict({"optim": {"betas": [0.9]}})
    with pytest.raises(ConfigError, match="vae stage only"):
        config_from_dict({"stage": "image", "model": {"vae_decoder_only": True}})
    with pytest.raises(ConfigError, match="non-negative"):
        config_from_dict({"stage": "vae", "model": {"vae_latent_noise": -0.5}})
    with pytest.raises(ConfigError, match="vae and refiner stages only"):
        config_from_dict({"stage": "image", "model": {"vae_latent_noise": 0.5}})
    with pytest.raises(ConfigError, match="refiner_channels must be at least 1"):
        config_from_dict({"stage": "refiner", "model": {"refiner_channels": 0}})
    with pytest.raises(ConfigError, match="needs model.reenact"):
        config_from_dict({"noise": {"eye_loss_weight": 4.0}})
    with pytest.raises(ConfigError, match="eye_loss_weight must be non-negative"):
        config_from_dict({"model": {"reenact": True}, "noise": {"eye_loss_weight": -1.0}})
    with pytest.raises(ConfigError, match="pose_loss_weight must be non-negative"):
        config_from_dict({"noise": {"pose_loss_weight": -1.0}})
    for bad in ({"model": {"reenact": True}}, {"stage": "vae"}):
        with pytest.raises(ConfigError, match="pose_loss_weight applies to the body model"):
            config_from_dict({**bad, "noise": {"pose_loss_weight": 2.0}})
    assert config_from_dict({"stage": "video", "noise": {"pose_loss_weight": 2.0}}).noise.pose_loss_weight == 2.0


def test_yaml_config_overrides_and_relative_paths(tmp_path):
    (tmp_path / "c.yaml").write_text("stage: video\ndata:\n  meta: data/meta.json\n  num_frames: 8\n")
    cfg = load_config(tmp_path / "c.yaml", ["max_steps=5", "data.width=256", "noise.snr_gamma=null",
                                            "mixed_precision=no", "data.oversample.motion.turn=4"])  # YAML 1.1 reads a bare no as false
    assert cfg.stage == "video" and cfg.max_steps == 5 and cfg.data.width == 256 and cfg.mixed_precision == "no"
    assert cfg.data.oversample == {"motion": {"turn": 4.0}}
    assert cfg.noise.snr_gamma is None
    assert cfg.data.meta == [str(tmp_path / "data" / "meta.json")]
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("stage: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_min_snr_weights():
    a = torch.tensor([0.0, 0.5, 0.99])  # alphas_cumprod at three timesteps
    w = min_snr_weights(a, torch.arange(3), gamma=5.0, v_prediction=True)
    snr = a / (1 - a)
    torch.testing.assert_close(w, torch.clamp(snr + 1, max=5) / (snr + 1))
    assert w[0] == 1 and w[2] < 0.06


# ---- what each stage trains -------------------------------------------------------------------


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_image_stage_trains_the_right_parameters(tmp_path):
    tr = Trainer(_cfg(tmp_path, noise={"uncond_ratio": 0.0}, validate_every=2, validation_steps=2),
                 dataset=MovingSquares(), cpu=True)
    before = _snapshot(tr.pipe.model)
    vae_before = _snapshot(tr.pipe.vae)
    out = tr.train()
    after = tr.pipe.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("denoising_unet.down_blocks.0.attentions") for k in changed)
    assert any(k.startswith("reference_unet.down_blocks.0.attentions") for k in changed)
    assert any(k.startswith("pose_guider.") for k in changed)
    assert not any(".motion_modules." in k for k in changed)
    assert not any(k.startswith("reference_unet.up_blocks.3.") for k in changed)
    assert all(torch.equal(vae_before[k], v) for k, v in tr.pipe.vae.state_dict().items())
    # the export is a loadable native weights folder with the trained values
    from animate_anyone.weights.layouts import load_pipeline

    pipe = load_pipeline(out)
    key = next(k for k in sorted(changed) if k.startswith("pose_guider."))
    torch.testing.assert_close(pipe.model.state_dict()[key], after[key])
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3
    assert (tmp_path / "run" / "validation" / "step-0000002.png").is_file()  # single-frame validation video


def test_video_stage_trains_only_motion_modules(tmp_path):
    cfg = _cfg(tmp_path, stage="video", model={"reset_motion_modules": True})
    tr = Trainer(cfg, dataset=MovingSquares(frames=3), cpu=True)
    proj = [m.proj_out.weight for n, m in tr.pipe.model.denoising_unet.named_modules() if n.endswith("motion_modules.0")]
    assert proj and all(torch.count_nonzero(p) == 0 for p in proj)  # starts as the image model
    before = _snapshot(tr.pipe.model)
    tr.train()
    after = tr.pipe.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".motion_modules." in k for k in changed)


def test_exports_recommend_their_training_frame_size_and_clip_length(tmp_path):
    """An exported model's demo.json recommends the frame size it was trained at (and, after a
    video stage, context windows of its clip length), keeping the starting model's other settings;
    a malformed demo.json in model.init_from stops the run before any training."""
    from animate_anyone.weights.layouts import recommended_settings

    first = Trainer(_cfg(tmp_path, max_steps=1, data={"width": 64, "height": 48}), dataset=MovingSquares(),
                    cpu=True).train()
    assert recommended_settings(first) == {"width": 64, "height": 48}
    data = json.loads((first / "demo.json").read_text())
    data["settings"].update(guidance=1.0, steps=12)  # e.g. written by hand after trying guidance scales
    (first / "demo.json").write_text(json.dumps(data))
    cfg = _cfg(tmp_path, stage="video", max_steps=1, output_dir=str(tmp_path / "video"),
               model={"init_from": str(first)}, data={"width": 64, "height": 64, "num_frames": 8})
    second = Trainer(cfg, dataset=MovingSquares(frames=3), cpu=True).train()
    assert recommended_settings(second) == {"size": 64, "guidance": 1.0, "steps": 12, "context_frames": 8,
                                            "context_overlap": 2}
    (first / "demo.json").write_text('{"settings": {"guidance_scale": 1.0}}')
    with pytest.raises(WeightsError, match="unknown setting"):
        Trainer(cfg, dataset=MovingSquares(frames=3), cpu=True)


def test_vae_stage_calibrates_the_latent_scale_and_stage1_adopts_it(tmp_path):
    """The lab autoencoder's scaling_factor is 1/std of its latents (not SD's 0.18215), and an
    image stage started from it trains and samples on its 16-channel latents with that scale."""
    from animate_anyone.weights.layouts import load_pipeline

    cfg = _cfg(tmp_path, stage="vae", model={"preset": "lab"}, data={"width": 64, "height": 64, "vae_crop": 32})
    tr = Trainer(cfg, dataset=MovingSquares(), cpu=True)
    out = tr.train()
    vae = tr.pipe.vae.eval()
    with torch.no_grad():  # the same 16 batches, measured independently: the spread of sampled
        dists = [vae.encode(tr._batch(i, 0)["pixels"]).latent_dist for i in range(16)]  # latents =
    mean, var = torch.cat([d.mean.flatten() for d in dists]), torch.cat([d.var.flatten() for d in dists])
    expected = 1 / (mean.var() + var.mean()).sqrt().item()  # spread of the means + posterior variance
    scale = vae.config.scaling_factor
    assert mean.numel() == 16 * 2 * 16 * 8 * 8  # 16 batches of 2, 16 channels, 64/8 squared
    assert abs(scale - 0.18215) > 0.1
    assert scale == pytest.approx(expected, rel=0.02)
    assert load_pipeline(out).model.config.vae_scaling_factor == pytest.approx(scale)

    cfg1 = _cfg(tmp_path, output_dir=str(tmp_path / "s1"), model={"preset": "lab", "init_vae_from": str(out / "vae")})
    tr1 = Trainer(cfg1, dataset=MovingSquares(), cpu=True)
    assert tr1.pipe.model.config.vae_scaling_factor == pytest.approx(scale)
    assert tr1._encode(MovingSquares()[0]["pixels"][None]).shape == (1, 16, 1, 8, 8)
    pipe = load_pipeline(tr1.train())
    ref = (MovingSquares()[0]["ref_pixels"].permute(1, 2, 0) + 1) * 127.5
    poses = [(MovingSquares()[1]["poses"].permute(1, 2, 0) * 255).byte().numpy()] * 2
    from PIL import Image

    video = pipe(Image.fromarray(ref.byte().numpy()), poses, width=64, height=64, num_inference_steps=1, progress=False).frames
    assert video.shape == (2, 64, 64, 3) and np.isfinite(video).all()


def test_vae_decoder_only_keeps_the_latent_space(tmp_path):
    """``vae_decoder_only`` + ``vae_latent_noise``: only the decoder side moves, the scale is kept,
    so the result can replace ``vae/`` of a model trained on the original latents."""
    from diffusers import AutoencoderKL

    cfg = _cfg(tmp_path, stage="vae", model={"preset": "lab"}, data={"width": 64, "height": 64, "vae_crop": 32})
    first = Trainer(cfg, dataset=MovingSquares(), cpu=True).train()
    before = AutoencoderKL.from_pretrained(first / "vae").state_dict()
    cfg2 = _cfg(tmp_path, stage="vae", output_dir=str(tmp_path / "dec"), max_steps=3,
                model={"preset": "lab", "init_vae_from": str(first / "vae"), "vae_decoder_only": True,
                       "vae_latent_noise": 1.0},
                data={"width": 64, "height": 64, "vae_crop": 32})  # fmt: skip
    tr = Trainer(cfg2, dataset=MovingSquares(), cpu=True)
    assert tr.params and all(k.startswith(("decoder.", "post_quant_conv.")) for k in tr.params)
    after_vae = AutoencoderKL.from_pretrained(tr.train() / "vae")
    after = after_vae.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed)
    assert after_vae.config.scaling_factor == pytest.approx(AutoencoderKL.load_config(first / "vae")["scaling_factor"])


def test_refiner_stage_adds_and_trains_only_the_refiner_and_exports_it(tmp_path):
    from animate_anyone.weights.layouts import load_pipeline

    first = Trainer(_cfg(tmp_path, max_steps=1), dataset=MovingSquares(), cpu=True).train()
    assert load_pipeline(first).model.refiner is None
    cfg = _cfg(tmp_path, stage="refiner", output_dir=str(tmp_path / "ref"), max_steps=3,
               model={"init_from": str(first), "refiner_channels": 8, "vae_latent_noise": 0.5})
    tr = Trainer(cfg, dataset=MovingSquares(), cpu=True)
    assert tr.params and all(k.startswith("reference_refiner.") for k in tr.params)
    before = _snapshot(tr.pipe.model)
    vae_before = _snapshot(tr.pipe.vae)
    out = tr.train()
    after = tr.pipe.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("reference_refiner.") for k in changed)
    assert all(torch.equal(v, tr.pipe.vae.state_dict()[k]) for k, v in vae_before.items())
    pipe = load_pipeline(out)
    assert pipe.model.config.reference_refiner_channels == 8
    for k, v in pipe.model.reference_refiner.state_dict().items():
        assert torch.equal(v, after[f"reference_refiner.{k}"])
    # a second refiner run continues the refiner it finds
    cfg2 = _cfg(tmp_path, stage="refiner", output_dir=str(tmp_path / "ref2"), max_steps=1,
                model={"init_from": str(out), "refiner_channels": 4})
    tr2 = Trainer(cfg2, dataset=MovingSquares(), cpu=True)
    assert tr2.pipe.model.config.reference_refiner_channels == 8
    assert torch.equal(tr2.pipe.model.reference_refiner.conv_out.weight, after["reference_refiner.conv_out.weight"])


def test_reenact_image_stage_trains_both_pose_guiders_and_exports(tmp_path):
    from animate_anyone.weights.layouts import check_weights, load_reenact_pipeline

    cfg = _cfg(tmp_path, model={"reenact": True}, noise={"uncond_ratio": 0.5}, max_steps=3, validate_every=3,
               validation_steps=1)
    tr = Trainer(cfg, dataset=MovingSquares(face=True), cpu=True)
    assert type(tr.pipe).__name__ == "ReenactPipeline"
    before = _snapshot(tr.pipe.model)
    calls = []
    real = tr.pipe.model.write_reference
    tr.pipe.model.write_reference = lambda lat, emb: (calls.append(lat.detach().clone()), real(lat, emb))[1]
    out = tr.train()
    after = tr.pipe.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("pose_guider.") for k in changed) and any(k.startswith("pose_guider2.") for k in changed)
    assert not any(".motion_modules." in k for k in changed)
    # every step ran the reference pass; unconditional steps on an all-zero latent (architecture §13)
    train_calls = calls[:3]  # then validation's
    assert any(bool((c == 0).all()) for c in train_calls) and any(bool(c.abs().sum() > 0) for c in train_calls)
    assert (tmp_path / "run" / "validation" / "step-0000003.png").is_file()
    report = check_weights(out)
    assert report.kind == "native-reenact" and report.usable, report.summary()
    back = load_reenact_pipeline(out).model.state_dict()
    key = next(k for k in sorted(changed) if k.startswith("pose_guider2."))
    torch.testing.assert_close(back[key], after[key])


def test_reenact_training_from_a_body_model(tmp_path):
    body = Trainer(_cfg(tmp_path, max_steps=1), dataset=MovingSquares(), cpu=True).train()
    cfg = _cfg(tmp_path, output_dir=str(tmp_path / "face"), model={"reenact": True, "init_from": str(body)}, max_steps=1)
    tr = Trainer(cfg, dataset=MovingSquares(face=True), cpu=True)
    assert torch.count_nonzero(tr.pipe.model.pose_guider2.conv_out.weight) == 0  # adds nothing at first
    from animate_anyone.weights.layouts import load_pipeline

    src = load_pipeline(body).model.pose_guider.state_dict()
    assert all(torch.equal(v, tr.pipe.model.pose_guider.state_dict()[k]) for k, v in src.items())


def test_warm_start_copies_what_fits_into_another_preset(tmp_path, capsys):
    """``warm_start_from`` builds the preset (here ``lab``: 16 latent channels) and copies every
    tensor of the given model (``tiny``: 4 channels) whose name and shape match; the UNets'
    ``conv_in`` and the denoiser's ``conv_out`` keep the preset's fresh values, as a run without the warm start has them."""
    from animate_anyone.weights.layouts import load_pipeline

    src_dir = Trainer(_cfg(tmp_path, max_steps=1), dataset=MovingSquares(), cpu=True).train()
    src = load_pipeline(src_dir)
    cold = Trainer(_cfg(tmp_path, output_dir=str(tmp_path / "cold"), model={"preset": "lab"}),
                   dataset=MovingSquares(), cpu=True)
    capsys.readouterr()
    cfg = _cfg(tmp_path, output_dir=str(tmp_path / "warm"), model={"preset": "lab", "warm_start_from": str(src_dir)})
    tr = Trainer(cfg, dataset=MovingSquares(), cpu=True)
    printed = capsys.readouterr().out
    theirs, ours, fresh = src.model.state_dict(), tr.pipe.model.state_dict(), cold.pipe.model.state_dict()
    same = [k for k in ours if k in theirs and theirs[k].shape == ours[k].shape]
    other = [k for k in ours if k not in same]
    assert {"reference_unet.conv_in.weight", "denoising_unet.conv_in.weight", "denoising_unet.conv_out.weight"} <= set(other)
    assert len(same) > 10 * len(other)
    assert all(torch.equal(ours[k], theirs[k]) for k in same)
    assert all(torch.equal(ours[k], fresh[k]) for k in other)
    assert not torch.equal(ours["denoising_unet.down_blocks.0.resnets.0.conv1.weight"],
                           fresh["denoising_unet.down_blocks.0.resnets.0.conv1.weight"])
    enc = src.image_encoder.state_dict()
    assert all(torch.equal(v, enc[k]) for k, v in tr.pipe.image_encoder.state_dict().items())
    assert f"copied {len(same) + len(enc)} of {len(ours) + len(enc)} tensors into preset lab" in printed
    assert "denoising_unet.conv_in.weight" in printed
    assert load_pipeline(tr.train()).model.config.unet["in_channels"] == 16  # trains and exports as the preset
    with pytest.raises(ConfigError, match="exclude each other"):
        _cfg(tmp_path, model={"init_from": str(src_dir), "warm_start_from": str(src_dir)})


def test_pupil_loss_weights_mark_the_latent_cells_of_the_eyes():
    from animate_anyone.pose.face import draw_face_maps

    points = np.zeros((70, 3), np.float32)
    points[:, :2] = (64, 40)  # every landmark on the forehead ...
    points[:, 2] = 1
    points[68, :2], points[69, :2] = (44, 52), (84, 52)  # ... but the pupils
    points[48:68, :2] = (64, 100)  # and the mouth (blanked from the upper map)
    upper, _ = draw_face_maps(points, 128, 128)
    maps = torch.from_numpy(upper).permute(2, 0, 1)[None, :, None].float() / 255  # (1, 3, 1, 128, 128)
    w = pupil_loss_weights(maps.repeat(1, 1, 2, 1, 1), (16, 16), 4.0)
    assert w.shape == (1, 1, 2, 16, 16) and torch.equal(w[:, :, 0], w[:, :, 1])
    marked = {(int(y), int(x)) for y, x in torch.nonzero(w[0, 0, 0] == 5)}
    around = lambda cy, cx: {(cy + dy, cx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}  # noqa: E731
    assert marked == around(6, 5) | around(6, 10)  # the cells of (44, 52) and (84, 52) and their neighbours
    assert set(torch.unique(w).tolist()) == {1.0, 5.0}
    green_only = maps.clone()
    green_only[:, 0] = 0  # the same map without yellow: no pupil, no weight
    assert torch.equal(pupil_loss_weights(green_only, (16, 16), 4.0), torch.ones(1, 1, 1, 16, 16))


def test_eye_loss_weight_weighs_up_the_pupil_cells_of_the_loss(tmp_path):
    class YellowSquares(MovingSquares):  # the square of the upper map drawn as a pupil would be
        def __getitem__(self, index):
            item = super().__getitem__(index)
            item["poses"][2] = 0
            return item

    def loss(tr, weight):  # the same batch and noise every time
        tr.cfg.noise.eye_loss_weight = weight
        torch.manual_seed(0)
        return tr._denoise_loss(tr._batch(0, 0), uncond=False).item()

    cfg = _cfg(tmp_path, model={"reenact": True}, noise={"eye_loss_weight": 4.0, "snr_gamma": None})
    tr = Trainer(cfg, dataset=YellowSquares(face=True), cpu=True)
    assert loss(tr, 4.0) > 1.05 * loss(tr, 0.0)
    white = Trainer(cfg, dataset=MovingSquares(face=True), cpu=True)  # white squares: no pupils
    assert loss(white, 4.0) == loss(white, 0.0)
    with pytest.warns(UserWarning, match="no pupil"):  # the tenth batch in a row without pupils
        for _ in range(9):
            loss(white, 4.0)


def test_pose_loss_weights_mark_the_cells_under_the_drawn_pose():
    maps = torch.zeros(1, 3, 2, 64, 64)
    maps[0, 0, 0, 20:24, 8:40] = 0.6  # frame 0: a limb across cells (2, 1)..(2, 4) of an 8x8 latent
    maps[0, 1, 1, 60:64, 60:64] = 0.05  # frame 1: nothing but a faint smudge (below the drawn level)
    w = pose_loss_weights(maps, (8, 8), 2.0)
    assert w.shape == (1, 1, 2, 8, 8) and set(torch.unique(w).tolist()) == {1.0, 3.0}
    marked = {(int(y), int(x)) for y, x in torch.nonzero(w[0, 0, 0] == 3)}
    assert marked == {(y, x) for y in (1, 2, 3) for x in range(0, 6)}  # the limb's cells and their neighbours
    assert torch.equal(w[0, 0, 1], torch.ones(8, 8))


def test_pose_loss_weight_weighs_up_the_figure_in_the_loss(tmp_path):
    def loss(tr, weight):  # the same batch and noise every time
        tr.cfg.noise.pose_loss_weight = weight
        torch.manual_seed(0)
        return tr._denoise_loss(tr._batch(0, 0), uncond=False).item()

    tr = Trainer(_cfg(tmp_path, noise={"pose_loss_weight": 2.0, "snr_gamma": None}), dataset=MovingSquares(), cpu=True)
    plain, weighted = loss(tr, 0.0), loss(tr, 2.0)
    assert plain < weighted < 3 * plain  # the square's cells count three times, the rest once


def test_bad_samples_are_skipped_and_all_bad_stops_cleanly(tmp_path):
    with pytest.warns(UserWarning, match="skipping training sample"):
        Trainer(_cfg(tmp_path), dataset=MovingSquares(bad=(1, 3)), cpu=True).train()
    with pytest.raises(InputError, match="unreadable"):
        Trainer(_cfg(tmp_path, output_dir=str(tmp_path / "r2")), dataset=MovingSquares(n=2, bad=(0, 1)),
                cpu=True).train()


def test_oversample_needs_meta_entries(tmp_path):
    with pytest.raises(ConfigError, match="data.oversample needs a dataset read from meta files"):
        Trainer(_cfg(tmp_path, data={"width": 64, "height": 64, "oversample": {"motion": {"turn": 2}}}),
                dataset=MovingSquares(), cpu=True)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return {f"{c}.{k}": v for c in ("denoising_unet", "reference_unet", "pose_guider")
            for k, v in load_file(run / "final" / c / "model.safetensors").items()}


def test_data_workers_give_the_same_batches_and_weights(tmp_path):
    """Batches assembled in worker processes are those of the training process, in order, and a
    bad sample is reported once however many workers meet it."""
    runs = {}
    for workers in (0, 2):
        cfg = _cfg(tmp_path, output_dir=str(tmp_path / f"w{workers}"), max_steps=4,
                   data={"width": 64, "height": 64, "num_workers": workers},
                   optim={"lr": 1e-3, "gradient_accumulation_steps": 2})
        with pytest.warns(UserWarning, match="skipping training sample 1") as caught:
            Trainer(cfg, dataset=MovingSquares(bad=(1,)), cpu=True).train()
        assert sum("skipping training sample 1" in str(w.message) for w in caught) == 1
        runs[workers] = _weights(tmp_path / f"w{workers}")
    assert not all(torch.equal(v, runs[0][k]) for k, v in _weights_at_init(tmp_path).items())
    for k, v in runs[0].items():
        torch.testing.assert_close(runs[2][k], v, rtol=0, atol=0, msg=k)


def _weights_at_init(tmp_path) -> dict[str, torch.Tensor]:
    cfg = _cfg(tmp_path, output_dir=str(tmp_path / "init"), max_steps=1)
    tr = Trainer(cfg, dataset=MovingSquares(), cpu=True)
    tr.export()
    return _weights(tmp_path / "init")


def test_worker_errors_arrive_as_one_line(tmp_path):
    cfg = _cfg(tmp_path, data={"width": 64, "height": 64, "num_workers": 2})
    with pytest.warns(UserWarning), pytest.raises(InputError, match="^every training sample is unreadable"):
        Trainer(cfg, dataset=MovingSquares(n=2, bad=(0, 1)), cpu=True).train()


def test_time_budget_stops_with_a_checkpoint_and_resume_finishes_the_same(tmp_path):
    full = _cfg(tmp_path, output_dir=str(tmp_path / "full"), max_steps=3, checkpoint_every=10)
    Trainer(full, dataset=MovingSquares(), cpu=True).train()
    cut = _cfg(tmp_path, output_dir=str(tmp_path / "cut"), max_steps=3, checkpoint_every=10, max_minutes=1e-6)
    Trainer(cut, dataset=MovingSquares(), cpu=True).train()
    assert [s for s, _ in list_checkpoints(tmp_path / "cut")] == [1]  # stopped after its first step
    assert json.loads((tmp_path / "cut" / "final" / "training.json").read_text())["step"] == 1
    more = _cfg(tmp_path, output_dir=str(tmp_path / "cut"), max_steps=3, checkpoint_every=10)
    Trainer(more, dataset=MovingSquares(), cpu=True).train(resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ConfigError, match="max_minutes"):
        _cfg(tmp_path, max_minutes=0)
    with pytest.raises(ConfigError, match="num_workers"):
        _cfg(tmp_path, data={"num_workers": -1})


def test_existing_checkpoints_need_resume(tmp_path):
    Trainer(_cfg(tmp_path), dataset=MovingSquares(), cpu=True).train()
    with pytest.raises(InputError, match="--resume"):
        Trainer(_cfg(tmp_path, max_steps=3), dataset=MovingSquares(), cpu=True).train()


# ---- resume after SIGKILL, two processes --------------------------------------------------------


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1] / "src"), env.get("PYTHONPATH", "")])
    return env


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for comp in ("denoising_unet", "reference_unet", "pose_guider"):
        for k, v in load_file(run / "final" / comp / "model.safetensors").items():
            out[f"{comp}.{k}"] = v
    return out


def test_resume_after_sigkill_reaches_the_same_weights(tmp_path):
    steps = "6"
    ref_run, killed_run = tmp_path / "uninterrupted", tmp_path / "killed"
    subprocess.run([sys.executable, str(SCRIPT), str(ref_run), "image", steps], check=True, env=_env(),
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed_run), "image", steps], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list_checkpoints(killed_run) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [s for s, _ in list_checkpoints(killed_run)]
    assert done and max(done) < int(steps) and not (killed_run / "final").exists()
    subprocess.run([sys.executable, str(SCRIPT), str(killed_run), "image", steps, "--resume"], check=True,
                   env=_env(), capture_output=True)
    a, b = _final_weights(ref_run), _final_weights(killed_run)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_two_process_cpu_training(tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(SCRIPT), str(run), "image", "2"]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run / "final" / "model.json").is_file()
    assert [s for s, _ in list_checkpoints(run)] == [2]


def test_shipped_configs_are_valid():
    root = HERE.parents[1] / "configs" / "train"
    configs = sorted(root.glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        cfg = load_config(path)
        assert cfg.data.meta, path
