"""Frame metrics and the Fréchet distance against scikit-image / scipy (acceptance 1 of issue 5)."""

import numpy as np
import pytest

from animate_anyone.evaluation import metrics as M
from tests.conftest import ASSETS

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is in the eval/dev extras")
SK_SETTINGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)


def _noisy_pair(shape, seed=0, spread=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-spread, spread + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def _sk_ssim(pred, gt, data_range):
    return np.array([skimage_metrics.structural_similarity(g, p, data_range=data_range, **SK_SETTINGS)
                     for p, g in zip(pred, gt)])  # fmt: skip


def _sk_psnr(pred, gt, data_range):
    return np.array([skimage_metrics.peak_signal_noise_ratio(g, p, data_range=data_range) for p, g in zip(pred, gt)])


@pytest.mark.parametrize("shape", [(3, 40, 53, 3), (2, 11, 17, 3), (2, 64, 48, 1)])
@pytest.mark.parametrize("device", [None, "cpu"])  # None: scipy filtering, "cpu": the torch path
def test_ssim_matches_skimage_on_random_uint8(shape, device):
    a, b = _noisy_pair(shape)
    np.testing.assert_allclose(M.ssim(a, b, device=device), _sk_ssim(a, b, 255), rtol=0, atol=1e-6)


def test_ssim_matches_skimage_on_random_float():
    rng = np.random.default_rng(1)
    a = rng.random((2, 37, 41, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    np.testing.assert_allclose(M.ssim(a, b), _sk_ssim(a, b, 1.0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(M.ssim(a, b, device="cpu"), _sk_ssim(a, b, 1.0), rtol=0, atol=1e-6)


def test_psnr_and_l1_match_definitions_on_random_frames():
    a, b = _noisy_pair((4, 32, 24, 3), seed=2)
    np.testing.assert_allclose(M.psnr(a, b), _sk_psnr(a, b, 255), rtol=0, atol=1e-6)
    af, bf = a / 255.0, b / 255.0
    np.testing.assert_allclose(M.psnr(af, bf), _sk_psnr(af, bf, 1.0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(M.l1(a, b), np.abs(af - bf).mean(axis=(1, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(M.l1_disco(a, b), np.abs(af - bf).mean(axis=(1, 2, 3)) * 255 / (32 * 24), atol=1e-12)
    assert np.isinf(M.psnr(a, a)).all() and (M.ssim(a, a) == 1).all()


def _real_frames():
    video = ASSETS / "drive_dance_01.mp4"
    if not video.is_file():
        pytest.skip(f"shared asset {video} not found")
    from animate_anyone.data.video_io import read_video

    frames = read_video(video, max_frames=12).frames
    return frames[[0, 4]], frames[[6, 11]]  # two real frame pairs, the person moved in between


def test_ssim_and_psnr_match_skimage_on_real_frames():
    pred, gt = _real_frames()
    np.testing.assert_allclose(M.ssim(pred, gt), _sk_ssim(pred, gt, 255), rtol=0, atol=1e-6)
    np.testing.assert_allclose(M.psnr(pred, gt), _sk_psnr(pred, gt, 255), rtol=0, atol=1e-6)
    pf, gf = pred / 255.0, gt / 255.0
    np.testing.assert_allclose(M.ssim(pf, gf), _sk_ssim(pf, gf, 1.0), rtol=0, atol=1e-6)


def test_ssim_disco_is_skimage_defaults_on_grey_frames():
    pred, gt = _noisy_pair((2, 30, 30, 3), seed=3)
    gp, gg = M.rgb_to_gray_opencv(pred)[..., 0], M.rgb_to_gray_opencv(gt)[..., 0]
    ref = [skimage_metrics.structural_similarity(p, g) for p, g in zip(gp, gg)]  # skimage defaults, uint8
    np.testing.assert_allclose(M.ssim_disco(pred, gt), ref, rtol=0, atol=1e-6)
    # OpenCV's fixed-point luma on pure colours: round(0.299 * 255) etc.
    pure = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], np.uint8)
    assert M.rgb_to_gray_opencv(pure)[0, 0, :, 0].tolist() == [76, 150, 29]


def test_psnr_disco_uint8_reproduces_the_wraparound_code():
    pred, gt = _noisy_pair((3, 20, 20, 3), seed=4, spread=120)
    # DisCo's psnr_eval: mse = np.mean((a - b) ** 2) on uint8 arrays; 100 dB when mse == 0
    expected = [20 * np.log10(255 / np.sqrt(np.mean((p - g) ** 2))) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(M.psnr_disco_uint8(pred, gt), expected, atol=1e-9)
    assert (M.psnr_disco_uint8(pred, gt) >= 10 * np.log10(255) - 1e-9).all()  # bounded below by 24.07 dB
    assert (M.psnr(pred, gt) < M.psnr_disco_uint8(pred, gt) - 5).all()  # large errors are hidden
    small_a, small_b = _noisy_pair((1, 20, 20, 3), seed=5, spread=15)  # |d| <= 15 survives the wrap
    np.testing.assert_allclose(M.psnr_disco_uint8(small_a, small_b), M.psnr(small_a, small_b), atol=1e-9)
    assert M.psnr_disco_uint8(pred, pred).tolist() == [100.0] * 3


def _scipy_frechet(mu1, s1, mu2, s2):
    from scipy import linalg

    covmean = np.real(linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("dim,n", [(8, 50), (64, 400)])
def test_frechet_distance_matches_scipy_sqrtm(dim, n):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(dim)
    fa = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))
    fb = rng.normal(0.3, 1.2, size=(n, dim)) @ rng.normal(size=(dim, dim))
    stats_a, stats_b = M.feature_statistics(fa), M.feature_statistics(fb)
    ours = M.frechet_distance(*stats_a, *stats_b)
    assert abs(ours - _scipy_frechet(*stats_a, *stats_b)) < 1e-6
    assert abs(M.frechet_distance_from_features(fa, fb) - ours) < 1e-12
    assert abs(M.frechet_distance(*stats_a, *stats_a)) < 1e-6


def test_frechet_distance_stays_finite_for_singular_covariances():
    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(5, 32)), rng.normal(size=(7, 32)) + 1  # fewer samples than dimensions
    d = M.frechet_distance_from_features(fa, fb)
    assert np.isfinite(d) and d > 0
    with pytest.raises(ValueError, match="at least 2"):
        M.feature_statistics(fa[:1])


def test_metrics_reject_mismatched_inputs():
    a, b = _noisy_pair((1, 20, 20, 3))
    with pytest.raises(ValueError, match="differ in shape"):
        M.psnr(a, b[:, :10])
    with pytest.raises(ValueError, match="data_range"):
        M.ssim(a, b / 255.0)
    with pytest.raises(ValueError, match="smaller than"):
        M.ssim(a[:, :8, :8], b[:, :8, :8])
