import numpy as np
import pytest

from animate_anyone.errors import InputError
from animate_anyone.pose import PoseSequence, draw_pose, load_keypoints, render_sequence, save_keypoints
from animate_anyone.pose.render import BODY_COLORS, HAND_COLORS, LIMB_DIM


def _standing(width=256, height=256, t=3):
    seq = PoseSequence.empty(t, width, height, fps=12)
    body = np.array([
        [128, 40], [128, 70], [100, 70], [90, 110], [85, 150], [156, 70], [166, 110], [171, 150],
        [110, 150], [110, 200], [110, 245], [146, 150], [146, 200], [146, 245],
        [120, 35], [136, 35], [112, 40], [144, 40],
    ], np.float32)  # fmt: skip
    seq.body[:, :, :2] = body
    seq.body[:, :, 2] = 1.0
    seq.detected[:] = True
    return seq


def test_joint_and_limb_colours():
    seq = _standing()
    img = draw_pose(seq.body[0], None, None, 256, 256, size_scale=1.0)
    # a joint centre has the joint's full colour (joints are drawn after the dimmed limbs)
    for j in (0, 4, 10, 17):
        x, y = seq.body[0, j, :2].astype(int)
        assert tuple(img[y, x]) == BODY_COLORS[j], j
    # the middle of limb 7 (r-hip -> r-knee: colour index 7) has the dimmed limb colour
    x, y = ((seq.body[0, 8, :2] + seq.body[0, 9, :2]) / 2).astype(int)
    expect = tuple(int(c * LIMB_DIM) for c in BODY_COLORS[7])
    assert tuple(img[y, x]) == expect
    # background stays black, the map is RGB uint8
    assert img.dtype == np.uint8 and tuple(img[5, 5]) == (0, 0, 0)


def test_low_score_points_are_not_drawn():
    seq = _standing()
    seq.body[0, 4, 2] = 0.1  # r-wrist lost: its limb and disc disappear
    img = draw_pose(seq.body[0], None, None, 256, 256, size_scale=1.0)
    x, y = seq.body[0, 4, :2].astype(int)
    assert tuple(img[y, x]) == (0, 0, 0)


def test_hand_and_face_colours():
    seq = _standing()
    hand = np.zeros((2, 21, 3), np.float32)
    hand[0, :, 0] = np.linspace(20, 60, 21)
    hand[0, :, 1] = 200
    hand[0, :, 2] = 1
    face = np.zeros((68, 3), np.float32)
    face[0] = (230, 20, 1)
    img = draw_pose(seq.body[0], hand, face, 256, 256, draw_body=False, size_scale=1.0)
    assert tuple(img[200, 20]) == (0, 0, 255)  # hand point: blue disc
    assert tuple(img[20, 230]) == (255, 255, 255)  # face point: white
    assert HAND_COLORS[0] == (255, 0, 0)


def test_roundtrip_json_and_npz(tmp_path):
    seq = _standing(t=4)
    seq.detected[2] = False
    for name in ("k.json", "k.npz"):
        save_keypoints(seq, tmp_path / name)
        back = load_keypoints(tmp_path / name)
        np.testing.assert_allclose(back.body, seq.body, atol=1e-3)
        assert back.detected.tolist() == seq.detected.tolist()
        assert (back.width, back.height, back.fps) == (256, 256, 12)


def test_bad_keypoint_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_keypoints(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        load_keypoints(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="schema"):
        load_keypoints(tmp_path / "other.json")


def test_render_sequence_rescales():
    seq = _standing(t=2)
    maps = render_sequence(seq, 128, 64)
    assert maps.shape == (2, 64, 128, 3)
    x, y = int(seq.body[0, 0, 0] / 2), int(seq.body[0, 0, 1] / 4)
    assert tuple(maps[0, y, x]) == BODY_COLORS[0]
