"""Frame metrics against ground truth, and the Fréchet distance behind FID / FID-VID / FVD.

Conventions shared by every function here:

* Frames are channels-last, ``(frames, height, width, channels)`` or one frame ``(height, width,
  channels)``, as numpy arrays or torch tensors. ``uint8`` frames span [0, 255]; float frames are
  taken to span [0, 1] unless ``data_range`` says otherwise.
* Per-frame metrics return a float64 numpy array ``(frames,)``; averaging is left to the caller so
  that reports can show curves and means from the same numbers.
* Everything is computed in float64. SSIM filters with scipy.ndimage when it is installed and no
  ``device`` is given, else with torch (any device); both paths are tested against scikit-image.

PSNR has two conventions in the pose-animation literature (docs/evaluation.md has the full story):
:func:`psnr` is the textbook definition (scikit-image's ``peak_signal_noise_ratio``);
:func:`psnr_disco_uint8` reproduces DisCo's released evaluation code, which subtracted and squared
``uint8`` arrays, so every difference and square wraps modulo 256. Its values cannot fall below
``10·log10(255²/255) ≈ 24.07 dB``; TikTok numbers near 29-31 dB in DisCo / Animate Anyone / Champ
tables come from that code, numbers near 13-21 dB (Animate-X's "PSNR*" column) from the textbook one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

# SSIM constants (Wang et al. 2004, and scikit-image's defaults).
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_SIGMA, SSIM_TRUNCATE = 1.5, 3.5
# DisCo's cap for identical frames (their psnr_eval returns 100 when the MSE is 0).
PSNR_IDENTICAL_DB = 100.0


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _frames(x, name: str) -> np.ndarray:
    """``(frames, height, width, channels)`` view of ``x`` (a single frame gets a leading axis)."""
    arr = _to_numpy(x)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected (frames, height, width, channels) or (height, width, channels), got {arr.shape}")
    return arr


def infer_data_range(x) -> float:
    """255 for ``uint8`` frames, 1.0 for anything else (floats are expected in [0, 1])."""
    return 255.0 if _to_numpy(x).dtype == np.uint8 else 1.0


def _pair(pred, target, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    a, b = _frames(pred, "pred"), _frames(target, "target")
    if a.shape != b.shape:
        raise ValueError(f"pred and target differ in shape: {a.shape} vs {b.shape} (bring them to a common size first)")
    if data_range is None:
        ra, rb = infer_data_range(a), infer_data_range(b)
        if ra != rb:
            raise ValueError(f"pred is {a.dtype} and target is {b.dtype}: pass data_range explicitly")
        data_range = ra
    return a, b, float(data_range)


def _per_frame(a: np.ndarray, b: np.ndarray, fn, chunk: int = 16) -> np.ndarray:
    """``fn(a_chunk_float64, b_chunk_float64) -> (n,)`` over chunks of frames (bounded memory)."""
    out = [fn(a[i : i + chunk].astype(np.float64), b[i : i + chunk].astype(np.float64)) for i in range(0, len(a), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def _mean_sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = x - y
    return np.mean(d * d, axis=(1, 2, 3))


def _mean_abs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(x - y), axis=(1, 2, 3))


def mse(pred, target) -> np.ndarray:
    """Mean squared error per frame, in the inputs' own units; ``(frames,)``."""
    a, b, _ = _pair(pred, target, 1.0)
    return _per_frame(a, b, _mean_sq)


def l1(pred, target, data_range: float | None = None) -> np.ndarray:
    """Mean absolute error per frame with values scaled to [0, 1] (``|pred - target| / data_range``).

    DisCo's released "L1" (values like 3.78E-04 in the TikTok tables) is a different number: the mean
    absolute error on the 0-255 scale divided again by ``height × width``, i.e.
    ``l1 * 255 / (height * width)``; :func:`l1_disco` computes it.
    """
    a, b, r = _pair(pred, target, data_range)
    return _per_frame(a, b, _mean_abs) / r


def l1_disco(pred, target, data_range: float | None = None) -> np.ndarray:
    """DisCo's L1 convention: 0-255 mean absolute error divided by ``height × width``."""
    a, _, _ = _pair(pred, target, data_range)
    return l1(pred, target, data_range) * 255.0 / (a.shape[1] * a.shape[2])


