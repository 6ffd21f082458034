"""Face-reenactment landmark maps: upper-face mask, mouth re-centring (non-square frames, frame 0)."""

import numpy as np
import pytest

from animate_anyone.pose.face import MOUTH_68, draw_face_maps, face_maps, face_points, retarget_face
from animate_anyone.pose.keypoints import PoseSequence
from tests.conftest import ASSETS


def _face_seq(t=3, w=160, h=96, shift=(0.0, 0.0)):
    seq = PoseSequence.empty(t, w, h)
    rng = np.random.default_rng(0)
    base = np.stack([rng.uniform(50, 90, 68), rng.uniform(20, 70, 68)], 1)
    base[36:48, 1] = 35  # eyes high
    base[48:68, 1] = rng.uniform(60, 70, 20)  # mouth low
    for i in range(t):
        seq.face[i, :, :2] = base + np.array(shift) * i
        seq.face[i, :, 2] = 1
    return seq


def test_pupils_are_eye_centroids():
    seq = _face_seq()
    pts = face_points(seq)
    assert pts.shape == (3, 70, 3)
    np.testing.assert_allclose(pts[0, 68, :2], seq.face[0, 36:42, :2].mean(0), atol=1e-4)


def test_upper_map_is_blanked_below_mask_ratio():
    seq = _face_seq()
    upper, _ = draw_face_maps(face_points(seq)[0], 160, 96, mask_ratio=0.55)
    assert upper[: int(96 * 0.55)].any()
    assert not upper[int(96 * 0.55):].any()
    assert (upper[35, :, 1] == 255).any() and (upper.reshape(-1, 3) == (255, 255, 0)).all(1).any()  # pupils


def test_mouth_map_is_centred_on_non_square_frames_and_frame_0():
    # the face moves across frames: the mouth map must stay put (head translation removed),
    # centred with x on W/2 and y on H/2, frame 0 included
    seq = _face_seq(t=3, w=160, h=96, shift=(7.0, -3.0))
    _, mouth = face_maps(seq)
    assert np.array_equal(mouth[0], mouth[1]) and np.array_equal(mouth[1], mouth[2])
    pts = face_points(seq)[0]
    keep = [i for i in range(70) if i not in (60, 64)]
    centroid = pts[keep, :2].mean(0)
    expected = pts[list(MOUTH_68), :2].mean(0) + np.array([80, 48]) - centroid
    ys, xs = np.nonzero(mouth[0, :, :, 1])
    assert abs(xs.mean() - expected[0]) < 1.5 and abs(ys.mean() - expected[1]) < 1.5
    assert not mouth[0, :, :, 0].any()  # green dots only


def test_retarget_maps_driving_face_onto_source_box():
    drv = _face_seq(t=2)
    src = drv.face[0].copy()
    src[:, :2] = src[:, :2] * 2 + 10
    out = retarget_face(drv, src, 400, 300)
    np.testing.assert_allclose(out.face[0, :, :2], src[:, :2], atol=1e-3)
    assert (out.width, out.height) == (400, 300)


@pytest.mark.parametrize("name", ["talk_01.mp4", "talk_02.mp4"])
def test_face_found_in_talking_head_videos(name):
    """Acceptance: the bundled face mesh finds the face in >= 95 % of the frames of real talking heads."""
    pytest.importorskip("mediapipe")
    from animate_anyone.pose.extract import extract_from_path

    path = ASSETS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (shared assets)")
    seq, report = extract_from_path(path)
    assert report.num_frames == len(seq) >= 100
    assert report.face_detection_rate >= 0.95, report.face_summary()
    # the 70 drawn landmarks are inside the frame where the face was found
    pts = face_points(seq)
    ok = pts[..., 2] >= 0.3
    assert ok.mean() > 0.9
    assert (pts[..., 0][ok] >= 0).all() and (pts[..., 0][ok] < seq.width).all()


def test_face_report_counts_frames_without_a_face():
    from animate_anyone.pose.smooth import clean_sequence

    seq = _face_seq(t=7)  # a face in every frame
    seq.face[2, :, 2] = 0.0  # frame 2: face lost
    seq.face[3, :40, 2] = 0.0  # frame 3: 40 of 68 points lost -> not a face
    seq.face[4, :20, 2] = 0.0  # frame 4: 48 of 68 still there -> a face
    out, report = clean_sequence(seq, smooth=False)
    assert report.face_missed == [2, 3]
    assert report.face_detection_rate == pytest.approx(1 - 2 / len(seq))
    assert "missed frames 2-3" in report.face_summary()
    assert (out.face[2, :, 2] > 0).all()  # interpolated from the neighbours
