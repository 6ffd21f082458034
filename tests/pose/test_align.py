"""Alignment on constructed skeletons: reference bone lengths, preserved joint angles, anchoring."""

import math

import numpy as np
import pytest

from animate_anyone.errors import InputError
from animate_anyone.pose import PoseSequence, align_pose
from animate_anyone.pose.align import BODY_PARENT, align_to_pose, canonical_lengths, find_character_box

# Proportions of a skeleton: bone (named by its child point) -> (length, angle in degrees from +x,
# image coordinates, y down) in the rest pose.
REST = {
    0: (40, -90), 2: (35, 180), 5: (35, 0), 8: (95, 100), 11: (95, 80), 3: (55, 100), 6: (55, 80),
    4: (50, 95), 7: (50, 85), 9: (80, 92), 12: (80, 88), 10: (75, 90), 13: (75, 90),
    14: (12, -150), 15: (12, -30), 16: (12, 170), 17: (12, 10),
}  # fmt: skip
ORDER = (0, 2, 5, 8, 11, 3, 6, 9, 12, 4, 7, 10, 13, 14, 15, 16, 17)


def skeleton(lengths: dict, angles: dict, neck=(0.0, 0.0)) -> np.ndarray:
    """Body ``[18, 3]`` from bone lengths and absolute bone angles, all points found."""
    body = np.zeros((18, 3), np.float32)
    body[1] = (*neck, 1)
    for c in ORDER:
        p = BODY_PARENT[c]
        a = math.radians(angles[c])
        body[c] = (body[p, 0] + lengths[c] * math.cos(a), body[p, 1] + lengths[c] * math.sin(a), 1)
    return body


def hand_at(wrist, size=4.0) -> np.ndarray:
    hand = np.zeros((21, 3), np.float32)
    for f in range(5):
        for j in range(4):
            hand[1 + 4 * f + j] = (wrist[0] + size * (f - 2), wrist[1] + size * (j + 1), 1)
    hand[0] = (*wrist[:2], 1)
    return hand


def reference(width=400, height=600, scale=1.5) -> PoseSequence:
    # different proportions: long legs, short forearms, wide shoulders
    lengths = {c: scale * length for c, (length, _) in REST.items()}
    for c in (10, 13, 9, 12):
        lengths[c] *= 1.3
    for c in (4, 7):
        lengths[c] *= 0.8
    for c in (2, 5):
        lengths[c] *= 1.2
    seq = PoseSequence.empty(1, width, height)
    seq.body[0] = skeleton(lengths, {c: a for c, (_, a) in REST.items()}, neck=(200, 150))
    seq.detected[:] = True
    return seq


def driving(num_frames=12, offset=(300.0, 80.0)) -> tuple[PoseSequence, dict]:
    """A moving driving skeleton (arms swing, knee bends, body translates) and its angles per frame."""
    lengths = {c: length for c, (length, _) in REST.items()}
    seq = PoseSequence.empty(num_frames, 640, 360, fps=12)
    angles = []
    for t in range(num_frames):
        ang = {c: a for c, (_, a) in REST.items()}
        ang[3] += 40 * math.sin(t / 2)
        ang[4] += 70 * math.sin(t / 2)
        ang[6] -= 30 * math.cos(t / 3)
        ang[10] += 20 * math.sin(t)
        neck = (offset[0] + 5 * t, offset[1] + 2 * t)
        seq.body[t] = skeleton(lengths, ang, neck)
        seq.hands[t, 0] = hand_at(seq.body[t, 7])
        seq.hands[t, 1] = hand_at(seq.body[t, 4])
        seq.face[t, :, :2] = seq.body[t, 0, :2] + np.stack([np.linspace(-10, 10, 68), np.linspace(-5, 12, 68)], -1)
        seq.face[t, :, 2] = 1
        angles.append(ang)
    seq.detected[:] = True
    return seq, {"angles": angles}


def bone(body, c):
    p = BODY_PARENT[c]
    d = body[c, :2] - body[p, :2]
    return float(np.hypot(*d)), math.degrees(math.atan2(d[1], d[0]))


def test_bone_lengths_match_reference_and_angles_are_kept():
    ref = reference()
    drv, info = driving()
    out, report = align_pose(drv, ref)
    assert report.method == "bones" and not report.warnings
    assert (out.width, out.height) == (ref.width, ref.height) and len(out) == len(drv)
    for t in range(len(out)):
        for c in BODY_PARENT:
            ref_len, _ = bone(ref.body[0], c)
            out_len, out_ang = bone(out.body[t], c)
            _, drv_ang = bone(drv.body[t], c)
            assert out_len == pytest.approx(ref_len, rel=0.05), (t, c)
            assert (out_ang - drv_ang + 180) % 360 - 180 == pytest.approx(0, abs=0.01), (t, c)


