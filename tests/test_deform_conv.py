"""The pure-torch DCNv2 against a naive per-pixel transcription of the CUDA kernel's sampling rule,
gradcheck, and torchvision where it runs (CUDA)."""

from __future__ import annotations

import math

import pytest
import torch

from models.ops import deform_conv
from models.ops.deform_conv import deform_conv2d


def _bilinear(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """One sample of img (C, H, W) the way deform_conv_cuda_kernel.cu / torchvision do it."""
    c, h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return img.new_zeros(c)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    out = img.new_zeros(c)
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                out = out + wy * wx * img[:, yy, xx]
    return out


def naive_deform_conv2d(inp, offset, weight, bias, stride, padding, dilation, mask):
    b, c_in, h, w = inp.shape
    c_out, cpg, kh, kw = weight.shape
    groups = c_in // cpg
    h_out, w_out = offset.shape[2:]
    taps = kh * kw
    dg = offset.shape[1] // (2 * taps)
    cdg = c_in // dg
    out = inp.new_zeros(b, c_out, h_out, w_out)
    for n in range(b):
        for oy in range(h_out):
            for ox in range(w_out):
                cols = inp.new_zeros(c_in, kh, kw)
                for g in range(dg):
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = float(offset[n, 2 * (g * taps + k), oy, ox])
                            dx = float(offset[n, 2 * (g * taps + k) + 1, oy, ox])
                            y = oy * stride - padding + i * dilation + dy
                            x = ox * stride - padding + j * dilation + dx
                            v = _bilinear(inp[n, g * cdg:(g + 1) * cdg], y, x)
                            if mask is not None:
                                v = v * mask[n, g * taps + k, oy, ox]
                            cols[g * cdg:(g + 1) * cdg, i, j] = v
                for o in range(c_out):
                    gi = o // (c_out // groups)
                    out[n, o, oy, ox] = (weight[o] * cols[gi * cpg:(gi + 1) * cpg]).sum()
                    if bias is not None:
                        out[n, o, oy, ox] += bias[o]
    return out


def _case(seed, b=2, c_in=4, c_out=6, h=6, w=7, k=3, dg=2, groups=1, stride=1, padding=1, dilation=1,
          scale=2.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    h_out = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    inp = torch.randn(b, c_in, h, w, generator=g, dtype=dtype)
    offset = torch.randn(b, 2 * dg * k * k, h_out, w_out, generator=g, dtype=dtype) * scale
    weight = torch.randn(c_out, c_in // groups, k, k, generator=g, dtype=dtype)
    bias = torch.randn(c_out, generator=g, dtype=dtype)
    mask = torch.rand(b, dg * k * k, h_out, w_out, generator=g, dtype=dtype)
    return inp, offset, weight, bias, mask, dict(stride=stride, padding=padding, dilation=dilation)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1),
    dict(dilation=2, padding=2, dg=1),
    dict(groups=2, dg=4, c_in=8),
    dict(k=1, padding=0),
    dict(scale=8.0),  # most samples fall outside the image
])
def test_matches_naive_reference(kwargs):
    inp, offset, weight, bias, mask, conv = _case(0, **kwargs)
    ours = deform_conv2d(inp, offset, weight, bias, mask=mask, backend="torch", **conv)
    ref = naive_deform_conv2d(inp, offset, weight, bias, conv["stride"], conv["padding"], conv["dilation"], mask)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_integer_offsets_at_borders_and_no_mask():
    """Whole-pixel offsets land exactly on pixels or exactly on the −1 / H boundary."""
    inp, _, weight, bias, _, conv = _case(1, dg=1)
    offset = torch.randint(-3, 4, (2, 18, 6, 7), generator=torch.Generator().manual_seed(2)).double()
    ours = deform_conv2d(inp, offset, weight, bias, backend="torch", **conv)
    ref = naive_deform_conv2d(inp, offset, weight, bias, 1, 1, 1, None)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_zero_offsets_equal_plain_convolution():
    inp, offset, weight, bias, _, conv = _case(3, dtype=torch.float32)
    ours = deform_conv2d(inp, torch.zeros_like(offset), weight, bias, backend="torch", **conv)
    torch.testing.assert_close(ours, torch.nn.functional.conv2d(inp, weight, bias, padding=1), rtol=1e-5, atol=1e-5)


