"""Initialisations a training recipe may choose instead of the modules' own (config key `init`).

"signal" (ours, for short CPU runs of the small models): the official modules start with PyTorch's
default initialisation, whose convolutions each scale a signal by about 1/√3. A VOTES or EDVR
centre frame crosses some fifteen of them (feature extraction, PCD alignment, fusion, trunk,
head) before it reaches the output, so a fresh model's output hardly depends on its input; at
default settings a 16-feature VOTES spends its first ~400 iterations at its bilinear residual
before it learns anything (measured on the built-in sample). "signal" keeps the signal's scale
instead:

- every plain convolution: Kaiming-normal for LeakyReLU(0.1), fan-in, zero bias;
- every deformable convolution's weight: the same, ×2, since its masks start at sigmoid(0) = 0.5;
- left as they are: the DCN offset/mask convolutions (zero: alignment starts as a plain conv),
  residual blocks (BasicSR's 0.1-scaled Kaiming, so deep trunks start near identity) and
  VOTES's degradation sensing module (trained in stage 1, loaded in stage 2);
- the output convolution (`conv_last`) at zero, so the model starts exactly at its bilinear
  residual rather than at that plus noise it must first unlearn;
- VOTES's DFM branch (`fusion.mask_modulation_first`, the only layer that reads the DFM) at zero,
  so VOTES starts as its own "w/o DFM" ablation and lets the DFM in as far as it helps: at full
  Kaiming scale a rough stage-1 DFM injects noise into every fused feature and a short run can
  stall on it (one seed in two on the sample).

It needs a warm-up of the learning rate (`warmup_iter`): at full rate, Adam's first step alone
throws such a model far off.
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers import DCNv2Pack, ResidualBlockNoBN

LEAKY_SLOPE = 0.1


@torch.no_grad()
def signal_init(model: nn.Module) -> nn.Module:
    """Apply the "signal" initialisation (see the module docstring) in place; returns the model."""
    keep: set[int] = set()
    frozen = getattr(model, "bin", None)  # VOTES's DSM
    if frozen is not None:
        keep.update(id(m) for m in frozen.modules())
    for module in model.modules():
        if isinstance(module, DCNv2Pack):
            keep.add(id(module.conv_offset))
            if id(module) not in keep:
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                module.weight.mul_(2.0)
                module.bias.zero_()
        elif isinstance(module, ResidualBlockNoBN):
            keep.update((id(module.conv1), id(module.conv2)))
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and id(module) not in keep:
            nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            if module.bias is not None:
                module.bias.zero_()
    for zero in (getattr(model, "conv_last", None),
                 getattr(getattr(model, "fusion", None), "mask_modulation_first", None)):
        if isinstance(zero, nn.Conv2d):
            zero.weight.zero_()
            if zero.bias is not None:
                zero.bias.zero_()
    return model


def default_init(model: nn.Module) -> nn.Module:
    """The modules' own initialisation (the official code's): leaves the model as built."""
    return model


INITIALISERS = {"default": default_init, "signal": signal_init}  # config key `init` -> initialiser
