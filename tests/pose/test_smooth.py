"""Gap filling, One-Euro smoothing and the cleaning report, on synthetic trajectories."""

import numpy as np
import pytest

from animate_anyone.pose import PoseSequence, clean_sequence, jitter
from animate_anyone.pose.smooth import fill_gaps, one_euro


def _moving(num_frames=60, noise=0.0, seed=0) -> PoseSequence:
    """Every body point moving on a smooth curve, plus Gaussian noise (pixels)."""
    rng = np.random.default_rng(seed)
    seq = PoseSequence.empty(num_frames, 320, 240, fps=24)
    t = np.arange(num_frames)[:, None]
    k = np.arange(18)[None]
    seq.body[..., 0] = 60 + 8 * k + 30 * np.sin(t / 8 + k)
    seq.body[..., 1] = 60 + 5 * k + 20 * np.cos(t / 10)
    seq.body[..., :2] += rng.normal(0, noise, seq.body[..., :2].shape)
    seq.body[..., 2] = 1
    seq.detected[:] = True
    return seq


def test_fill_gaps_interpolates_short_gaps_only():
    pts = np.zeros((10, 1, 3), np.float32)
    pts[:, 0, 0] = np.arange(10) * 2.0
    pts[:, 0, 2] = 1
    valid = np.ones((10, 1), bool)
    valid[[2, 3]] = False  # short gap
    valid[5:9] = False  # long gap
    pts[~valid[:, 0]] = 0
    out, ok = fill_gaps(pts, valid, max_gap=2)
    assert ok[:, 0].tolist() == [True] * 5 + [False] * 4 + [True]
    np.testing.assert_allclose(out[2:4, 0, 0], [4, 6])
    assert out[2, 0, 2] == 1 and out[6, 0, 2] == 0


def test_one_euro_removes_noise_and_follows_motion():
    clean, noisy = _moving(), _moving(noise=1.5)
    valid = np.ones((60, 18), bool)
    out = one_euro(noisy.body, valid, 24, 320)
    err_before = np.abs(noisy.body[..., :2] - clean.body[..., :2]).mean()
    err_after = np.abs(out[..., :2] - clean.body[..., :2]).mean()
    assert err_after < 0.6 * err_before
    # a clean trajectory is barely changed (no lag from the forward + backward passes)
    drift = np.abs(one_euro(clean.body, valid, 24, 320)[..., :2] - clean.body[..., :2])
    assert drift.mean() < 0.5 and drift.max() < 3


def test_clean_sequence_reports_and_fills_missed_frames():
    seq = _moving(noise=1.0)
    seq.body[[10, 11]] = 0
    seq.body[40:59] = 0  # longer than max_gap (0.5 s = 12 frames): left empty
    seq.detected[[10, 11]] = False
    seq.detected[40:59] = False
    out, report = clean_sequence(seq)
    assert report.missed == [10, 11] + list(range(40, 59))
    assert report.filled == [10, 11]
    assert (out.body[10, :, 2] > 0).all() and (out.body[45, :, 2] == 0).all()
    assert out.detected.tolist() == seq.detected.tolist()  # filled frames stay flagged
    assert report.detection_rate == pytest.approx(39 / 60)
    assert report.jitter_after < 0.5 * report.jitter_before
    text = str(report)
    assert "39/60" in text and "frames 10-11, 40-58" in text and "2 interpolated, 19 left empty" in text
    assert out.meta["cleaning"]["missed"] == report.missed


def test_no_smoothing_keeps_points():
    seq = _moving(noise=1.0)
    out, report = clean_sequence(seq, smooth=False)
    np.testing.assert_array_equal(out.body, seq.body)
    assert not report.smoothed and "jitter" not in str(report)


def test_jitter_is_zero_for_linear_motion():
    seq = PoseSequence.empty(5, 100, 100)
    seq.body[..., 0] = np.arange(5)[:, None] * 3
    seq.body[..., 2] = 1
    assert jitter(seq) == pytest.approx(0, abs=1e-6)
    assert np.isnan(jitter(seq.frames(slice(0, 2))))


def test_single_frame_report_has_no_jitter():
    seq = _moving(num_frames=1)
    _, report = clean_sequence(seq)
    assert str(report) == "pose: person found in 1/1 frames"
