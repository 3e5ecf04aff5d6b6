"""The field's CPU metric code, as the speed baseline for uvssm's device metrics.

BasicSR (and so the VOTES evaluation) scores one image pair at a time in numpy on the CPU: Y of BT.601 through
float32 steps, `crop_border` pixels removed, PSNR in float64, and SSIM with an 11×11 Gaussian window (σ 1.5)
applied by `cv2.filter2D` and cropped to the valid region. This module follows that protocol step by step (written
here from its description, not copied), with `cv2.filter2D` when OpenCV imports (what BasicSR calls) and
`scipy.ndimage.correlate1d` twice otherwise (the same sums, separably; `ENGINE` says which), so `python -m benchmarks gpu` compares
the device path with what researchers run today rather than with uvssm's own float64 torch path.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import cv2

    ENGINE = f"numpy + cv2.filter2D (OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads)"
except ImportError:  # OpenCV is not a dependency of uvssm
    cv2 = None
    ENGINE = "numpy + scipy.ndimage.correlate1d, separable (OpenCV not installed)"

_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _gaussian() -> np.ndarray:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    return g / g.sum()


_G = _gaussian()
_WINDOW = np.outer(_G, _G)  # BasicSR: cv2.getGaussianKernel(11, 1.5) times its transpose


def _filter_valid(x: np.ndarray) -> np.ndarray:
    if cv2 is not None:
        return cv2.filter2D(x, -1, _WINDOW)[5:-5, 5:-5]
    from scipy.ndimage import correlate1d

    # the window is an outer product, so two 1-D passes give its sums (to rounding) at a fifth of the cost:
    # without OpenCV the baseline is no slower than it need be
    return correlate1d(correlate1d(x, _G, axis=0, mode="reflect"), _G, axis=1, mode="reflect")[5:-5, 5:-5]


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> Y on the 0..255 scale, float64, through BasicSR's float32 steps."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    y = x.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) + 16.0
    return ((y / 255.0).astype(np.float32) * np.float32(255.0)).astype(np.float64)


def psnr_ssim_y(pred: np.ndarray, gt: np.ndarray, crop_border: int) -> tuple[float, float]:
    """PSNR and SSIM of one HWC uint8 RGB pair on Y, `crop_border` pixels cropped (BasicSR, test_y_channel)."""
    if crop_border:
        pred, gt = pred[crop_border:-crop_border, crop_border:-crop_border], gt[crop_border:-crop_border,
                                                                                 crop_border:-crop_border]
    a, b = y_channel(pred), y_channel(gt)
    mse = float(np.mean((a - b) ** 2))
    psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a, var_b = _filter_valid(a * a) - mu_a ** 2, _filter_valid(b * b) - mu_b ** 2
    cov = _filter_valid(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a ** 2 + mu_b ** 2 + _C1) * (var_a + var_b + _C2))
    return psnr, float(ssim_map.mean())
