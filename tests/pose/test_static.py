"""Where a frame shows what the reference shows (``static_mask``, the pipeline's ``reference_keep``)."""

import numpy as np

from animate_anyone.demo import heldout_clip, lab_keep
from animate_anyone.pose.static import static_mask

SIZE = (128, 128)


def _figure() -> np.ndarray:
    """A figure facing the camera, 100 px tall, OpenPose-18 in pixels with scores."""
    b = np.zeros((18, 3))
    b[:, 2] = 1
    xy = {0: (64, 20), 1: (64, 34), 2: (54, 34), 3: (50, 50), 4: (48, 64), 5: (74, 34), 6: (78, 50), 7: (80, 64),
          8: (58, 70), 9: (58, 90), 10: (58, 110), 11: (70, 70), 12: (70, 90), 13: (70, 110),
          14: (61, 18), 15: (67, 18), 16: (58, 20), 17: (70, 20)}  # fmt: skip
    for k, (x, y) in xy.items():
        b[k, :2] = (x, y)
    return b


def test_a_still_figure_is_static_everywhere():
    ref = _figure()
    mask = static_mask({"body": ref}, {"body": np.stack([ref, ref])}, SIZE)
    assert mask.shape == (2, 128, 128) and mask.all()


def test_a_moved_arm_is_redrawn_where_it_was_and_where_it_went():
    ref = _figure()
    drv = ref.copy()
    drv[4, :2] = (30, 40)  # the right wrist goes up and out
    mask = static_mask({"body": ref}, {"body": drv[None]}, SIZE)[0]
    assert not mask[64, 48] and not mask[40, 30] and not mask[52, 39]  # old wrist, new wrist, the new forearm
    assert mask[110, 70] and mask[100, 64] and mask[5, 120] and mask[64, 80]  # legs, background, the other arm
    # the margin grows with the figure: a half-size figure gets a narrower band
    small = ref.copy()
    small[:, :2] = small[:, :2] / 2
    small_drv = small.copy()
    small_drv[4, :2] = (15, 20)
    narrow = static_mask({"body": small}, {"body": small_drv[None]}, SIZE)[0]
    assert (~narrow).sum() < (~mask).sum() / 2


def test_tolerance_keeps_subpixel_jitter_static_and_visibility_changes_count_as_moves():
    ref = _figure()
    drv = np.stack([ref, ref, ref])
    drv[0, 7, :2] += 0.3  # under 0.004 * 128 = 0.5 px
    drv[1, 7, :2] += 2.0
    drv[2, 7, 2] = 0.0  # the left wrist disappears
    mask = static_mask({"body": ref}, {"body": drv}, SIZE)
    assert mask[0].all()
    assert not mask[1, 64, 80] and not mask[2, 64, 80] and mask[2, 110, 58]


def test_a_moving_head_takes_what_sticks_out_above_it_and_the_mouth_alone_stays_small():
    ref = _figure()
    drv = ref.copy()
    drv[[0, 14, 15, 16, 17], 0] += 3  # the head turns a little
    mask = static_mask({"body": ref}, {"body": drv[None]}, SIZE)[0]
    assert not mask[20, 64] and not mask[2, 64]  # the head, and above it (hair, an antenna)
    assert mask[90, 58] and mask[60, 80]
    face = np.zeros((68, 3))
    face[:, 2] = 1
    face[:, :2] = (64, 22)
    face_drv = face.copy()
    face_drv[48:68, 1] += 2  # the mouth opens
    mask = static_mask({"body": ref, "face": face}, {"body": ref[None], "face": face_drv[None]}, SIZE)[0]
    assert not mask[23, 64] and mask[34, 64] and mask[5, 64]


def test_no_torso_in_the_reference_keeps_nothing():
    ref = _figure()
    ref[[8, 11], 2] = 0
    assert not static_mask({"body": ref}, {"body": ref[None]}, SIZE).any()


def test_lab_keep_reads_a_talking_clip_as_mostly_static():
    clip, sl = heldout_clip(60, 128, 8, 8)  # held-out example 60: a talking human
    assert clip.meta["motion_id"].startswith("talk")
    keep = lab_keep(clip, sl, 128, 1.0)
    assert keep.shape == (8, 128, 128) and keep.mean() > 0.7
    body, ref = clip.poses.body[sl], clip.poses.body[0]
    moved = np.linalg.norm(body[:, :, :2] - ref[None, :, :2], axis=-1) > 0.6
    assert moved.any()
    for t in range(len(body)):  # no point that moved is kept, where it was nor where it went
        for pts in (body[t, moved[t], :2], ref[moved[t], :2]):
            x, y = np.clip(np.floor(pts).astype(int), 0, 127).T
            assert not keep[t, y, x].any()
    assert lab_keep(clip, sl, 128, 0.0) is None
