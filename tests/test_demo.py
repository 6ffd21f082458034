"""The demo command: a held-out lab example through a model folder; outputs and metrics."""

import json

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.demo import heldout_example


@pytest.fixture(scope="module")
def random_tiny_weights(tmp_path_factory):
    from animate_anyone.models import get_preset
    from animate_anyone.pipelines import AnimateAnyonePipeline
    from animate_anyone.weights.layouts import save_pipeline

    out = tmp_path_factory.mktemp("w") / "tiny"
    save_pipeline(AnimateAnyonePipeline.from_config(get_preset("tiny"), seed=0), out)
    (out / "demo.json").write_text(json.dumps({"settings": {"frames": 4, "steps": 2, "size": 64, "gap": 2,
                                                             "context_frames": 4}}))
    return out


def test_heldout_example_is_from_the_heldout_split():
    from animate_anyone.lab.background import BACKGROUNDS
    from animate_anyone.lab.split import character_split

    ref, poses, gt, info = heldout_example(0, 64, 4, 2)
    assert ref.shape == (64, 64, 3) and poses.shape == gt.shape == (4, 64, 64, 3)
    assert character_split(info["character_id"]) == "heldout"
    assert info["background"] in BACKGROUNDS  # lab_quality.py splits its scores by it
    assert poses.max() > 0 and not np.array_equal(gt[0], ref)


def test_demo_writes_video_grid_and_metrics(random_tiny_weights, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--weights", str(random_tiny_weights), "--out", str(out)]) == 0
    assert (out / "demo.mp4").is_file() and (out / "demo_grid.png").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["model"]) == {"ssim", "psnr", "l1", "pose_pck@0.1"} and m["example"]["category"] in ("human", "cartoon", "robot")
    pck = m["copy_reference_baseline"]["pose_pck@0.1"]  # None only while no probe weights are shipped
    assert pck is None or 0.0 <= pck <= 1.0
    assert "SSIM" in capsys.readouterr().out


def test_demo_bad_weights_folder(tmp_path, capsys):
    assert main(["demo", "--weights", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shipped_demo_model_loads():
    from animate_anyone.demo import default_weights
    from animate_anyone.weights.layouts import check_weights

    report = check_weights(default_weights())
    assert report.usable, report.summary()
    size = sum(p.stat().st_size for p in default_weights().rglob("*") if p.is_file())
    assert size <= 20 * 2**20
