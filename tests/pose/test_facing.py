"""Which way a figure faces, and the head masks of ``reference_hold``."""

import numpy as np

from animate_anyone.demo import heldout_clip
from animate_anyone.pose.facing import body_facing, face_region, facing_away, head_radius, reference_hold


def test_body_facing_reads_the_shoulders():
    body = np.zeros((4, 18, 3), np.float32)
    body[:, :, 2] = 1
    body[:, :, 1] = np.linspace(0, 100, 18)  # a figure 100 px tall
    body[:, 2, 0] = [40, 60, 49, 40]  # right shoulder
    body[:, 5, 0] = [60, 40, 51, 60]  # left shoulder
    body[3, 5, 2] = 0  # a hidden shoulder: no way to tell
    assert body_facing(body).tolist() == ["front", "back", "side", "side"]
    # against a reference facing the camera only the back view is away; a side reference has no opposite
    assert facing_away(body[0], body).tolist() == [False, True, False, False]
    assert facing_away(body[1], body).tolist() == [True, False, False, False]
    assert not facing_away(body[2], body).any()


def test_hold_hides_the_reference_face_from_frames_seen_from_behind_only():
    clip, _ = heldout_clip(0, 128, 32, 8)  # held-out example 0 turns from the camera
    assert clip.meta["motion_id"].startswith("turn")
    body, face = clip.poses.body, clip.poses.face
    ref, driving = body[0], body[1:]
    assert body_facing(ref[None])[0] == "front"
    away = facing_away(ref, driving)
    assert away.any() and (~away).any()
    masks = reference_hold(ref, driving, (128, 128), face=face[0])
    assert masks.shape == (len(driving), 128, 128)
    assert not masks[~away].any()
    region = face_region(ref, (128, 128), face[0])
    assert (masks[away] == region).all()  # the same part of the reference for every such frame
    # it covers the face landmarks, and little else: the rest of the head and the body stay readable
    x, y = np.round(face[0][face[0][:, 2] > 0.3, :2] - 0.5).astype(int).T
    assert region[y, x].all()
    assert region.sum() < np.pi * (head_radius(ref) * 1.2) ** 2
    ys, _ = np.nonzero(region)
    assert ys.max() < ref[1, 1] + 2  # nothing below the neck
    whole = reference_hold(ref, driving, (128, 128), whole_frames=True)
    assert whole[away].all() and not whole[~away].any()
    # a reference seen from behind: front-facing frames must not read the back of its head
    back = int(np.flatnonzero(away)[-1])
    masks = reference_hold(driving[back], driving, (128, 128))
    assert masks.any(axis=(1, 2)).tolist() == (body_facing(driving) == "front").tolist()
