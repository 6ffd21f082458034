import json

import numpy as np
import pytest

from animate_anyone.cli import main
from animate_anyone.data.video_io import read_video
from animate_anyone.lab import (
    CATEGORIES,
    MOTION_TYPES,
    character_ids,
    character_split,
    generate_clip,
    motion_split,
    plan_clips,
    sample_character,
    sample_motion,
)
from animate_anyone.lab.motion import motion_state
from animate_anyone.pose.keypoints import load_keypoints
from animate_anyone.pose.render import render_sequence

META_KEYS = {"video_path", "kps_path", "pose_path", "character_id", "category", "motion", "split"}


def test_same_arguments_give_identical_clips():
    a = generate_clip(3, "dance-00042", num_frames=6, width=64, height=80)
    b = generate_clip(3, "dance-00042", num_frames=6, width=64, height=80)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert np.array_equal(a.poses.body, b.poses.body) and np.array_equal(a.masks, b.masks)
    c = generate_clip(3, "dance-00042", num_frames=6, width=64, height=80, view_seed=1)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (6, 80, 64, 3) and a.frames.dtype == np.uint8


def test_any_size_works_and_character_stays_in_frame():
    for w, h in ((32, 32), (97, 61), (160, 240)):
        clip = generate_clip(11, "walk-00007", num_frames=4, width=w, height=h)
        assert clip.frames.shape == (4, h, w, 3)
        body = clip.poses.body
        assert (body[..., 2] > 0).sum() >= 4 * 14  # limbs always found
        ok = body[..., 2] > 0
        assert (body[ok, 0] >= 0).all() and (body[ok, 0] < w).all() and (body[ok, 1] < h).all()


def test_heldout_split_is_disjoint_and_documented_size():
    ids = range(3000)
    held = [i for i in ids if character_split(i) == "heldout"]
    assert 0.07 < len(held) / 3000 < 0.13
    train_plans = list(plan_clips("train", 12, 5))
    held_plans = list(plan_clips("heldout", 6, 5))
    assert {p.character_id for p in train_plans}.isdisjoint({p.character_id for p in held_plans})
    assert {p.motion_id for p in train_plans}.isdisjoint({p.motion_id for p in held_plans})
    for p in train_plans:
        assert p.split == "train" and character_split(p.character_id) == "train"
        assert motion_split(*p.motion_id.split("-")[:1], int(p.motion_id.split("-")[1])) == "train"
    for p in held_plans:
        assert p.split == "heldout" and motion_split(p.motion_id.split("-")[0], int(p.motion_id.split("-")[1])) == "heldout"
    # every family appears for every character, and the plan does not depend on how many we ask for
    assert {p.motion_id.split("-")[0] for p in train_plans[:5]} == set(MOTION_TYPES)
    assert list(plan_clips("train", 3, 5)) == train_plans[:15]
    assert character_ids("all", 5) == [0, 1, 2, 3, 4]


def test_keypoints_lie_on_the_drawn_character():
    clip = generate_clip(5, "wave-00003", num_frames=8, width=128, height=128)
    body = clip.poses.body
    hits = []
    for t in range(len(body)):
        for x, y, s in body[t]:
            if s > 0:
                hits.append(clip.masks[t, int(y), int(x)] > 0)
    assert np.mean(hits) > 0.97
    hands = clip.poses.hands[..., :2].reshape(8, -1, 2).astype(int)
    on = [clip.masks[t, y, x] > 0 for t in range(8) for x, y in hands[t]]
    assert np.mean(on) > 0.9


def _head_ratio(clip):
    face = clip.poses.face
    vis = face[..., 2] > 0
    heights = [np.ptp(face[t, vis[t], 1]) for t in range(len(face)) if vis[t].sum() > 40]
    body = clip.poses.body
    legs = np.mean(body[:, [10, 13], 1], axis=1) - body[:, 1, 1]  # neck to ankles
    return np.median(heights) / np.median(legs)


def test_categories_look_different():
    ratios = {}
    for cat in CATEGORIES:
        vals = []
        for cid in character_ids("train", 3, 0, (cat,)):
            assert sample_character(cid).category == cat
            vals.append(_head_ratio(generate_clip(cid, "talk-00001", num_frames=3, width=96, height=128)))
        ratios[cat] = np.mean(vals)
    assert ratios["cartoon"] > 1.6 * ratios["human"]
    robot = sample_character(character_ids("train", 1, 0, ("robot",))[0])
    assert robot.hair_style == "bald" and robot.sleeves == 1.0


