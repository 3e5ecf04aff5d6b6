"""Losses of the recipes: Charbonnier (VOTES, EDVR, BasicVSR), L1 (TGA), MSE (COMISR's content loss).

`reduction`: "sum" (BasicSR's Charbonnier as VOTES configures it), "mean", or "batch" (the sum
divided by the batch size, as TGA's training divides its summed L1).
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("sum", "mean", "batch")


def _reduce(value: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return value.sum()
    if reduction == "mean":
        return value.mean()
    if reduction == "batch":
        return value.sum() / value.shape[0]
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-12, reduction: str = "sum") -> Tensor:
    """Σ sqrt((pred − target)² + eps): BasicSR's CharbonnierLoss as VOTES configures it (eps 1e-12, sum)."""
    return _reduce(torch.sqrt((pred - target) ** 2 + eps), reduction)


def l1(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return _reduce((pred - target).abs(), reduction)


def mse(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return _reduce((pred - target) ** 2, reduction)


LOSSES = {"charbonnier": charbonnier, "l1": l1, "mse": mse}