def test_root_trajectory_is_anchored_and_scaled():
    ref = reference(scale=1.5)
    drv, _ = driving()
    out, report = align_pose(drv, ref)
    np.testing.assert_allclose(out.body[0, 1, :2], ref.body[0, 1, :2], atol=1e-3)
    # the driving neck moves (5, 2) px per frame; the aligned one by the global scale times that
    step = out.body[1:, 1, :2] - out.body[:-1, 1, :2]
    np.testing.assert_allclose(step, np.tile([5 * report.scale, 2 * report.scale], (len(out) - 1, 1)), atol=1e-3)
    assert 1.3 < report.scale < 1.9


def test_robust_to_short_or_missing_limb_in_one_frame():
    ref = reference()
    drv, _ = driving()
    drv.body[0, 4, :2] = drv.body[0, 3, :2] + 0.3 * (drv.body[0, 4, :2] - drv.body[0, 3, :2])  # foreshortened
    drv.body[1, 7, 2] = 0.0  # lost
    out, _ = align_pose(drv, ref)
    for t in range(2, len(out)):
        assert bone(out.body[t], 4)[0] == pytest.approx(bone(ref.body[0], 4)[0], rel=0.05)
        assert bone(out.body[t], 7)[0] == pytest.approx(bone(ref.body[0], 7)[0], rel=0.05)
    # the foreshortened frame stays foreshortened by the same factor (the motion is kept)
    assert bone(out.body[0], 4)[0] == pytest.approx(0.3 * bone(ref.body[0], 4)[0], rel=0.05)


def test_occluded_limb_in_reference_uses_its_partner():
    ref = reference()
    ref.body[0, 7, 2] = 0  # left wrist hidden in the reference
    drv, _ = driving()
    out, _ = align_pose(drv, ref)
    assert bone(out.body[3], 7)[0] == pytest.approx(bone(ref.body[0], 4)[0], rel=0.05)


def test_hands_and_face_follow_their_anchors():
    ref = reference()
    drv, _ = driving()
    out, report = align_pose(drv, ref)
    for t in (0, 5):
        np.testing.assert_allclose(out.hands[t, 0, 0, :2], out.body[t, 7, :2], atol=1e-3)
        np.testing.assert_allclose(out.hands[t, 1, 0, :2], out.body[t, 4, :2], atol=1e-3)
        # face keeps its shape: offsets from the nose scale uniformly
        rel_out = out.face[t, :, :2] - out.body[t, 0, :2]
        rel_drv = drv.face[t, :, :2] - drv.body[t, 0, :2]
        k = np.linalg.norm(rel_out) / np.linalg.norm(rel_drv)
        np.testing.assert_allclose(rel_out, k * rel_drv, atol=1e-2)


def test_reference_keypoints_in_another_frame_size_are_rescaled():
    ref = reference(400, 600)
    drv, _ = driving()
    small = ref.scaled(200, 300)
    out, _ = align_pose(drv, small, ref_size=(400, 600))
    assert (out.width, out.height) == (400, 600)
    assert bone(out.body[2], 9)[0] == pytest.approx(bone(ref.body[0], 9)[0], rel=0.05)


def test_box_fit_when_reference_has_no_pose():
    image = np.full((300, 200, 3), 255, np.uint8)
    image[60:260, 70:130] = (30, 120, 200)  # the "character"
    assert find_character_box(image) == (70, 60, 130, 260)
    drv, _ = driving()
    out, report = align_pose(drv, None, ref_image=image)
    assert report.method == "box" and "no person found in the reference" in report.warnings[0]
    assert (out.width, out.height) == (200, 300)
    pts = np.concatenate([out.body[0], out.hands[0].reshape(-1, 3), out.face[0]])[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    assert lo[0] >= 69 and hi[0] <= 131 and lo[1] >= 59 and hi[1] <= 261
    # proportions unchanged: every bone scaled by the same factor
    ratios = [bone(out.body[0], c)[0] / bone(drv.body[0], c)[0] for c in BODY_PARENT]
    np.testing.assert_allclose(ratios, report.scale, rtol=1e-4)


def test_box_fit_on_plain_image_uses_the_frame():
    assert find_character_box(np.zeros((100, 80, 3), np.uint8)) == pytest.approx((4, 5, 76, 95))


def test_canonical_lengths_ignore_missing_points():
    drv, _ = driving()
    drv.body[:, 10, 2] = 0  # right ankle never found: takes the left one's length
    lengths = canonical_lengths(drv.body)
    assert lengths[10] == pytest.approx(REST[13][0], rel=1e-3)
    assert np.isnan(lengths[1])


def test_errors_without_neck():
    drv, _ = driving()
    ref = reference()
    ref.body[0, 1, 2] = 0
    with pytest.raises(InputError, match="no reference image"):
        align_pose(drv, ref)
    drv.body[:, 1, 2] = 0
    with pytest.raises(InputError, match="driving pose"):
        align_to_pose(drv, reference())
