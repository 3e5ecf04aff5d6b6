"""The pure-torch DCNv2's gradients against the official CUDA kernel's rules, transcribed by hand.

The transcription below follows `ops/dcn/src/deform_conv_cuda_kernel.cu` of BasicSR (the file the official VOTES
repository compiles; mmcv carries the same kernel), function by function, in float64 scalars:

- `dmcn_im2col_bilinear`: the four corners floor(h), floor(h)+1 × floor(w), floor(w)+1, a corner off the image
  read as 0, weights hh·hw, hh·lw, lh·hw, lh·lw summed in that order;
- `modulated_deformable_im2col_gpu_kernel`: a tap samples only if h_im > -1 && w_im > -1 && h_im < height &&
  w_im < width, and its column is val * mask;
- `modulated_deformable_col2im_gpu_kernel` + `dmcn_get_gradient_weight`: the input's gradient, spread from
  cur_h = (int)h_im over dy, dx in -2..2 with |h_im - (cur_h + dy)| < 1, and 0 for argmax_h <= -1,
  argmax_h >= height (likewise w);
- `modulated_deformable_col2im_coord_gpu_kernel` + `dmcn_get_coordinate_weight`: the offset's gradient (0 where
  inv_h <= -1 || inv_w <= -1 || inv_h >= height || inv_w >= width), and the mask's gradient, the sum of the
  column's gradient times the unmasked sample.

Expected values come from this transcription, never from uvssm's code. Positions are put exactly on -1, on the
far edge, on whole and half pixels, at sizes that are not powers of two (48, 60): the places where a sampler
through `grid_sample`'s normalised coordinates takes another derivative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.ops.deform_conv import deform_conv2d


def _bilinear(img, height, width, h, w):  # dmcn_im2col_bilinear
    h_low, w_low = math.floor(h), math.floor(w)
    h_high, w_high = h_low + 1, w_low + 1
    lh, lw = h - h_low, w - w_low
    hh, hw = 1 - lh, 1 - lw
    v1 = img[h_low, w_low] if h_low >= 0 and w_low >= 0 else 0.0
    v2 = img[h_low, w_high] if h_low >= 0 and w_high <= width - 1 else 0.0
    v3 = img[h_high, w_low] if h_high <= height - 1 and w_low >= 0 else 0.0
    v4 = img[h_high, w_high] if h_high <= height - 1 and w_high <= width - 1 else 0.0
    w1, w2, w3, w4 = hh * hw, hh * lw, lh * hw, lh * lw
    return w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4


def _gradient_weight(argmax_h, argmax_w, h, w, height, width):  # dmcn_get_gradient_weight
    if argmax_h <= -1 or argmax_h >= height or argmax_w <= -1 or argmax_w >= width:
        return 0.0
    h_low, w_low = math.floor(argmax_h), math.floor(argmax_w)
    h_high, w_high = h_low + 1, w_low + 1
    weight = 0.0
    if h == h_low and w == w_low:
        weight = (h + 1 - argmax_h) * (w + 1 - argmax_w)
    if h == h_low and w == w_high:
        weight = (h + 1 - argmax_h) * (argmax_w + 1 - w)
    if h == h_high and w == w_low:
        weight = (argmax_h + 1 - h) * (w + 1 - argmax_w)
    if h == h_high and w == w_high:
        weight = (argmax_h + 1 - h) * (argmax_w + 1 - w)
    return weight


def _coordinate_weight(argmax_h, argmax_w, height, width, img, bp_dir):  # dmcn_get_coordinate_weight
    if argmax_h <= -1 or argmax_h >= height or argmax_w <= -1 or argmax_w >= width:
        return 0.0
    h_low, w_low = math.floor(argmax_h), math.floor(argmax_w)
    h_high, w_high = h_low + 1, w_low + 1
    weight = 0.0
    if bp_dir == 0:
        if h_low >= 0 and w_low >= 0:
            weight += -1 * (w_low + 1 - argmax_w) * img[h_low, w_low]
        if h_low >= 0 and w_high <= width - 1:
            weight += -1 * (argmax_w - w_low) * img[h_low, w_high]
        if h_high <= height - 1 and w_low >= 0:
            weight += (w_low + 1 - argmax_w) * img[h_high, w_low]
        if h_high <= height - 1 and w_high <= width - 1:
            weight += (argmax_w - w_low) * img[h_high, w_high]
    else:
        if h_low >= 0 and w_low >= 0:
            weight += -1 * (h_low + 1 - argmax_h) * img[h_low, w_low]
        if h_low >= 0 and w_high <= width - 1:
            weight += (h_low + 1 - argmax_h) * img[h_low, w_high]
        if h_high <= height - 1 and w_low >= 0:
            weight += -1 * (argmax_h - h_low) * img[h_high, w_low]
        if h_high <= height - 1 and w_high <= width - 1:
            weight += (argmax_h - h_low) * img[h_high, w_high]
    return weight


def kernel_dcn(inp, offset, mask, weight, bias, grad_out, pad=1):
    """Forward and backward of modulated DCN (stride 1, dilation 1) by the kernel's loops: (out, grad_input,
    grad_offset, grad_mask, grad_weight) as numpy float64 arrays, for one image."""
    c_in, height, width = inp.shape
    c_out, _, kh, kw = weight.shape
    taps = kh * kw
    dg = offset.shape[0] // (2 * taps)
    cpg = c_in // dg
    h_col, w_col = offset.shape[1:]
    cols = np.zeros((c_in, kh, kw, h_col, w_col))
    pos = np.zeros((dg, kh, kw, h_col, w_col, 2))
    for g in range(dg):
        for i in range(kh):
            for j in range(kw):
                k = i * kw + j
                for oy in range(h_col):
                    for ox in range(w_col):
                        h_im = (oy - pad + i) + offset[2 * (g * taps + k), oy, ox]
                        w_im = (ox - pad + j) + offset[2 * (g * taps + k) + 1, oy, ox]
                        pos[g, i, j, oy, ox] = h_im, w_im
                        for c in range(g * cpg, (g + 1) * cpg):
                            val = 0.0
                            if h_im > -1 and w_im > -1 and h_im < height and w_im < width:
                                val = _bilinear(inp[c], height, width, h_im, w_im)
                            cols[c, i, j, oy, ox] = val * mask[g * taps + k, oy, ox]
    out = np.einsum("ocij,cijyx->oyx", weight, cols) + bias[:, None, None]
    grad_cols = np.einsum("ocij,oyx->cijyx", weight, grad_out)
    grad_weight = np.einsum("oyx,cijyx->ocij", grad_out, cols)
    grad_in = np.zeros_like(inp)
    grad_offset = np.zeros_like(offset)
    grad_mask = np.zeros_like(mask)
    for g in range(dg):
        for i in range(kh):
            for j in range(kw):
                k = i * kw + j
                for oy in range(h_col):
                    for ox in range(w_col):
                        h_im, w_im = pos[g, i, j, oy, ox]
                        m = mask[g * taps + k, oy, ox]
                        inv_h, inv_w = h_im, w_im
                        inside = not (inv_h <= -1 or inv_w <= -1 or inv_h >= height or inv_w >= width)
                        if not inside:
                            inv_h = inv_w = -2
                        for c in range(g * cpg, (g + 1) * cpg):
                            col_grad = grad_cols[c, i, j, oy, ox]
                            # modulated_deformable_col2im_gpu_kernel
                            top = col_grad * m
                            cur_h, cur_w = int(h_im), int(w_im)  # C's (int) truncates
                            for dy in range(-2, 3):
                                for dx in range(-2, 3):
                                    yy, xx = cur_h + dy, cur_w + dx
                                    if 0 <= yy < height and 0 <= xx < width and abs(h_im - yy) < 1 \
                                            and abs(w_im - xx) < 1:
                                        grad_in[c, yy, xx] += _gradient_weight(h_im, w_im, yy, xx, height, width) * top
                            # modulated_deformable_col2im_coord_gpu_kernel
                            if inside:
                                grad_mask[g * taps + k, oy, ox] += col_grad * _bilinear(inp[c], height, width,
                                                                                        inv_h, inv_w)
                            for bp_dir in (0, 1):
                                wgt = _coordinate_weight(inv_h, inv_w, height, width, inp[c], bp_dir)
                                grad_offset[2 * (g * taps + k) + bp_dir, oy, ox] += wgt * col_grad * m
    return out, grad_in, grad_offset, grad_mask, grad_weight


def _ours(inp, offset, mask, weight, bias, grad_out):
    tensors = [torch.tensor(a[None] if a.ndim == 3 else a, dtype=torch.float64, requires_grad=True)
               for a in (inp, offset, mask, weight, bias)]
    i, o, m, w, b = tensors
    out = deform_conv2d(i, o, w, b, padding=1, mask=m, backend="torch")
    out.backward(torch.tensor(grad_out[None]))
    return out[0].detach().numpy(), i.grad[0].numpy(), o.grad[0].numpy(), m.grad[0].numpy(), w.grad.numpy()


def _case(seed, c_in, c_out, height, width, dg, offsets):
    rng = np.random.default_rng(seed)
    inp = rng.standard_normal((c_in, height, width))
    mask = rng.random((dg * 9, height, width))
    weight = rng.standard_normal((c_out, c_in, 3, 3))
    bias = rng.standard_normal(c_out)
    grad_out = rng.standard_normal((c_out, height, width))
    return inp, offsets(rng, (2 * dg * 9, height, width)), mask, weight, bias, grad_out


OFFSETS = {
    # conv_offset starts at zero: every tap of the first row and column sits exactly on -1, of the last on H, W
    "zero": lambda rng, shape: np.zeros(shape),
    "whole pixels": lambda rng, shape: rng.integers(-3, 4, shape).astype(np.float64),
    "half pixels": lambda rng, shape: rng.integers(-6, 7, shape) / 2.0,
    "fractional": lambda rng, shape: rng.standard_normal(shape) * 1.5,
}


@pytest.mark.parametrize("kind", list(OFFSETS))
@pytest.mark.parametrize("size,dg", [((5, 7), 1), ((6, 4), 2)])
def test_gradients_equal_the_kernels(kind, size, dg):
    case = _case(sum(map(ord, kind)) + dg, 2 * dg, 3, *size, dg, OFFSETS[kind])
    expected = kernel_dcn(*case)
    got = _ours(*case)
    for name, e, g in zip(("output", "input", "offset", "mask", "weight"), expected, got):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("size", [(48, 60), (60, 48), (64, 64)])
def test_whole_pixel_positions_at_any_size(size):
    """Whole-pixel offsets on maps of 48 and 60 (not powers of two): every position's gradient comes from the
    pixel itself and the next one, as in the kernel, never from the other neighbour."""
    case = _case(size[0] * 100 + size[1], 1, 1, *size, 1, OFFSETS["whole pixels"])
    expected = kernel_dcn(*case)
    got = _ours(*case)
    np.testing.assert_allclose(got[2], expected[2], rtol=0, atol=1e-10, err_msg="offset")
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-10, err_msg="input")


def test_border_taps_have_no_offset_gradient():
    """A tap exactly on -1 (the first row's and column's upper-left taps with zero offsets) is outside: its
    offset gradient is exactly zero, a one-sided derivative from pixel 0 is not taken."""
    inp, offset, mask, weight, bias, grad_out = _case(7, 2, 2, 5, 6, 1, OFFSETS["zero"])
    grad_offset = _ours(inp, offset, mask, weight, bias, grad_out)[2]
    # tap k = 0 (i = j = 0) of output pixel (0, x) samples row -1
    assert np.all(grad_offset[0, 0, :] == 0) and np.all(grad_offset[1, 0, :] == 0)
    assert np.all(grad_offset[0, :, 0] == 0) and np.all(grad_offset[1, :, 0] == 0)
    assert np.any(grad_offset[0, 1:, 1:] != 0)


def test_float32_agrees_with_float64():
    case = _case(11, 4, 3, 9, 11, 2, OFFSETS["fractional"])
    got64 = _ours(*case)
    tensors = [torch.tensor(a[None] if a.ndim == 3 else a, dtype=torch.float32, requires_grad=True)
               for a in case[:5]]
    i, o, m, w, b = tensors
    deform_conv2d(i, o, w, b, padding=1, mask=m, backend="torch").backward(torch.tensor(case[5][None]).float())
    for g32, g64 in zip((i.grad[0], o.grad[0], m.grad[0], w.grad), got64[1:]):
        np.testing.assert_allclose(g32.numpy(), g64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("width", [60, 1000])
def test_float32_positions_a_few_ulps_from_a_whole_pixel(width):
    """float32 positions 1-3 ulps of the image's side from a whole pixel, where `grid_sample`'s round trip through
    normalised coordinates can cross the pixel: the offset gradient is still the kernel's (computed here in
    float64 on the same positions, which float32 holds exactly)."""
    rng = np.random.default_rng(width)
    height, ulp = 3, 2.0 ** (math.floor(math.log2(width)) - 23)
    inp = rng.standard_normal((1, height, width)).astype(np.float32)
    offset = (rng.integers(-3, 4, (18, height, width)) * ulp).astype(np.float32)
    mask = rng.random((9, height, width)).astype(np.float32)
    weight = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    bias = np.zeros(1, np.float32)
    grad_out = rng.standard_normal((1, height, width)).astype(np.float32)
    expected = kernel_dcn(*(a.astype(np.float64) for a in (inp, offset, mask, weight, bias, grad_out)))[2]
    tensors = [torch.tensor(a[None] if a.ndim == 3 else a, requires_grad=True) for a in (inp, offset, mask, weight,
                                                                                         bias)]
    i, o, m, w, b = tensors
    deform_conv2d(i, o, w, b, padding=1, mask=m, backend="torch").backward(torch.tensor(grad_out[None]))
    np.testing.assert_allclose(o.grad[0].numpy(), expected, rtol=1e-4, atol=1e-4)