def test_talking_moves_mouth_and_eyes():
    spec = sample_motion("talk", 4)
    state = motion_state(spec, np.arange(96) / 24)
    assert state.mouth_open.max() - state.mouth_open.min() > 0.4
    assert state.eye_open.min() < 0.3 < 0.9 < state.eye_open.max()
    clip = generate_clip(sample_character(2).character_id, spec, num_frames=96, width=128, height=128, fps=24)
    face = clip.poses.face
    mouth_gap = face[:, 66, 1] - face[:, 62, 1]
    eye_gap = face[:, 41, 1] - face[:, 37, 1]
    assert mouth_gap.max() - mouth_gap.min() > 1.0  # pixels
    assert eye_gap.max() - eye_gap.min() > 0.8
    # the pixels of the mouth change between the most open and the most closed frame
    a, b = int(mouth_gap.argmax()), int(mouth_gap.argmin())
    x0, y0 = face[a, 48:68, :2].min(0).astype(int) - 1
    x1, y1 = face[a, 48:68, :2].max(0).astype(int) + 2
    diff = np.abs(clip.frames[a, y0:y1, x0:x1].astype(int) - clip.frames[b, y0:y1, x0:x1]).mean()
    assert diff > 10


def test_turning_hides_the_face():
    clip = generate_clip(1, sample_motion("turn", 0), num_frames=48, width=64, height=64, fps=12)
    visible = (clip.poses.face[..., 2] > 0).sum(1)
    assert visible.max() == 68 and visible.min() == 0
    assert (clip.poses.body[:, 0, 2] == 0).any()  # the nose disappears when the back is shown


def test_synth_command_writes_the_documented_format(tmp_path):
    out = tmp_path / "lab"
    rc = main(["data", "synth", "-o", str(out), "--num-characters", "2", "--clips-per-character", "2",
               "--frames", "6", "--size", "64", "48", "--split", "all", "--quiet"])
    assert rc == 0
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta) == 4 and all(META_KEYS <= set(e) for e in meta)
    assert json.loads((out / "lab_config.json").read_text())["num_clips"] == 4
    rendered = []
    for e in meta:
        video, pose = read_video(out / e["video_path"]), read_video(out / e["pose_path"])
        kps = load_keypoints(out / e["kps_path"])
        assert len(video) == len(pose) == len(kps) == 6 and video.size == (64, 48)
        assert e["split"] == character_split(e["character_id"])
        rendered.append((render_sequence(kps).astype(int), pose.frames))
    # the pose video is the rendering of the exact keypoints (up to H.264 loss): far closer to it
    # than to the keypoints of any other clip
    for i, (_, decoded) in enumerate(rendered):
        errors = [np.abs(r - decoded).mean() for r, _ in rendered]
        assert errors[i] < 5.0 and errors[i] < 0.6 * min(e for j, e in enumerate(errors) if j != i)
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_lossless_output_is_exact(tmp_path):
    out = tmp_path / "lab"
    assert main(["data", "synth", "-o", str(out), "--num-characters", "1", "--clips-per-character", "1",
                 "--frames", "4", "--size", "48", "48", "--lossless", "--masks", "--quiet", "--seed", "7"]) == 0
    e = json.loads((out / "meta.json").read_text())[0]
    clip = generate_clip(e["character_id"], e["motion_id"], 4, 48, 48, view_seed=0)
    assert e["video_path"].endswith(".npz")
    assert np.array_equal(read_video(out / e["video_path"]).frames, clip.frames)
    assert np.array_equal(read_video(out / e["pose_path"]).frames, render_sequence(load_keypoints(out / e["kps_path"])))
    assert np.array_equal(np.load(out / e["mask_path"])["masks"], clip.masks)