def psnr(pred, target, data_range: float | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio per frame in dB: ``10·log10(data_range² / MSE)``.

    Identical to ``skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=data_range)``
    frame by frame (MSE in float64 over all pixels and channels); ``inf`` for identical frames.
    """
    a, b, r = _pair(pred, target, data_range)
    err = _per_frame(a, b, _mean_sq)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10((r * r) / err)


def psnr_disco_uint8(pred, target) -> np.ndarray:
    """PSNR as computed by DisCo's released ``psnr_eval`` (uint8 wrap-around), per frame in dB.

    Both inputs are quantised to ``uint8`` (floats in [0, 1] are scaled by 255 and rounded). The
    code being reproduced is ``mse = np.mean((a - b) ** 2)`` on ``uint8`` arrays: the difference
    wraps modulo 256 and so does its square, so every squared error lands in [0, 255] and the
    result is at least 24.07 dB; frames with MSE 0 get 100 dB. Differences up to ±15 survive the
    wrap unchanged, so near-identical frames agree with :func:`psnr`; large errors are hidden.
    Kept only to compare with published tables; use :func:`psnr` for anything else.
    """
    a, b, _ = _pair(pred, target, None)
    a8, b8 = _quantise_uint8(a), _quantise_uint8(b)
    wrapped = (a8 - b8) ** 2  # uint8 arithmetic: both operations wrap modulo 256, as in the original
    err = wrapped.reshape(len(wrapped), -1).mean(axis=1, dtype=np.float64)
    out = np.full(len(err), PSNR_IDENTICAL_DB)
    nz = err > 0
    out[nz] = 20.0 * np.log10(255.0 / np.sqrt(err[nz]))
    return out


def _quantise_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    return np.clip(np.round(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The 1-D kernel of ``scipy.ndimage.gaussian_filter``: radius ``int(truncate·sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 / (sigma * sigma) * x * x)
    return w / w.sum()


def _pad_symmetric(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """scipy.ndimage's ``mode='reflect'`` (edge sample repeated: d c b a | a b c d | d c b a)."""
    n = x.shape[dim]
    head = x.narrow(dim, 0, r).flip(dim)
    tail = x.narrow(dim, n - r, r).flip(dim)
    return torch.cat([head, x, tail], dim=dim)


def ssim(
    pred,
    target,
    data_range: float | None = None,
    gaussian_weights: bool = True,
    sigma: float = SSIM_SIGMA,
    win_size: int | None = None,
    use_sample_covariance: bool = False,
    device: str | torch.device | None = None,
    chunk_frames: int = 8,
) -> np.ndarray:
    """Structural similarity per frame (mean over channels of each channel's mean SSIM map).

    With the defaults this equals, to float64 rounding, scikit-image's
    ``structural_similarity(target, pred, data_range=data_range, channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` — the settings of Wang et al.
    2004 (11×11 Gaussian window, σ = 1.5, truncated at 3.5σ; K1 = 0.01, K2 = 0.03). Local statistics
    use scipy's 'reflect' boundaries and the map is averaged after cropping ``(win_size - 1) // 2``
    pixels from every border, as scikit-image does. ``gaussian_weights=False`` switches to a
    ``win_size`` × ``win_size`` uniform window (scikit-image's default is 7 with
    ``use_sample_covariance=True``; that is what DisCo's code used, on grey frames).
    ``device`` (e.g. ``"cuda"``) runs the filtering in torch there; by default scipy does it on CPU.
    """
    a, b, r = _pair(pred, target, data_range)
    if gaussian_weights:
        kernel = gaussian_window(sigma)
        win = kernel.size
    else:
        win = 7 if win_size is None else int(win_size)
        if win < 3 or win % 2 == 0:
            raise ValueError(f"win_size must be odd and at least 3, got {win}")
        kernel = np.full(win, 1.0 / win)
    if min(a.shape[1], a.shape[2]) < win:
        raise ValueError(f"frames of {a.shape[2]}x{a.shape[1]} are smaller than the {win}x{win} SSIM window")
    ndim = 2
    cov_norm = win**ndim / (win**ndim - 1.0) if use_sample_covariance else 1.0
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    pad = (win - 1) // 2
    frames, height, width, channels = a.shape
    filt = _filter_backend(kernel, device)
    out = np.empty(frames, dtype=np.float64)
    for start in range(0, frames, chunk_frames):
        stop = min(start + chunk_frames, frames)
        # (n, h, w, c) -> (n * c, h, w): every channel of every frame filtered independently
        x = np.moveaxis(a[start:stop], 3, 1).reshape(-1, height, width).astype(np.float64)
        y = np.moveaxis(b[start:stop], 3, 1).reshape(-1, height, width).astype(np.float64)
        x, y = filt.prepare(x), filt.prepare(y)
        ux, uy = filt(x), filt(y)
        uxx, uyy, uxy = filt(x * x), filt(y * y), filt(x * y)
        vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        s = filt.numpy(s[:, pad : height - pad, pad : width - pad])
        out[start:stop] = s.reshape(stop - start, channels, -1).mean(axis=2).mean(axis=1)
    return out


