"""Running a model on frames whose size it does not accept (VOTES needs multiples of 4)."""

from __future__ import annotations

from typing import Callable

from torch import Tensor
from torch.nn import functional as F


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad the last two dims of x (..., H, W) at the bottom and right up to multiples of `multiple`.

    Reflection padding (replicate where the frame is too small to reflect). Returns the padded
    tensor and the original (H, W).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x, (h, w)
    flat = x.reshape(-1, *x.shape[-3:])
    mode = "reflect" if ph < h and pw < w else "replicate"
    padded = F.pad(flat, (0, pw, 0, ph), mode=mode)
    return padded.reshape(*x.shape[:-2], h + ph, w + pw), (h, w)


def run_padded(model: Callable[[Tensor], Tensor], x: Tensor, scale: int, multiple: int = 4) -> Tensor:
    """model(x) for windows x (B, T, C, H, W) of any size: pad to `multiple`, run, crop the output
    (B, C, scale·H, scale·W) back. Sizes that are already multiples run unchanged."""
    padded, (h, w) = pad_to_multiple(x, multiple)
    out = model(padded)
    return out[..., : scale * h, : scale * w]
