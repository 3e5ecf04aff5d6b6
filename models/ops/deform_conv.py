"""Modulated deformable convolution (DCNv2) in pure PyTorch, with torchvision's op as a CUDA fast path.

The function has the signature and the tensor layouts of `torchvision.ops.deform_conv2d`, which
are also those of the CUDA kernel in BasicSR/VOTES (`ops/dcn/src/deform_conv_cuda_kernel.cu`):

- `offset` is (B, 2·G·kh·kw, H_out, W_out) for G deformable groups. For group g and kernel tap
  k = i·kw + j, channel 2·(g·kh·kw + k) holds Δy and channel 2·(g·kh·kw + k) + 1 holds Δx.
- `mask` is (B, G·kh·kw, H_out, W_out); channel g·kh·kw + k modulates tap k of group g.
- The input channels are split into G consecutive blocks; block g is sampled with group g's
  offsets and mask.
- Tap k of output pixel (oy, ox) samples the input at
  y = oy·stride − pad + i·dilation + Δy,  x = ox·stride − pad + j·dilation + Δx
  bilinearly, with zeros outside the image (a sample counts only if −1 < y < H and −1 < x < W,
  and its out-of-image corners count as zero).

How it is computed: one `F.grid_sample` (bilinear, zero padding, align_corners=False) gathers
the samples of every tap and group (an im2col matrix), the mask multiplies them, and one matrix
product with the weight gives the output. With gradients on, this happens in one piece (autograd
keeps the samples for the backward pass, as every im2col DCN does). Without gradients it runs in
bands of output rows whose samples take at most half the input's memory (or 4 MB), so a full 960×540 frame
with 128 channels never holds the 9×-sized matrix; the peak is about 1.3 feature maps besides
the output (tested).

The function is differentiable in input, offset, mask, weight and bias (tested with gradcheck). The gradient
of the sampling positions, and so of the offsets, is the CUDA kernel's (`sample_pixels`): zero for a sample
outside, and at a whole pixel taken from that pixel and the next, at any image size. `grid_sample`'s own differs
there: at iteration 1 `conv_offset` is zero and every tap of the first row and column sits exactly on −1.
`tests/test_dcn_kernel_rules.py` checks every gradient against a transcription of the kernel's backward.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from uvssm.base.numerics import new_precision_api

__all__ = ["BACKENDS", "DeformConvBackend", "available_backends", "backend_for", "dcn_record", "deform_conv2d",
           "first_dcn", "measure_backends", "resolved_backend", "set_backend", "torchvision_deform_conv2d"]

BACKENDS = ("torch", "torchvision")
_NEW_PRECISION_API = new_precision_api()  # torch ≥ 2.9's fp32_precision settings (read once, outside any forward)
_torchvision_op = None  # torchvision.ops.deform_conv2d, once `torchvision_deform_conv2d` has looked
_looked = False


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def torchvision_deform_conv2d():
    """torchvision.ops.deform_conv2d if torchvision imports, else None. It is looked up once per process, by the
    first DCN module built (DCNv2Pack, STDF's ModulatedDeformConv), so a compiled forward only reads the result:
    an import inside the traced code broke `torch.compile`'s graph at every deformable convolution."""
    global _torchvision_op, _looked
    if not _looked:
        try:
            from torchvision.ops import deform_conv2d as op
        except Exception:  # not installed, or built for another torch
            op = None
        _torchvision_op, _looked = op, True
    return _torchvision_op


def available_backends(device: torch.device | str) -> tuple[str, ...]:
    """The backends that run on `device`: "torch" everywhere, "torchvision" where it imports."""
    return BACKENDS if torchvision_deform_conv2d() is not None else ("torch",)


class DeformConvBackend:
    """Mixin of the modules that call `deform_conv2d`: their `dcn_backend` ("auto", "torch" or "torchvision"),
    set for a whole model by `set_backend`."""

    dcn_backend: str = "auto"


def set_backend(model: torch.nn.Module, backend: str) -> int:
    """Set the backend of every deformable convolution in `model`; returns how many there are."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"DCN backend must be 'auto', 'torch' or 'torchvision', got {backend!r}")
    found = [m for m in model.modules() if isinstance(m, DeformConvBackend)]
    for m in found:
        m.dcn_backend = backend
    return len(found)


@contextlib.contextmanager
def _tf32_matmul(enabled: bool):
    """TF32 for CUDA float32 matrix products while the block runs (tensor cores, several times fp32's speed;
    10 mantissa bits, more than bfloat16's 7), then the caller's setting again. Through torch's new API,
    `torch.backends.cuda.matmul.fp32_precision`, which cuBLAS reads: the legacy `allow_tf32` getter raises on
    torch ≥ 2.9 once a caller has set the new one (a "mix of the legacy and new APIs"), and the new one reads what
    either API set.

    Only the call inside the block runs in TF32: torchvision's forward. Its backward runs later, outside, at the
    caller's precision (`dcn_record`), and under `torch.compile` the switch is left out (the global flag cannot be
    set inside a traced graph without breaking it), so a compiled DCN runs at the caller's precision too."""
    if not enabled:
        yield
        return
    matmul = torch.backends.cuda.matmul
    flag = "fp32_precision" if _NEW_PRECISION_API else "allow_tf32"  # torch < 2.9: only the legacy flag
    before = getattr(matmul, flag)
    setattr(matmul, flag, "tf32" if flag == "fp32_precision" else True)
    try:
        yield
    finally:
        setattr(matmul, flag, before)


def resolved_backend(backend: str, device: torch.device | str) -> str:
    """The backend `deform_conv2d(..., backend=backend)` runs for tensors on `device`: "auto" is torchvision's op
    on CUDA where it imports, else the pure-torch path."""
    if backend == "torch" or torchvision_deform_conv2d() is None:
        return "torch"
    return "torchvision" if backend == "torchvision" or torch.device(device).type == "cuda" else "torch"


def dcn_record(backend: str | None, device: torch.device | str, bf16: bool, compiled: bool = False) -> dict | None:
    """What a run records of its deformable convolutions (None: the model has none): the backend they run on
    `device` and the precision of their matrix product, forward and backward (training), as
    `torch.backends` and this module set them:

    - the pure-torch path multiplies in bfloat16 under bf16 autocast, else at the float32 matmul precision;
    - torchvision's op casts to float32 under autocast (its autocast rule); on CUDA under bf16 autocast, in eager
      mode, its forward runs in TF32 (`_tf32_matmul`); its backward, and a compiled forward, at the float32 matmul
      precision of the caller.

    The float32 matmul precision is cuBLAS's on CUDA ("ieee" unless a caller set "tf32") and oneDNN's setting on
    the CPU (`uvssm.base.numerics.fp32_precision`)."""
    if backend is None:
        return None
    from uvssm.base.numerics import fp32_precision

    device = torch.device(device)
    backend = resolved_backend(backend, device)
    fp32 = fp32_precision("cuda" if device.type == "cuda" else "mkldnn", "matmul")
    if backend == "torch":
        forward = backward = "bf16" if bf16 else fp32
    else:
        forward = "tf32" if device.type == "cuda" and bf16 and not compiled else fp32
        backward = fp32
    return {"backend": backend, "gemm_forward": forward, "gemm_backward": backward}


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: Tensor | None = None,
    *,
    backend: str = "auto",
) -> Tensor:
    """Deformable convolution v2 (v1 when `mask` is None).

    Args:
        input: (B, C_in, H, W).
        offset: (B, 2·G·kh·kw, H_out, W_out), (Δy, Δx) interleaved per group and tap.
        weight: (C_out, C_in / groups, kh, kw); `groups` is C_in / weight.shape[1].
        bias: (C_out,) or None.
        stride, padding, dilation: as for `torch.nn.functional.conv2d`.
        mask: (B, G·kh·kw, H_out, W_out) modulation scalars, or None for all ones.
        backend: "auto" uses torchvision's op for CUDA tensors when torchvision imports, and the
            pure-torch path otherwise; "torch" always uses the pure-torch path; "torchvision"
            requires torchvision. (`measure_backends` says which is faster on a device.)

    Under bf16 autocast the pure-torch path gathers in float32 and multiplies in bfloat16; torchvision's op
    casts everything to float32 (its autocast rule), and its matrix product then runs in TF32 on CUDA.

    Returns:
        (B, C_out, H_out, W_out).
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'torch' or 'torchvision', got {backend!r}")
    tv = torchvision_deform_conv2d() if backend != "torch" else None
    if backend == "torchvision" and tv is None:
        raise RuntimeError("backend='torchvision' but torchvision.ops.deform_conv2d does not import")
    if tv is not None and (backend == "torchvision" or input.is_cuda):
        fast = input.is_cuda and torch.is_autocast_enabled("cuda") and not torch.compiler.is_compiling()
        with _tf32_matmul(fast):
            return tv(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
    return _deform_conv2d_torch(input, offset, weight, bias, _pair(stride), _pair(padding), _pair(dilation), mask)


def measure_backends(module: torch.nn.Module, size: tuple[int, int], device: torch.device | str, bf16: bool,
                     repeat: int = 3, channels_last: bool = False) -> dict[str, float]:
    """Seconds per call (median of `repeat`, after a warm-up) of the deformable convolution `module` (its weight,
    `deformable_groups` and padding; random offsets of ~2 px) on a (width, height) map of its input, in inference,
    for each backend that runs on `device`. Where only one runs, nothing is timed and its value is 0.
    `channels_last`: the maps lie channels-last, as the convolutions of a --channels-last model give them."""
    from uvssm.base.timing import median_seconds

    names = available_backends(device)
    if len(names) == 1:
        return {names[0]: 0.0}
    device = torch.device(device)
    w, h = size
    c_out, c_in, kh, kw = module.weight.shape
    dg = module.deformable_groups
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, c_in, h, w, generator=g).to(device)
    offset = (torch.randn(1, 2 * dg * kh * kw, h, w, generator=g) * 2).to(device)
    mask = torch.rand(1, dg * kh * kw, h, w, generator=g).to(device)
    weight = module.weight.detach().to(device)
    if bf16:
        x, offset, mask = x.bfloat16(), offset.bfloat16(), mask.bfloat16()
    if channels_last:
        x, offset, mask = (t.contiguous(memory_format=torch.channels_last) for t in (x, offset, mask))
    timings = {}
    for name in names:
        def call(name=name):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                return deform_conv2d(x, offset, weight, None, padding=module.padding, mask=mask, backend=name)
        timings[name] = median_seconds(call, device, repeat)
    return timings


def _deform_conv2d_torch(input, offset, weight, bias, stride, padding, dilation, mask) -> Tensor:
    b, c_in, h, w = input.shape
    c_out, c_per_wgroup, kh, kw = weight.shape
    taps = kh * kw
    if c_in % c_per_wgroup or c_out % (c_in // c_per_wgroup):
        raise ValueError(f"weight shape {tuple(weight.shape)} does not fit {c_in} input channels")
    groups = c_in // c_per_wgroup
    h_out = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if offset.shape[0] != b or offset.shape[2:] != (h_out, w_out) or offset.shape[1] % (2 * taps):
        raise ValueError(f"offset shape {tuple(offset.shape)} does not fit input {tuple(input.shape)} "
                         f"and kernel {kh}x{kw} (expected (B, 2*G*{taps}, {h_out}, {w_out}))")
    dg = offset.shape[1] // (2 * taps)
    if c_in % dg:
        raise ValueError(f"input channels {c_in} are not a multiple of the {dg} deformable groups")
    if mask is not None and tuple(mask.shape) != (b, dg * taps, h_out, w_out):
        raise ValueError(f"mask shape {tuple(mask.shape)}, expected {(b, dg * taps, h_out, w_out)}")
    # A channels-last input (a model set up with --channels-last) is read as it lies and the output comes out
    # channels-last: the convolutions around the DCN then convert nothing. One sample at a time, where each
    # sample's deformable groups are views of the input (a batch's would be a copy to NCHW).
    channels_last = groups == 1 and _is_channels_last(input[:1])  # a batch's samples may lie apart (a window's frames)
    if channels_last and b > 1:
        return torch.cat([_deform_conv2d_torch(input[i:i + 1], offset[i:i + 1], weight, bias, stride, padding,
                                               dilation, None if mask is None else mask[i:i + 1]) for i in range(b)])

    grad = torch.is_grad_enabled()
    # Rows of output per chunk: with gradients, one chunk (autograd keeps every sample anyway);
    # without, chunks whose samples take at most half the input's memory, or 2^20 samples (4 MB in float32)
    # where that is more: a small map is one chunk, not dozens of one-row chunks.
    budget = max(input.numel() // 2, 1 << 20)
    rows = h_out if grad else max(1, min(h_out, budget // (c_in * taps * w_out)))
    offset = offset.view(b, dg, taps, 2, h_out, w_out)  # [:, :, :, 0] is Δy, [:, :, :, 1] is Δx
    if mask is not None:
        mask = mask.view(b, dg, 1, taps, h_out, w_out)
    dtype, device = input.dtype, input.device
    # sampling positions always in float32 (float64 for float64 inputs): in bfloat16 a position above
    # 256 px would round to a whole or even pixel. The samples are cast back for the GEMM.
    pos_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    tap_y = (torch.arange(kh, device=device, dtype=pos_dtype) * dilation[0]).repeat_interleave(kw).view(taps, 1, 1)
    tap_x = (torch.arange(kw, device=device, dtype=pos_dtype) * dilation[1]).repeat(kh).view(taps, 1, 1)
    base_x = (torch.arange(w_out, device=device, dtype=pos_dtype) * stride[1] - padding[1]).view(1, 1, w_out)
    offset = offset.to(pos_dtype)
    grouped_input = input.reshape(b * dg, c_in // dg, h, w).to(pos_dtype)  # grid_sample wants one dtype
    # weight as (groups, C_out/groups, C_in/groups · taps), matching samples laid out channel-major
    weight = weight.reshape(groups, c_out // groups, c_per_wgroup * taps)

    out = None
    for r0 in range(0, h_out, rows):
        r1 = min(h_out, r0 + rows)
        base_y = (torch.arange(r0, r1, device=device, dtype=pos_dtype) * stride[0] - padding[0]).view(1, r1 - r0, 1)
        # positions in input pixels, the whole-pixel part first (exact), then the offset: one rounding, as the
        # kernel's `h_in + i * dilation_h + offset_h`
        y = offset[:, :, :, 0, r0:r1] + (base_y + tap_y)  # (B, G, taps, rows, W_out)
        x = offset[:, :, :, 1, r0:r1] + (base_x + tap_x)
        samples = sample_pixels(grouped_input, y.reshape(b * dg, -1), x.reshape(b * dg, -1))  # (B·G, C/G, taps·rows·W_out)
        samples = samples.to(dtype).view(b, dg, c_in // dg, taps, r1 - r0, w_out)
        if mask is not None:
            m = mask[:, :, :, :, r0:r1]
            samples = samples * m if grad else samples.mul_(m)
        samples = samples.view(b, groups, c_per_wgroup * taps, (r1 - r0) * w_out)
        if channels_last:  # b == 1: (rows·W_out, C_out) = samplesᵀ · weightᵀ, (1, C_out, rows, W_out) channels-last
            band = torch.mm(samples.view(c_in * taps, -1).t(), weight[0].t())
            band = band.view(1, r1 - r0, w_out, c_out).permute(0, 3, 1, 2)
        else:
            band = torch.matmul(weight, samples).view(b, c_out, r1 - r0, w_out)  # (B, C_out, rows, W_out)
        if bias is not None:
            band = band + bias.view(1, c_out, 1, 1) if grad else band.add_(bias.view(1, c_out, 1, 1))
        if rows == h_out:
            return band
        if out is None:
            out = torch.empty((b, c_out, h_out, w_out), dtype=band.dtype, device=device,
                              memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        out[:, :, r0:r1] = band
        del samples, x, y, band
    return out


def _is_channels_last(t: Tensor) -> bool:
    """Whether a 4-D map lies channels-last and not also contiguous (as a 1×1 map or one channel would)."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def sample_pixels(input: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Bilinear samples of `input` (G, C, H, W) at pixel positions `y`, `x` (G, N): (G, C, N), with zeros outside,
    as the CUDA kernel of DCNv2 samples (BasicSR's and mmcv's `deform_conv_cuda_kernel.cu`, the same in the
    official VOTES repository), and with the kernel's gradient for the positions:

    - a sample counts only if −1 < y < H and −1 < x < W; outside it is zero and its position has no gradient
      (`modulated_deformable_im2col_gpu_kernel`; `dmcn_get_coordinate_weight` returns 0 for y <= −1, y >= H,
      x <= −1, x >= W);
    - its corners are floor(y), floor(y)+1 × floor(x), floor(x)+1, one off the image counting as 0
      (`dmcn_im2col_bilinear`), and the position's gradient comes from those same four corners
      (`dmcn_get_coordinate_weight`): at a whole pixel, from that pixel and the next one down (right).

    The values and the input's gradient, both continuous in the position, are `grid_sample`'s (bilinear, zeros,
    align_corners=False: its fast CPU and CUDA kernels). The positions' gradient, which jumps at whole pixels and
    at the border, is computed here in pixel coordinates, where a whole-pixel position is exact at any image size:
    through `grid_sample`'s normalised coordinates it can land a rounding step beside the pixel and take the other
    neighbour's derivative, and at exactly −1 `grid_sample` still returns a one-sided derivative from pixel 0."""
    return _KernelSampling.apply(input, y, x)


