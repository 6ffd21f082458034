"""The benchmark scripts' own logic (not their figures): what they compare must be comparable."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_style_computes_the_same_video_as_the_pipeline():


    ps = _load("pipeline_speed")
    args = ps.argparse.Namespace(preset="tiny", device="cpu", dtype="fp32", offload=False)
    pipe = ps.build(args)
    unet = pipe.model.denoising_unet
    ref, poses = ps.synthetic_inputs(64, 64, 3)
    kw = dict(width=64, height=64, num_inference_steps=2, guidance_scale=3.5, progress=False)

    def processors():
        return {type(p).__name__ for p in unet.attn_processors.values()}

    with torch.inference_mode():
        ours = pipe(ref, poses, compat="moore", **kw).frames
        assert processors() == {"ReferenceReadProcessor", "TemporalAttnProcessor", "SingleTokenCrossAttnProcessor"}
        ps.use_reference_style(pipe, True)
        try:
            styled = pipe(ref, poses, compat="moore", decode_chunk_size=1, **kw).frames
            # the emulation really is in place: every reading block runs it, frame attention is SDPA
            assert processors() == {"ReferenceStyleRead", "AttnProcessor2_0"}
        finally:
            ps.use_reference_style(pipe, False)
        again = pipe(ref, poses, compat="moore", **kw).frames
        assert processors() == {"ReferenceReadProcessor", "TemporalAttnProcessor", "SingleTokenCrossAttnProcessor"}
    np.testing.assert_array_equal(ours, again)  # switched back
    # the same computation, done the reference implementation's way (and one frame per VAE call)
    np.testing.assert_allclose(styled, ours, atol=1e-5)


def test_frame_attention_matmul_path_gives_the_same_video():
    from diffusers.models.attention_processor import AttnProcessor2_0

    from animate_anyone.demo import default_weights
    from animate_anyone.models.unets import motion_module_paths
    from animate_anyone.weights.layouts import load_pipeline

    ps = _load("pipeline_speed")
    # a trained model: random networks amplify float32 rounding chaotically (1e-7 -> 3e-3 here)
    pipe = load_pipeline(default_weights())
    unet = pipe.model.denoising_unet
    ref, poses = ps.synthetic_inputs(64, 64, 24)  # one 24-frame window: the matmul path
    kw = dict(width=64, height=64, num_inference_steps=2, guidance_scale=3.5, progress=False)
    with torch.inference_mode():
        ours = pipe(ref, poses, **kw).frames
        for path in motion_module_paths(unet):  # what the reference-style run uses
            for block in unet.get_submodule(path).transformer_blocks:
                block.attn1.set_processor(AttnProcessor2_0())
                block.attn2.set_processor(AttnProcessor2_0())
        sdpa = pipe(ref, poses, **kw).frames
    assert not np.array_equal(ours, sdpa)  # the matmul path really ran
    np.testing.assert_allclose(ours, sdpa, atol=1e-4)  # 3e-6 measured


def test_pipeline_speed_prints_and_records_both_variants(tmp_path, capsys):
    ps = _load("pipeline_speed")
    out = tmp_path / "rows.jsonl"
    assert ps.main(["--preset", "tiny", "--size", "64", "64", "--frames", "2", "--steps", "2", "--repeats", "1",
                    "--device", "cpu", "--reference-style", "--full-cross-attention", "--json", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["ours", "reference-style", "full-cross-attn"]
    assert rows[1]["speedup_vs_reference_style"] > 0 and all(r["call_s"] > 0 for r in rows)
    # the full cross-attention computes the same video as the one-token shortcut
    assert rows[2]["shortcut_speedup"] > 0 and rows[2]["shortcut_max_diff"] < 1e-4
    printed = capsys.readouterr().out
    assert "faster" in printed and "one-token cross-attention" in printed


def test_reenact_quality_scores_model_copy_and_ground_truth(reenact_weights, tmp_path, capsys):
    from animate_anyone.lab.expression_probe import WEIGHTS_DIR, WEIGHTS_FILE

    rq = _load("reenact_quality")
    out = tmp_path / "rq.json"
    assert rq.main(["--weights", str(reenact_weights), "--sequences", "2", "--size", "64", "--frames", "3",
                    "--gap", "1", "--steps", "1", "--json", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [len(rows[k]) for k in ("model", "copy-reference", "autoencoder", "ground-truth")] == [2, 2, 2, 2]
    assert all(r["mouth_corr"] == 0.0 for r in rows["copy-reference"])  # a copied face never changes
    printed = capsys.readouterr().out
    assert "| copy-reference |" in printed and "paired over sequences" in printed
    if (WEIGHTS_DIR / WEIGHTS_FILE).is_file():  # the state errors: the true frames' is the reader's floor
        assert "mouth state err" in printed
        for r in rows["ground-truth"]:
            assert 0 <= r["eyes_state_err"] <= 100 and 0 <= r["mouth_state_err"] <= 100


def test_denoiser_fidelity_estimate_inverts_v_prediction_and_runs(capsys):
    df = _load("denoiser_fidelity")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    for a in (0.999, 0.5, 0.01):
        a = torch.tensor(a)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0  # the exact v target of the scheduler
        torch.testing.assert_close(df.x0_estimate(x_t, v, a), x0, atol=1e-5, rtol=0)

    assert df.main(["--sequences", "1", "--frames", "2", "--timesteps", "100", "999"]) == 0
    out = capsys.readouterr().out
    ssim_table, attention_table = out.split("weight on the reference token")
    rows = {line.split(" | ")[0]: line for line in ssim_table.splitlines() if line.startswith("| ")}
    assert {"| 100", "| 999", "| autoencoder (t = 0)", "| copy the reference"} <= set(rows)
    # the first held-out sequence has a patterned background; both columns were measured
    with_ref, without = (float(x) for x in rows["| 999"].split(" | ")[1].split(" / "))
    assert 0 < with_ref <= 1 and 0 < without <= 1 and with_ref != without
    assert "| 32x32 tokens | 16x16 tokens | 8x8 tokens | 4x4 tokens |" in attention_table
    assert df.main(["--timesteps", "1000"]) == 1


@torch.no_grad()
def test_same_place_recorder_measures_without_changing_the_output():
    from animate_anyone.models import AnimateAnyoneModel
    from animate_anyone.models.presets import get_preset
    from animate_anyone.models.reference_attention import spatial_self_attention_paths

    from .conftest import randomise_

    df = _load("denoiser_fidelity")
    torch.manual_seed(0)
    model = AnimateAnyoneModel(get_preset("tiny").replace(reference_position_features=8)).eval()
    randomise_(model)
    unet, bank = model.denoising_unet, model.bank
    paths = spatial_self_attention_paths(unet)
    for p in paths:  # a strong position term: every query should favour its own place
        unet.get_submodule(f"{p}.attn1.reference_position").gain.fill_(3.0)
    g = torch.Generator().manual_seed(1)
    x, emb = torch.randn(1, 4, 2, 16, 16, generator=g), torch.randn(1, 1, model.config.cross_attention_dim, generator=g)
    model.write_reference(torch.randn(1, 4, 16, 16, generator=g), emb)
    plain = unet(x, 500, emb)
    sink: dict = {}
    for p in paths:
        unet.get_submodule(p + ".attn1").set_processor(df.SamePlaceRecorder(bank, p, sink))
    recorded = unet(x, 500, emb)
    torch.testing.assert_close(recorded, plain, atol=0, rtol=0)
    assert sorted(sink) == [4, 16, 64, 256]  # the four levels of a 16x16 latent
    assert min(min(v) for v in sink.values()) > 1.5 and max(sink[256]) > 10


def test_lab_quality_splits_pose_fidelity_by_motion(capsys):
    lq = _load("lab_quality")

    def row(motion, pck):
        return {"motion": motion, "pck_probe": pck, "agree_probe": 1 - pck}

    rows = {"model": [row("turn-1", 0.5), row("turn-2", 0.7), row("walk-3", 0.9)],
            "no-referencenet": [row("turn-1", 0.6), row("turn-2", 0.6), row("walk-3", float("nan"))],
            "copy-reference": [row("turn-1", 0.2), row("turn-2", 0.2), row("walk-3", 0.3)],
            "ground-truth": [row("turn-1", 0.9), row("turn-2", 0.9), row("walk-3", 1.0)]}  # fmt: skip
    lq.print_pose_by_motion(rows, ["probe"])
    lines = capsys.readouterr().out.splitlines()
    assert "| turning | probe | PCK@0.1 | 2 | 0.600 / 0.600 / 0.200 / 0.900 | +0.000 ± 0.100 (1/2) |" in lines
    assert "| turning | probe | agreement | 2 | 0.400 / 0.400 / 0.800 / 0.100 | +0.000 ± 0.100 (1/2) |" in lines
    assert "| the rest | probe | PCK@0.1 | 1 | 0.900 / – / 0.300 / 1.000 | – |" in lines  # no pair to compare
    assert "| all | probe | PCK@0.1 | 3 | 0.700 / 0.600 / 0.233 / 0.933 | +0.000 ± 0.100 (1/2) |" in lines
    del rows["model"][0]["agree_probe"]  # a score missing from a row leaves its pair out
    lq.print_pose_by_motion(rows, ["probe"])
    assert "| turning | probe | agreement | 2 | 0.300 / 0.400 / 0.800 / 0.100 | -0.100 ± nan (0/1) |" in capsys.readouterr().out.splitlines()
    lq.print_pose_by_motion(rows, [])
    assert capsys.readouterr().out == ""


def test_lab_quality_splits_pose_fidelity_by_facing(capsys):
    lq = _load("lab_quality")
    nan = float("nan")

    def row(front, back, n_front, n_back):
        return {"pck_probe_front": front, "pck_probe_side": nan, "pck_probe_back": back,
                "frames_front": n_front, "frames_side": 0, "frames_back": n_back}  # fmt: skip

    rows = {"model": [row(1.0, 0.2, 3, 1), row(0.5, nan, 1, 0)],
            "no-referencenet": [row(0.8, 0.6, 3, 1), row(0.4, nan, 1, 0)],
            "copy-reference": [row(0.9, 0.0, 3, 1), row(nan, nan, 1, 0)],
            "ground-truth": [row(1.0, 0.5, 3, 1), row(1.0, nan, 1, 0)]}  # fmt: skip
    lq.print_pose_by_facing(rows, ["probe"])
    lines = capsys.readouterr().out.splitlines()
    assert "| front | probe | PCK@0.1 | 4 | 0.875 / 0.700 / 0.900 / 1.000 |" in lines  # weighted by frames
    assert "| back | probe | PCK@0.1 | 1 | 0.200 / 0.600 / 0.000 / 0.500 |" in lines
    assert "| back | probe | agreement | 1 | – / – / – / – |" in lines  # no agreement scores in these rows
    assert not any(line.startswith("| side") for line in lines)  # no frame faces sideways
    rows["model-no-hold"] = [row(0.9, 0.1, 3, 1), row(0.5, nan, 1, 0)]  # a model run with a reference hold
    lq.print_pose_by_facing(rows, ["probe"])
    out = capsys.readouterr().out
    assert "| frames | model / model-no-hold / no-referencenet / copy-reference / ground-truth |" in out
    assert "| back | probe | PCK@0.1 | 1 | 0.200 / 0.100 / 0.600 / 0.000 / 0.500 |" in out.splitlines()


def test_lab_quality_pose_scores_by_facing():
    from animate_anyone.pose.keypoints import PoseSequence

    lq = _load("lab_quality")
    truth = PoseSequence.empty(3, 64, 64)
    truth.body[:, :, 2] = 1
    truth.body[:, :, 0] = np.linspace(10, 50, 18)
    truth.body[:, :, 1] = np.linspace(5, 60, 18)

    reading = PoseSequence.empty(3, 64, 64)  # a detector's reading of some frames: frame 2 wrong, the others exact
    reading.body[:] = truth.body
    reading.body[2, :, 0] += 30

    facing = np.array(["front", "front", "back"])
    scores = lq._pose_scores(reading, truth, facing, "probe")
    assert scores["pck_probe"] == pytest.approx(2 / 3)
    assert scores["pck_probe_front"] == 1.0 and scores["pck_probe_back"] == 0.0
    assert np.isnan(scores["pck_probe_side"])
    assert all(np.isnan(v) for v in lq._pose_scores(None, truth, facing, "probe").values())
    # agreement: against the detector's reading of the true frames, which here misreads frame 2 the
    # same way, so only frame 1 (read 1 px off, within 0.1 of the exact body size) and 2 agree
    truth_reading = PoseSequence.empty(3, 64, 64)
    truth_reading.body[:] = reading.body
    truth_reading.body[0, :, 0] += 40  # frame 0 of the truth read far off
    truth_reading.body[1, :, 0] += 1
    scores = lq._pose_scores(reading, truth, facing, "probe", truth_reading)
    assert scores["pck_probe"] == pytest.approx(2 / 3)  # unchanged
    assert scores["agree_probe"] == pytest.approx(2 / 3)
    assert scores["agree_probe_front"] == 0.5 and scores["agree_probe_back"] == 1.0
    truth_reading.body[..., 2] = 0  # the detector found nobody in the true frames: nothing to agree with
    scores = lq._pose_scores(reading, truth, facing, "probe", truth_reading)
    assert np.isnan(scores["agree_probe"]) and np.isnan(scores["agree_probe_front"]) and scores["pck_probe"] > 0
    nones = lq._pose_scores(None, truth, facing, "probe", truth_reading)
    assert set(nones) >= {"agree_probe", "agree_probe_back"} and all(np.isnan(v) for v in nones.values())


def test_lab_quality_scores_kept_frames_again_as_it_scored_them(tmp_path, capsys):
    from animate_anyone.models import get_preset
    from animate_anyone.pipelines import AnimateAnyonePipeline
    from animate_anyone.weights.layouts import save_pipeline

    lq = _load("lab_quality")
    weights = tmp_path / "tiny"
    save_pipeline(AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0), weights)
    (weights / "demo.json").write_text(json.dumps({"settings": {"frames": 3, "steps": 2, "size": 64, "gap": 2,
                                                                 "context_frames": 3}}))  # fmt: skip
    kept = tmp_path / "kept"
    args = ["--weights", str(weights), "--sequences", "2", "--no-pose"]
    assert lq.main(args + ["--save-frames", str(kept), "--json", str(tmp_path / "a.json")]) == 0
    first = capsys.readouterr().out
    assert sorted(p.name for p in kept.iterdir()) == ["seq_000.npz", "seq_001.npz", "settings.json"]
    with np.load(kept / "seq_000.npz") as z:
        assert sorted(z.files) == ["autoencoder", "model", "no-referencenet"] and z["model"].shape == (3, 64, 64, 3)
    # scored again without the model: the same numbers
    assert lq.main(["--sequences", "2", "--no-pose", "--frames-from", str(kept), "--json", str(tmp_path / "b.json")]) == 0
    again = capsys.readouterr().out
    table = [line for line in first.splitlines() if line.startswith("| ")]
    assert table and table == [line for line in again.splitlines() if line.startswith("| ")]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["rows"] for n in "ab")
    assert a == b
    # --start: the same held-out examples by their own index
    assert lq.main(["--start", "1", "--sequences", "1", "--no-pose", "--frames-from", str(kept),
                    "--json", str(tmp_path / "c.json")]) == 0  # fmt: skip
    c = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert c == {m: rows[1:] for m, rows in a.items()}
    assert "#1 " in capsys.readouterr().out
    assert lq.main(["--start", "-1"]) == 2 and lq.main(["--sequences", "0"]) == 2
    # options of the model run would be ignored when scoring kept frames: refused, nothing written
    capsys.readouterr()
    assert lq.main(["--frames-from", str(kept), "--weights", str(weights), "--steps", "5", "--json",
                    str(tmp_path / "d.json")]) == 2  # fmt: skip
    assert "--weights, --steps would be ignored" in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()
    # a sequence that was not kept, a folder without settings: one clear line, no traceback
    with pytest.raises(SystemExit, match="seq_002.npz"):
        lq.main(["--sequences", "3", "--no-pose", "--frames-from", str(kept)])
    assert lq.main(["--no-pose", "--frames-from", str(tmp_path)]) == 2
    assert "no readable settings.json" in capsys.readouterr().err


def test_lab_quality_reads_pose_with_another_probe_when_asked(tmp_path):
    lq = _load("lab_quality")
    with pytest.raises(SystemExit, match="error: .*probe"):  # an explicit probe folder must load
        lq.make_detectors(["probe"], str(tmp_path))
    shipped = Path(__file__).resolve().parents[1] / "src" / "animate_anyone" / "lab" / "probe_weights"
    detect = lq.make_detectors(["probe"], str(shipped))["probe"]
    assert detect(np.zeros((1, 64, 64, 3), np.uint8)).body.shape == (1, 18, 3)


def test_lab_quality_scores_the_model_with_and_without_the_reference_keep(tmp_path, capsys):
    from animate_anyone.models import get_preset
    from animate_anyone.pipelines import AnimateAnyonePipeline
    from animate_anyone.weights.layouts import save_pipeline

    lq = _load("lab_quality")
    weights = tmp_path / "tiny"
    save_pipeline(AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0), weights)
    (weights / "demo.json").write_text(json.dumps({"settings": {"frames": 3, "steps": 2, "size": 64, "gap": 2,
                                                                 "context_frames": 3, "keep_steps": 1.0}}))  # fmt: skip
    kept = tmp_path / "kept"
    args = ["--weights", str(weights), "--start", "60", "--sequences", "1", "--no-pose"]  # #60 talks: mostly still
    assert lq.main(args + ["--save-frames", str(kept), "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "reference keep 1 of the steps" in out and "| model-no-keep | " in out
    with np.load(kept / "seq_060.npz") as z:
        assert "model-no-keep" in z.files and np.abs(z["model"].astype(int) - z["model-no-keep"]).max() > 0
    rows = json.loads((tmp_path / "a.json").read_text())["rows"]
    assert rows["model"][0]["psnr"] != rows["model-no-keep"][0]["psnr"]
    # the same without the keep: no such row
    assert lq.main(args + ["--keep-steps", "0", "--json", str(tmp_path / "b.json")]) == 0
    b = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert "model-no-keep" not in b and b["model"][0]["psnr"] == rows["model-no-keep"][0]["psnr"]
    assert lq.main(["--frames-from", str(kept), "--keep-steps", "1"]) == 2
    assert "--keep-steps would be ignored" in capsys.readouterr().err
