"""Losses of the VOTES recipe."""

from __future__ import annotations

import torch
from torch import Tensor


def charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-12, reduction: str = "sum") -> Tensor:
    """Σ sqrt((pred − target)² + eps): BasicSR's CharbonnierLoss as VOTES configures it (eps 1e-12, sum)."""
    value = torch.sqrt((pred - target) ** 2 + eps)
    return value.sum() if reduction == "sum" else value.mean()


def l1(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    value = (pred - target).abs()
    return value.sum() if reduction == "sum" else value.mean()


LOSSES = {"charbonnier": charbonnier, "l1": l1}