def _normalised_grid(y: Tensor, x: Tensor, size: tuple[int, int]) -> Tensor:
    """(G, 1, N, 2) grid for `grid_sample` (align_corners=False: pixel p of a side of n is (2p + 1) / n − 1)."""
    h, w = size
    return torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1).unsqueeze(1)


def _bands(n: int, channels: int) -> list[tuple[int, int]]:
    """Slices of n positions whose (n, C) temporaries hold at most 2^19 values (2 MB in float32)."""
    step = max(1, (1 << 19) // max(channels, 1))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _near_whole(p: Tensor, size: int) -> Tensor:
    """Whether positions `p` on a side of `size` pixels lie so close to a whole pixel that `grid_sample`'s trip to
    normalised coordinates and back (eight roundings, each at most half an ulp of twice the side) could carry them
    across it: within 16 ulps of the side, 2^-13 px on a 64-px float32 map, 2^-6 px at 8192 px. Only there can its
    position gradient come from other corners than the kernel's."""
    near = 16 * torch.finfo(p.dtype).eps * 2.0 ** math.ceil(math.log2(max(size, 1)))
    frac = p - torch.floor(p)
    return (frac < near) | (frac > 1 - near)


def _kernel_position_gradients(input: Tensor, plane: Tensor, y: Tensor, x: Tensor,
                               grad: Tensor) -> tuple[Tensor, Tensor]:
    """d(Σ sample · grad)/dy and /dx by the kernel's `dmcn_get_coordinate_weight`, for samples at (y, x) (M,) of
    planes `plane` (M,) of `input` (G, C, H, W), with incoming gradients `grad` (M, C)."""
    c, h, w = input.shape[1:]
    # the input as rows of C channels with a border of one zero pixel: pixel (py, px), −1 <= py <= H,
    # −1 <= px <= W, of plane k is row (k·(H+2) + py+1)·(W+2) + px+1; a corner off the image reads 0
    rows = F.pad(input.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).reshape(-1, c)
    grad_y, grad_x = torch.empty_like(y), torch.empty_like(x)
    bands = _bands(y.shape[0], c)
    buf = rows.new_empty(bands[0][1], c)  # one for every band: fresh large allocations fault pages
    shifts = (0, 1, w + 2, w + 3)  # top-left, top-right, bottom-left, bottom-right
    last = (h + 2) * (w + 2) - 1 - (w + 3)  # the last top-left corner of a plane
    for a, z in bands:
        yb, xb = y[a:z], x[a:z]
        y0, x0 = torch.floor(yb), torch.floor(xb)
        inside = ((yb > -1) & (xb > -1) & (yb < h) & (xb < w)).to(y.dtype)
        top_left = plane[a:z] * ((h + 2) * (w + 2)) + ((y0.long() + 1) * (w + 2) + x0.long() + 1).clamp_(0, last)
        tmp, gb = buf[:z - a], grad[a:z]
        # s_k: Σ over channels of corner k's value times the incoming gradient; 0 outside
        s0, s1, s2, s3 = (torch.index_select(rows, 0, top_left + shift, out=tmp).mul_(gb).sum(1).mul_(inside)
                          for shift in shifts)
        hh, lh = y0 + 1 - yb, yb - y0  # (argmax_h_low + 1 − argmax_h), (argmax_h − argmax_h_low)
        hw, lw = x0 + 1 - xb, xb - x0
        # dmcn_get_coordinate_weight weighs the corners −hw, −lw, +hw, +lw for y (bp_dir 0), −hh, +hh, −lh, +lh for x
        grad_y[a:z] = hw * (s2 - s0) + lw * (s3 - s1)
        grad_x[a:z] = hh * (s1 - s0) + lh * (s3 - s2)
    return grad_y, grad_x


class _KernelSampling(torch.autograd.Function):
    """`sample_pixels`: `grid_sample` forward and backward, with the kernel's position gradient where they differ."""

    @staticmethod
    def forward(ctx, input: Tensor, y: Tensor, x: Tensor) -> Tensor:
        grid = _normalised_grid(y, x, input.shape[2:])
        ctx.save_for_backward(input, y, x)
        return F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        input, y, x = ctx.saved_tensors
        need_input, need_y, need_x = ctx.needs_input_grad
        h, w = input.shape[2:]
        grid = _normalised_grid(y, x, (h, w))
        need_positions = need_y or need_x
        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad.unsqueeze(2), input, grid, 0, 0, False, [need_input, need_positions])
        if not need_positions:
            return grad_input, None, None
        # grid_sample's position gradient, from normalised to pixel units, is the kernel's wherever both take the
        # same four corners: for a sample inside, not near a whole pixel
        inside = (y > -1) & (x > -1) & (y < h) & (x < w)
        grad_grid = grad_grid.squeeze(1)
        grad_y = (grad_grid[..., 1] * (2 / h)).mul_(inside)
        grad_x = (grad_grid[..., 0] * (2 / w)).mul_(inside)
        plane, n = (inside & (_near_whole(y, h) | _near_whole(x, w))).nonzero(as_tuple=True)
        if plane.numel():
            gy, gx = _kernel_position_gradients(input, plane, y[plane, n], x[plane, n], grad[plane, :, n])
            grad_y[plane, n], grad_x[plane, n] = gy, gx
        return grad_input, grad_y, grad_x


