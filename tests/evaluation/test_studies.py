"""Study runner: strict configs, and a run with injected generator, aligner and detector."""

import json

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.errors import ConfigError
from animate_anyone.evaluation.studies import Case, load_cases, parse_study, run_study, write_study_report
from animate_anyone.pose.keypoints import save_keypoints
from tests.evaluation.test_pose_metrics import COLOURS, H, W, _paint, make_driving

CONFIG = {
    "name": "scale_mismatch",
    "model": {"width": W, "height": H},
    "conditions": [{"name": "aligned", "align": True}, {"name": "raw", "align": False, "face": False}],
    "case_source": "tests.evaluation.test_studies:lab_cases",
    "metrics": ["psnr", "pose", "flicker", "appearance"],
}


def lab_cases(num_frames=4):
    driving = make_driving(num_frames)
    gt = np.stack([_paint(driving.body[t], COLOURS) for t in range(num_frames)])
    return [Case("human_a", gt[0], driving, gt, driving.frames(slice(0, 1)), "human"),
            Case("cartoon_b", gt[0], driving, None, None, "cartoon")]  # fmt: skip


def test_study_config_is_strict():
    cfg = parse_study(CONFIG)
    assert [c.name for c in cfg.conditions] == ["aligned", "raw"] and cfg.conditions[1].face is False
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        parse_study({**CONFIG, "colour": 1})
    with pytest.raises(ConfigError, match=r"conditions\[0\]: unknown key"):
        parse_study({**CONFIG, "conditions": [{"name": "x", "allign": True}]})
    with pytest.raises(ConfigError, match="either 'cases' or 'case_source'"):
        parse_study({k: v for k, v in CONFIG.items() if k != "case_source"})
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_study({**CONFIG, "metrics": ["fvd"]})


def test_run_study_compares_conditions_and_categories(tmp_path):
    cfg = parse_study(CONFIG)
    cases = load_cases(cfg)
    shift = np.array([10.0, 0.0], np.float32)  # between 0.05 and 0.1 of the body size (153 px)

    def aligner(driving, ref_pose):  # a stand-in retarget: a known translation
        out = driving.frames(slice(None))
        out.body[..., :2] += shift
        return out

    def generate(reference, pose_maps):  # "animates" by returning the character painted at the pose
        return np.stack([_paint(make_driving(len(pose_maps)).body[t], COLOURS) for t in range(len(pose_maps))])

    def detector(frames):
        return make_driving(len(frames)) if len(frames) > 1 else make_driving(1)

    result = run_study(cfg, cases, generate, aligner=aligner, detector=detector, progress=False)
    assert len(result.rows) == 4 and set(result.by_condition) == {"aligned", "raw"}
    # the generated figure stays where the raw pose is, so the aligned condition loses PCK@0.05
    assert result.by_condition["raw"]["pck@0.05"] == 1.0 > result.by_condition["aligned"]["pck@0.05"]
    assert result.by_condition_category["raw"]["human"]["psnr"] == 100.0
    assert "psnr" not in result.by_condition_category["raw"]["cartoon"]  # no ground truth for that case
    assert result.by_condition["raw"]["reference_detected"] == 1.0
    # the detector on the ground truth: measured for the case that has one, the same in every condition
    human = result.by_condition_category["aligned"]["human"]
    assert human["gt_detection_rate"] == 1.0 and human["gt_pck@0.1"] == 1.0
    assert "gt_detection_rate" not in result.by_condition_category["aligned"]["cartoon"]
    write_study_report(result, tmp_path)
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["by_condition"]["aligned"]["pck@0.1"] == 1.0
    assert "| raw / human |" in (tmp_path / "study.md").read_text()
    assert "gt_detection_rate" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "plots" / "pck_at_0.05.png").is_file()


def test_study_command_reports_config_errors(tmp_path, capsys):
    driving = make_driving(2)
    save_keypoints(driving, tmp_path / "d.json")
    (tmp_path / "s.yaml").write_text("name: s\nconditions: [{name: a}]\ncases: [{name: c, reference: r.png, driving: d.json}]\n")
    rc = main(["study", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "r.png: image not found" in err and not (tmp_path / "out").exists()
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    assert main(["study", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "out")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_study_weights_resolve_against_the_yaml_and_demo(tmp_path):
    from pathlib import Path

    from animate_anyone.demo import default_weights

    cfg = parse_study({**CONFIG, "model": {"weights": "w/model"}}, root=tmp_path)
    assert Path(cfg.model.weights) == tmp_path / "w" / "model"
    cfg = parse_study({**CONFIG, "model": {"weights": "demo"}}, root=tmp_path)
    assert Path(cfg.model.weights) == Path(default_weights()) and Path(cfg.model.weights).is_dir()


def test_shipped_study_configs_parse():
    from pathlib import Path

    from animate_anyone.evaluation.studies import load_study

    for path in sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.yaml")):
        cfg = load_study(path)
        assert Path(cfg.model.weights).is_dir(), path
