"""Scalers. `imresize` is MATLAB's bicubic `imresize` (antialiased when shrinking), in torch.

MATLAB's definition, which the SR field uses for its bicubic baselines and LR targets:
- cubic kernel with a = -0.5;
- output pixel j (1-based) samples input position u = j / s + 0.5 (1 - 1/s);
- when shrinking (s < 1) with antialiasing the kernel is stretched: h(x) = s·cubic(s·x), width 4/s;
- the weights of each output pixel are normalised to sum to 1;
- indices beyond the border are mirrored (symmetric padding, the edge pixel repeated).
Each axis becomes an (out × in) weight matrix, so a resize is two matrix products.
"""

from __future__ import annotations

import contextlib
import math

import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax ** 2, ax ** 3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (out_len, in_len) matrix that MATLAB's bicubic imresize applies along one axis."""
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    j = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = j / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # symmetric padding: ..., 2, 1, | 1, 2, ..., n, | n, n-1, ...
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    src = mirror[((idx.long() - 1) % (2 * in_len))]
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, src, weights)
    return matrix.to(dtype)


_MATRICES: dict[tuple, torch.Tensor] = {}  # (in, out, scale, antialias, dtype, device) -> matrix on that device
_MATRICES_MAX = 64


def _matrix_on(in_len: int, out_len: int, scale: float, antialias: bool, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """`resize_matrix` on `device`, built and uploaded once per size and device (a frame loop on a GPU would
    otherwise build it on the CPU and upload it, a synchronising copy, for every frame). Inside a compiled
    graph it is built in the graph instead."""
    if torch.compiler.is_compiling():
        return resize_matrix(in_len, out_len, scale, antialias, dtype).to(device)
    key = (in_len, out_len, float(scale), antialias, dtype, device)
    matrix = _MATRICES.get(key)
    if matrix is None:
        if len(_MATRICES) >= _MATRICES_MAX:
            _MATRICES.pop(next(iter(_MATRICES)))  # the oldest
        matrix = _MATRICES[key] = resize_matrix(in_len, out_len, scale, antialias, dtype).to(device)
    return matrix


def full_precision(device: torch.device):
    """A block in which autocast is off on `device` (where it has autocast at all: the meta device has not).

    A resize is two matrix products, which autocast would run in bfloat16 (8 significant bits): a model's
    bicubic global residual (TGA, COMISR) would be rounded to about 1/256 of the pixel value, capping the
    bf16 model's output near 56 dB against fp32, whatever its learned part does."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def float_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a resize runs in: float64 for float64 (and integer) inputs, else float32 (never a half type)."""
    return torch.float64 if dtype == torch.float64 or not dtype.is_floating_point else torch.float32


def imresize(img: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize (..., H, W) float images by `scale` as MATLAB's `imresize(img, scale, 'bicubic')`.

    The output is ceil(H·scale) × ceil(W·scale) and is not clamped. It is computed in float32 (float64 for
    float64 and integer inputs), outside autocast: a bf16 model's bicubic residual stays exact.
    """
    h, w = img.shape[-2:]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    dtype = float_dtype(img.dtype)
    mh = _matrix_on(h, out_h, scale, antialias, dtype, img.device)
    mw = _matrix_on(w, out_w, scale, antialias, dtype, img.device)
    with full_precision(img.device):
        x = img.to(dtype)
        return mh @ x @ mw.T