def test_pose_videos_without_face_keep_the_keypoints(tmp_path):
    """`--no-face` / `--no-hands` change the pose video only (the face-keypoints study's twin data):
    same frames, keypoints files with every point, pose maps without the left-out points."""
    args = ["--num-characters", "1", "--clips-per-character", "1", "--frames", "4", "--size", "64", "64",
            "--lossless", "--quiet", "--seed", "3", "--motions", "talk"]
    for name, extra in (("full", []), ("noface", ["--no-face"]), ("bodyonly", ["--no-face", "--no-hands"])):
        assert main(["data", "synth", "-o", str(tmp_path / name), *args, *extra]) == 0
    entries = {n: json.loads((tmp_path / n / "meta.json").read_text())[0] for n in ("full", "noface", "bodyonly")}
    read = lambda n, key: read_video(tmp_path / n / entries[n][key]).frames  # noqa: E731
    kps = load_keypoints(tmp_path / "noface" / entries["noface"]["kps_path"])
    assert (kps.face[..., 2] > 0).any()  # the keypoints keep the face
    assert np.array_equal(read("full", "video_path"), read("noface", "video_path"))
    assert np.array_equal(read("noface", "pose_path"), render_sequence(kps, draw_face=False))
    assert np.array_equal(read("bodyonly", "pose_path"), render_sequence(kps, draw_face=False, draw_hands=False))
    assert not np.array_equal(read("full", "pose_path"), read("noface", "pose_path"))
    config = json.loads((tmp_path / "noface" / "lab_config.json").read_text())
    assert config["pose_face"] is False and config["pose_hands"] is True


def test_face_study_cases_carry_the_ground_truth_pose():
    from animate_anyone.lab.studies import CATEGORIES as STUDY_CATEGORIES
    from animate_anyone.lab.studies import face_cases

    cases = face_cases(per_category=1, frames=4, size=64)
    assert [c.category for c in cases] == list(STUDY_CATEGORIES)
    for c in cases:
        assert c.name.rsplit("_", 1)[1] in ("talk", "turn")
        assert len(c.ground_truth_pose) == len(c.ground_truth) == 4 and c.ground_truth.shape[1:3] == (64, 64)
        assert np.array_equal(c.ground_truth_pose.body, c.driving.body)  # driven by its own pose


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    assert main(["data", "synth", "-o", str(tmp_path), "--size", "4", "4"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(ValueError, match="motion id"):
        generate_clip(1, "jump-1")


def test_talking_head_portraits_with_face_maps(tmp_path):
    """`data synth --framing face --motions talk`: portraits whose face fills the frame, with
    upper-face and mouth maps that the reenactment dataset reads as two pose streams."""
    from animate_anyone.data.datasets import FACE_POSE_FIELDS, make_dataset
    from animate_anyone.lab.generate import generate_clip

    out = tmp_path / "faces"
    assert main(["data", "synth", "-o", str(out), "--num-characters", "2", "--clips-per-character", "1",
                 "--frames", "12", "--size", "64", "64", "--framing", "face", "--motions", "talk", "--lossless",
                 "--quiet"]) == 0  # fmt: skip
    entries = json.loads((out / "meta.json").read_text())
    assert len(entries) == 2 and all(e["motion"] == "talk" and e["framing"] == "face" for e in entries)
    kps = load_keypoints(out / entries[0]["kps_path"])
    face = kps.face[..., :2][kps.face[..., 2] > 0]
    assert np.ptp(face[:, 1]) > 0.35 * 64  # the face spans a good part of the frame height
    mouth = read_video(out / entries[0]["face_mouth_path"]).frames
    upper = read_video(out / entries[0]["face_upper_path"]).frames
    assert len(mouth) == len(upper) == 12 and mouth.any() and upper.any()
    ds = make_dataset("image", out / "meta.json", 64, 64, sample_margin=2, clip_size=32, pose_fields=FACE_POSE_FIELDS)
    item = ds.get(0, np.random.default_rng(0))
    assert item["poses"].shape == item["poses2"].shape == (3, 64, 64)
    assert not torch_equal(item["poses"], item["poses2"])
    # a body-framed clip of the same character is the default and keeps the whole body in frame
    body = generate_clip(entries[0]["character_id"], entries[0]["motion_id"], 4, 64, 64)
    assert body.meta["framing"] == "body" and np.ptp(body.poses.face[..., 1][body.poses.face[..., 2] > 0]) < 0.3 * 64


def torch_equal(a, b):
    return bool((a == b).all())