@contextlib.contextmanager
def backend_for(model: torch.nn.Module, backend: str):
    """Every deformable convolution of `model` on `backend` while the block runs, then as before."""
    modules = [m for m in model.modules() if isinstance(m, DeformConvBackend)]
    before = [m.dcn_backend for m in modules]
    set_backend(model, backend)
    try:
        yield
    finally:
        for m, b in zip(modules, before):
            m.dcn_backend = b


def first_dcn(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's first deformable convolution (in the EDVR family, PCD's L1 pack: the largest map), or None."""
    return next((m for m in model.modules() if isinstance(m, DeformConvBackend)), None)


def contiguous_dcn_weights(model: torch.nn.Module) -> int:
    """Put every deformable convolution's weight of `model` back in the contiguous layout (after
    `model.to(memory_format=torch.channels_last)`, which converts every 4-D parameter); returns how many moved. Both
    backends read the weight as the (C_out, C_in·kh·kw) matrix of their im2col product: the pure-torch path as a view
    of a contiguous weight, torchvision's kernel after `.contiguous()`; a channels-last weight would be copied back
    at every call (20 copies per VOTES frame)."""
    moved = 0
    for m in model.modules():
        if isinstance(m, DeformConvBackend) and not m.weight.is_contiguous():
            m.weight.data = m.weight.data.contiguous()
            moved += 1
    return moved


def torchvision_buffer_bytes(module: torch.nn.Module, size: tuple[int, int], batch: int = 1) -> int:
    """Bytes that one call of torchvision's CUDA deform_conv2d allocates for the deformable convolution `module` on a
    (width, height) input map of `batch` samples (`deform_conv2d_forward_kernel` in torchvision's
    `csrc/ops/cuda/deform_conv2d_kernel.cu`): the im2col matrix `columns`,

        C_in·kh·kw rows × n·H_out·W_out columns, n = the largest divisor of the batch up to 32 (kMaxParallelImgs),

    and the output twice (`out` and `out_buf`, B·C_out·H_out·W_out each), all in float32 (under autocast the op
    computes in float32, its autocast rule): 4·(C_in·kh·kw·n·H_out·W_out + 2·B·C_out·H_out·W_out) bytes. For
    VOTES's 128 channels, 3×3, at 960×540: 1152 × 518,400 × 4 B = 2.4 GB of columns per sample. (The pure-torch
    path gathers in bands of rows; see `_deform_conv2d_torch`.)"""
    c_out, c_in, kh, kw = module.weight.shape
    (sh, sw), (ph, pw), (dh, dw) = (_pair(getattr(module, name, default)) for name, default in
                                    (("stride", 1), ("padding", 0), ("dilation", 1)))
    w, h = size
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    parallel = next(k for k in range(min(batch, 32), 0, -1) if batch % k == 0)
    return 4 * (c_in * kh * kw * parallel * h_out * w_out + 2 * batch * c_out * h_out * w_out)
