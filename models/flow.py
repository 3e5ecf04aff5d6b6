"""Optical flow for the recurrent baselines: warping by a flow field and SPyNet.

Convention (BasicSR's `flow_warp`): a flow (B, 2, H, W) holds (dx, dy) in pixels, and warping x by
it samples x at p + flow(p), bilinearly, with align_corners=True. So with `flow = spynet(ref,
supp)`, `warp(supp, flow)` looks like `ref`.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def warp(x: Tensor, flow: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """Sample x (B, C, H, W) at p + flow(p); flow (B, 2, H, W) in pixels, channel 0 = x, 1 = y.

    The sampling grid is built in float32 (float64 for float64 inputs) whatever the dtype of x and the flow,
    and grid_sample runs in that dtype outside autocast: in bfloat16 (8 significant bits) a normalised
    position between 0.5 and 1 has a step of 1/256, so columns past 512 of a 960-wide map would land up to a
    pixel off even for a zero flow. The result has the dtype of x.
    """
    b, _, h, w = x.shape
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    plain = torch.autocast(x.device.type, enabled=False) if torch.amp.is_autocast_available(x.device.type) \
        else contextlib.nullcontext()  # e.g. the meta device, which has no autocast
    with plain:
        ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=dtype),
                                torch.arange(w, device=x.device, dtype=dtype), indexing="ij")
        flow = flow.to(dtype)
        gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
        gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
        out = F.grid_sample(x.to(dtype), torch.stack((gx, gy), dim=-1), mode=mode, padding_mode=padding_mode,
                            align_corners=True)
    return out.to(x.dtype)


class SpyNetLevel(nn.Module):
    """One pyramid level of SPyNet: five 7×7 convs 8→32→64→32→16→2 with ReLU (key `basic_module.<i>`)."""

    def __init__(self):
        super().__init__()
        chans = [8, 32, 64, 32, 16, 2]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            layers.append(nn.Conv2d(cin, cout, 7, 1, 3))
            if i < 4:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)
        # Ours: the official SPyNet is always loaded from pretrained weights, so its init never mattered.
        # Trained from scratch, a zero last layer makes every level start at "no correction" (the flow
        # starts at zero, the warp at identity), as BasicSR does for its DCN offsets.
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SpyNet(nn.Module):
    """SPyNet (Ranjan and Black, 2017) as BasicSR/mmagic build it: 6 levels, ImageNet-normalised
    inputs, frames resized to multiples of 32 and the flow scaled back. 1,440,300 parameters.

    `forward(ref, supp)` returns the flow that warps `supp` onto `ref`.
    """

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList(SpyNetLevel() for _ in range(6))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _pyramid_flow(self, ref: Tensor, supp: Tensor) -> Tensor:
        refs, supps = [(ref - self.mean) / self.std], [(supp - self.mean) / self.std]
        for _ in range(5):
            refs.insert(0, F.avg_pool2d(refs[0], 2, 2, count_include_pad=False))
            supps.insert(0, F.avg_pool2d(supps[0], 2, 2, count_include_pad=False))
        flow = refs[0].new_zeros(ref.shape[0], 2, *refs[0].shape[2:])  # the coarsest level starts from zero flow
        for level, (r, s) in enumerate(zip(refs, supps)):
            if level == 0:
                up = flow
            else:
                up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
                if up.shape[2] != r.shape[2]:
                    up = F.pad(up, (0, 0, 0, 1), mode="replicate")
                if up.shape[3] != r.shape[3]:
                    up = F.pad(up, (0, 1, 0, 0), mode="replicate")
            flow = self.basic_module[level](torch.cat([r, warp(s, up, padding_mode="border"), up], 1)) + up
        return flow

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow (B, 2, H, W) from `ref` to `supp`, both (B, 3, H, W) RGB in [0, 1]."""
        if ref.shape != supp.shape:
            raise ValueError(f"ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ")
        h, w = ref.shape[-2:]
        h32, w32 = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        ref = F.interpolate(ref, size=(h32, w32), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h32, w32), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._pyramid_flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        return torch.stack((flow[:, 0] * (w / w32), flow[:, 1] * (h / h32)), dim=1)
