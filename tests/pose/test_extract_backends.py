"""Landmark mapping of both backends without running any model (fake DWPose sessions)."""

import numpy as np
import pytest

from animate_anyone.errors import InputError
from animate_anyone.pose.dwpose import (
    MEAN,
    POSE_SIZE,
    STD,
    DWPoseExtractor,
    check_dwpose_dir,
    crop_for_pose,
    wholebody_to_schema,
)
from animate_anyone.pose.extract import FACE_MESH_TO_68, MP_POSE_TO_OPENPOSE, make_extractor, map_mediapipe


def test_face_index_map_is_a_valid_selection():
    assert len(FACE_MESH_TO_68) == 68 == len(set(FACE_MESH_TO_68))
    assert all(0 <= i < 468 for i in FACE_MESH_TO_68)
    assert FACE_MESH_TO_68[8] == 152 and FACE_MESH_TO_68[30] == 1  # chin, nose tip
    # mirror pairs of the mesh (person's right <-> left) land on iBUG mirror pairs
    mesh_mirror = {234: 454, 33: 263, 133: 362, 61: 291, 70: 300, 98: 327}
    ibug = {FACE_MESH_TO_68.index(a): FACE_MESH_TO_68.index(b) for a, b in mesh_mirror.items()}
    assert ibug == {0: 16, 36: 45, 39: 42, 48: 54, 17: 26, 31: 35}


def test_map_mediapipe_body_neck_and_outside_points():
    pose = np.zeros((33, 3), np.float32)
    pose[:, :2] = 0.5
    pose[:, 2] = 0.9
    pose[11] = (0.6, 0.4, 0.8)  # left shoulder
    pose[12] = (0.4, 0.4, 0.7)  # right shoulder
    pose[27] = (0.5, 1.3, 0.9)  # left ankle far below the frame
    face = np.tile(np.array([[0.5, 0.2, 0.0]], np.float32), (468, 1))
    body, hands, out_face = map_mediapipe(pose, None, np.full((21, 3), 0.25, np.float32), face, 200, 100)
    assert MP_POSE_TO_OPENPOSE[5] == 11 and MP_POSE_TO_OPENPOSE[2] == 12
    np.testing.assert_allclose(body[5], (120, 40, 0.8))
    np.testing.assert_allclose(body[2], (80, 40, 0.7))
    np.testing.assert_allclose(body[1], (100, 40, 0.7))  # neck: midpoint, weaker shoulder's score
    assert tuple(body[13]) == (0, 0, 0)  # outside the frame: not found
    assert (hands[0, :, 2] == 0).all() and (hands[1, :, 2] == 1).all()
    np.testing.assert_allclose(hands[1, 0, :2], (50, 25))
    assert (out_face[:, 2] == 1).all() and out_face[0, 0] == pytest.approx(100)


def test_wholebody_to_schema_order():
    kps = np.zeros((133, 3), np.float32)
    kps[:, 0] = np.arange(133)
    kps[:, 2] = 1
    body, hands, face = wholebody_to_schema(kps)
    # OpenPose: nose, neck, r-shoulder (COCO 6), ..., r-eye (COCO 2), l-eye (1), r-ear (4), l-ear (3)
    assert body[:, 0].tolist() == [0, 5.5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    assert face[0, 0] == 23 and face[-1, 0] == 90
    assert hands[0, 0, 0] == 91 and hands[1, -1, 0] == 132


def test_missing_dwpose_files_are_named(tmp_path):
    with pytest.raises(InputError, match="folder not found"):
        check_dwpose_dir(tmp_path / "nope")
    (tmp_path / "yolox_l.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match=r"missing dw-ll_ucoco_384\.onnx"):
        check_dwpose_dir(tmp_path)
    with pytest.raises(InputError, match="--dwpose-dir"):
        make_extractor("dwpose")
    with pytest.raises(InputError, match="unknown pose backend"):
        make_extractor("openpose")


class _Input:
    name = "input"


class _FakeSession:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def get_inputs(self):
        return [_Input()]

    def run(self, _names, feeds):
        x = feeds["input"]
        self.calls.append(x.shape)
        return self.fn(x)


def test_dwpose_decoding_with_fake_models():
    width, height = 320, 480
    ratio = 640 / 480  # letterbox scale of a 320x480 frame
    box = np.array([100.0, 90.0, 220.0, 390.0])  # person box in frame pixels

    def detector(x):
        raw = np.zeros((1, 8400, 85), np.float32)  # box offsets, then sigmoid-ed objectness and classes
        cell = 6400 + 1600 + 7 * 20 + 5  # stride-32 grid, cell (5, 7)
        centre = (box[:2] + box[2:]) / 2 * ratio
        size = (box[2:] - box[:2]) * ratio
        raw[0, cell, :2] = centre / 32 - (5, 7)
        raw[0, cell, 2:4] = np.log(size / 32)
        raw[0, cell, 4] = raw[0, cell, 5] = 0.95
        return [raw]

    targets = np.stack([np.linspace(10, 270, 133), np.linspace(20, 370, 133)], -1).round()

    def pose(x):
        sx = np.zeros((1, 133, POSE_SIZE[0] * 2), np.float32)
        sy = np.zeros((1, 133, POSE_SIZE[1] * 2), np.float32)
        sx[0, np.arange(133), (2 * targets[:, 0]).astype(int)] = 0.8
        sy[0, np.arange(133), (2 * targets[:, 1]).astype(int)] = 0.9
        return [sx, sy]

    det, pos = _FakeSession(detector), _FakeSession(pose)
    extractor = DWPoseExtractor(det_session=det, pose_session=pos)
    frame = np.zeros((height, width, 3), np.uint8)
    body, hands, face, found = extractor(frame)
    assert found and det.calls == [(1, 3, 640, 640)] and pos.calls == [(1, 3, 384, 288)]
    # expected crop: box enlarged 1.25x, made 3:4 around its centre
    w, h = 120 * 1.25, 300 * 1.25
    w = h * 0.75 if w < h * 0.75 else w
    centre = np.array([160.0, 240.0])
    expect = targets / np.array(POSE_SIZE) * np.array([w, h]) + centre - np.array([w, h]) / 2
    np.testing.assert_allclose(body[0, :2], expect[0], atol=1e-3)  # nose = COCO 0
    np.testing.assert_allclose(body[2, :2], expect[6], atol=1e-3)  # r-shoulder = COCO 6
    np.testing.assert_allclose(face[:, :2], expect[23:91], atol=1e-3)
    np.testing.assert_allclose(hands[1, :, :2], expect[112:133], atol=1e-3)
    assert body[0, 2] == pytest.approx(0.8)


def test_dwpose_no_person():
    empty = _FakeSession(lambda x: [np.zeros((1, 8400, 85), np.float32)])  # all probabilities 0
    extractor = DWPoseExtractor(det_session=empty, pose_session=_FakeSession(lambda x: []))
    *_, found = extractor(np.zeros((64, 64, 3), np.uint8))
    assert not found


def test_pose_crop_maps_the_box_to_the_input():
    frame = np.zeros((200, 100, 3), np.uint8)
    frame[50, 30] = 255
    x = crop_for_pose(frame, centre=np.array([50.0, 100.0]), size=np.array([150.0, 200.0]))
    img = x[0].transpose(1, 2, 0) * STD + MEAN
    y_, x_ = np.unravel_index(img.sum(-1).argmax(), img.shape[:2])
    # frame (30, 50) -> crop ((30 - (50 - 75)) * 288 / 150, (50 - 0) * 384 / 200) = (105.6, 96)
    assert abs(x_ - 105.6) <= 2 and abs(y_ - 96) <= 2