class _ScipyFilter:
    """scipy.ndimage.correlate1d along height then width (what scikit-image's filters do)."""

    def __init__(self, kernel: np.ndarray) -> None:
        from scipy import ndimage

        self.kernel, self.ndimage = kernel, ndimage

    prepare = numpy = staticmethod(lambda x: x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = self.ndimage.correlate1d(x, self.kernel, axis=1, mode="reflect")
        return self.ndimage.correlate1d(x, self.kernel, axis=2, mode="reflect")


class _TorchFilter:
    """The same filter in torch (any device): a weighted sum of shifted, symmetrically padded views."""

    def __init__(self, kernel: np.ndarray, device) -> None:
        self.weights, self.device = [float(w) for w in kernel], device

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device)

    @staticmethod
    def numpy(x: torch.Tensor) -> np.ndarray:
        return x.cpu().numpy()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        r = (len(self.weights) - 1) // 2
        for dim in (1, 2):
            padded = _pad_symmetric(x, r, dim)
            n = x.shape[dim]
            out = padded.narrow(dim, 0, n) * self.weights[0]
            for k in range(1, len(self.weights)):
                out.add_(padded.narrow(dim, k, n), alpha=self.weights[k])
            x = out
        return x


def _filter_backend(kernel: np.ndarray, device):
    """scipy on CPU when installed (about 10x faster), torch otherwise or when a device is given."""
    if device is None:
        try:
            return _ScipyFilter(kernel)
        except ImportError:
            pass
    return _TorchFilter(kernel, device)


def rgb_to_gray_opencv(frames) -> np.ndarray:
    """``cv2.cvtColor(rgb, COLOR_RGB2GRAY)`` for uint8 frames: OpenCV's fixed-point luma
    ``(4899·R + 9617·G + 1868·B + 2^13) >> 14``; returns ``(..., height, width, 1)`` uint8."""
    arr = _quantise_uint8(_to_numpy(frames))
    r, g, b = (arr[..., c].astype(np.int32) for c in range(3))
    y = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14
    return y.astype(np.uint8)[..., None]


def ssim_disco(pred, target) -> np.ndarray:
    """SSIM as DisCo's released code computed it: grey frames (OpenCV luma), scikit-image defaults
    (7×7 uniform window, sample covariance, data range 255). For comparison with their tables only."""
    a, b, _ = _pair(pred, target, None)
    out = [ssim(rgb_to_gray_opencv(a[i : i + 16]), rgb_to_gray_opencv(b[i : i + 16]), data_range=255.0,
                gaussian_weights=False, win_size=7, use_sample_covariance=True) for i in range(0, len(a), 16)]  # fmt: skip
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# Fréchet distance between Gaussians fitted to features (FID, FID-VID, FVD)
# --------------------------------------------------------------------------------------------


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(dim,)`` and unbiased covariance ``(dim, dim)`` of ``(samples, dim)`` features."""
    f = _to_numpy(features).astype(np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (samples, dim), got {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|² + Tr(sigma1) + Tr(sigma2) - 2·Tr((sigma1·sigma2)^½)``.

    ``Tr((S1 S2)^½)`` is computed as the sum of square roots of the eigenvalues of the symmetric
    ``S1^½ S2 S1^½`` (same spectrum), which needs no scipy and stays real and finite for the singular
    covariances that few samples give; it equals the usual ``scipy.linalg.sqrtm`` formula wherever
    that one is well defined (tested to 1e-6).
    """
    mu1, mu2 = np.atleast_1d(_to_numpy(mu1)).astype(np.float64), np.atleast_1d(_to_numpy(mu2)).astype(np.float64)
    s1, s2 = np.atleast_2d(_to_numpy(sigma1)).astype(np.float64), np.atleast_2d(_to_numpy(sigma2)).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape} and {mu2.shape}, covariances {s1.shape} and {s2.shape}")
    root1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_from_features(features_a, features_b) -> float:
    """:func:`frechet_distance` between Gaussians fitted to two ``(samples, dim)`` feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def summarise(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the finite values (NaN when none): how per-frame curves become one number."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan
