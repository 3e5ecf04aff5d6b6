"""Metrics against independent references.

Oracles:
- `_basicsr_reference`: a float64 numpy + scipy transcription of the protocol in
  the VOTES evaluation and BasicSR's `calculate_psnr/ssim` with `test_y_channel=True`
  (float32 Y intermediates, cv2-style 2-D Gaussian window, "valid" crop). Tolerance 1e-6 dB for PSNR
  (the issue's requirement) and 1e-9 for SSIM.
- scikit-image's `peak_signal_noise_ratio` and `structural_similarity` with Wang et al.'s
  settings (gaussian_weights, sigma 1.5, no sample covariance, data_range 255) for RGB.
"""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from uvssm.base.metrics import MetricConfig, VideoScores, psnr, psnr_ssim, quantize, rgb_to_y, ssim


def _y_reference(rgb_u8: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> Y on 0..255 through BasicSR's float32 steps."""
    x = rgb_u8.astype(np.float32) / np.float32(255.0)
    y = x.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) + 16.0
    return ((y / 255.0).astype(np.float32) * np.float32(255.0)).astype(np.float64)


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    window = np.outer(g / g.sum(), g / g.sum())
    f = lambda x: correlate(x, window, mode="reflect")[5:-5, 5:-5]  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))).mean())


def _basicsr_reference(pred: np.ndarray, gt: np.ndarray, crop: int, y: bool) -> tuple[float, float]:
    pred, gt = pred[crop:-crop, crop:-crop], gt[crop:-crop, crop:-crop]
    if y:
        a, b = _y_reference(pred)[..., None], _y_reference(gt)[..., None]
    else:
        a, b = pred.astype(np.float64), gt.astype(np.float64)
    mse = np.mean((a - b) ** 2)
    p = math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    s = float(np.mean([_ssim_reference(a[..., c], b[..., c]) for c in range(a.shape[2])]))
    return p, s


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(1234)
    gt = rng.integers(0, 256, size=(3, 48, 64, 3), dtype=np.uint8)
    smooth = np.stack([np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((4, 4, 1))) for _ in range(3)]).astype(np.uint8)
    gt = np.where(rng.random(gt.shape) < 0.5, gt, smooth).astype(np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-25, 26, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("color_space", ["y", "rgb"])
@pytest.mark.parametrize("crop", [2, 4])
def test_matches_the_basicsr_protocol(pairs, color_space, crop):
    pred, gt = pairs
    p, s = psnr_ssim(_t(pred), _t(gt), MetricConfig(color_space, crop))
    for i in range(len(gt)):
        ref_p, ref_s = _basicsr_reference(pred[i], gt[i], crop, color_space == "y")
        assert abs(float(p[i]) - ref_p) < 1e-6
        assert abs(float(s[i]) - ref_s) < 1e-9


def test_rgb_matches_scikit_image(pairs):
    pred, gt = pairs
    p = psnr(_t(pred), _t(gt), crop_border=2, color_space="rgb")
    s = ssim(_t(pred), _t(gt), crop_border=2, color_space="rgb")
    for i in range(len(gt)):
        a, b = gt[i, 2:-2, 2:-2], pred[i, 2:-2, 2:-2]
        assert abs(float(p[i]) - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-9
        sk = np.mean([structural_similarity(a[..., c].astype(float), b[..., c].astype(float), gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False, data_range=255) for c in range(3)])
        assert abs(float(s[i]) - sk) < 1e-9


def test_y_is_studio_range_and_unrounded():
    img = torch.tensor([[[[0]], [[0]], [[0]]], [[[255]], [[255]], [[255]]], [[[10]], [[200]], [[77]]]], dtype=torch.uint8)
    y = rgb_to_y(img).flatten().tolist()
    assert y[0] == pytest.approx(16.0, abs=1e-4) and y[1] == pytest.approx(235.0, abs=1e-4)
    exact = 16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 77) / 255
    assert y[2] == pytest.approx(exact, abs=1e-4) and y[2] != round(y[2])


def test_float_inputs_are_clamped_and_rounded_first():
    x = torch.rand(2, 3, 24, 24) * 1.4 - 0.2  # out of range on purpose
    q = quantize(x)
    assert q.dtype == torch.uint8
    assert torch.equal(q, (x.clamp(0, 1) * 255).round().to(torch.uint8))
    assert torch.equal(psnr(x, q, crop_border=0, color_space="rgb"), torch.full((2,), math.inf, dtype=torch.float64))


def test_psnr_value_by_hand():
    gt = torch.full((1, 3, 20, 20), 100, dtype=torch.uint8)
    pred = gt.clone()
    pred[:, :, 10, 10] = 110  # one pixel off by 10 in every channel, inside the crop
    mse = 100 / (16 * 16)
    assert float(psnr(pred, gt, crop_border=2, color_space="rgb")) == pytest.approx(10 * math.log10(255 ** 2 / mse))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), crop_border=0, color_space="rgb")
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 12, 12), crop_border=2, color_space="y")
    with pytest.raises(ValueError, match="color_space"):
        MetricConfig("yuv", 2)


def test_clip_mean_then_mean():
    scores = VideoScores()
    scores.update("a", [30.0, 31.0, 32.0, 33.0])  # clip mean 31.5
    scores.update("b", [40.0])  # clip mean 40
    assert scores.clip_means() == {"a": 31.5, "b": 40.0}
    assert scores.compute() == pytest.approx((31.5 + 40.0) / 2)  # not the frame mean 33.2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(pairs):
    pred, gt = pairs
    cfg = MetricConfig("y", 2)
    cpu = psnr_ssim(_t(pred), _t(gt), cfg)
    gpu = psnr_ssim(_t(pred).cuda(), _t(gt).cuda(), cfg)
    for a, b in zip(cpu, gpu):
        assert torch.allclose(a, b.cpu(), atol=1e-9)