def test_gradcheck_float64():
    inp, offset, weight, bias, mask, conv = _case(4, b=1, c_in=4, c_out=2, h=4, w=5, scale=0.7)
    # keep sampling positions away from integer coordinates, where bilinear interpolation has kinks
    offset = offset + 0.25
    tensors = [t.clone().requires_grad_() for t in (inp, offset, weight, bias, mask)]
    assert torch.autograd.gradcheck(
        lambda i, o, wt, bs, m: deform_conv2d(i, o, wt, bs, mask=m, backend="torch", **conv),
        tensors, eps=1e-6, atol=1e-6)


def test_bad_shapes_are_rejected():
    inp, offset, weight, bias, mask, conv = _case(5)
    with pytest.raises(ValueError, match="offset shape"):
        deform_conv2d(inp, offset[:, :, :-1], weight, bias, mask=mask, backend="torch", **conv)
    with pytest.raises(ValueError, match="mask shape"):
        deform_conv2d(inp, offset, weight, bias, mask=mask[:, :-1], backend="torch", **conv)


def test_no_grad_memory_is_bounded():
    """Without gradients no tensor of 9×(feature map) size is created: the peak extra memory of a
    128-channel 128×128 DCN stays under 2 feature maps (im2col would need 9)."""
    import tracemalloc  # noqa: F401  (torch allocations are not traced; measure with the profiler)

    c, h, w = 128, 128, 128
    inp = torch.randn(1, c, h, w)
    offset = torch.randn(1, 2 * 8 * 9, h, w)
    mask = torch.rand(1, 8 * 9, h, w)
    weight = torch.randn(c, c, 3, 3) * 0.01
    feature_map = inp.numel() * 4
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                 profile_memory=True) as prof:
        deform_conv2d(inp, offset, weight, mask=mask, padding=1, backend="torch")
    peak = _peak_allocated(prof)
    assert peak < 2 * feature_map, f"peak {peak / feature_map:.1f} feature maps"


def _peak_allocated(prof) -> int:
    current = peak = 0
    events = sorted((e for e in prof.events() if e.cpu_memory_usage), key=lambda e: e.time_range.start)
    for e in events:
        if e.cpu_children:
            continue
        current += e.cpu_memory_usage
        peak = max(peak, current)
    return peak


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(deform_conv.torchvision_deform_conv2d() is None, reason="needs torchvision")
def test_torchvision_cuda_agrees():
    inp, offset, weight, bias, mask, conv = _case(6, b=2, c_in=16, c_out=8, h=20, w=24, dg=4, dtype=torch.float32)
    args = [t.cuda() for t in (inp, offset, weight, bias)]
    tv = deform_conv2d(*args, mask=mask.cuda(), backend="torchvision", **conv)
    ours = deform_conv2d(*args, mask=mask.cuda(), backend="torch", **conv)
    torch.testing.assert_close(ours, tv, rtol=1e-4, atol=1e-4)


def test_bf16_positions_stay_exact_on_a_wide_input():
    """Sampling positions are float32 whatever the input's dtype: on a 960-wide input in bfloat16
    the deformable conv errs no more than 3x a plain bfloat16 conv of the same data (bf16 positions
    above 256 px round to whole or even pixels: 0.85 max error, against 0.007 for the plain conv)."""
    from torch.nn import functional as F

    torch.manual_seed(0)
    x = torch.randn(1, 32, 24, 960).bfloat16()
    w = (torch.randn(32, 32, 3, 3) / 17).bfloat16()
    offset = (torch.randn(1, 2 * 9, 24, 960) * 2).bfloat16()
    reference = deform_conv2d(x.float(), offset.float(), w.float(), padding=1, backend="torch")
    dcn_error = (deform_conv2d(x, offset, w, padding=1, backend="torch").float() - reference).abs().max()
    conv_error = (F.conv2d(x, w, padding=1).float() - F.conv2d(x.float(), w.float(), padding=1)).abs().max()
    assert dcn_error <= 3 * conv_error, (float(dcn_error), float(conv_error))
