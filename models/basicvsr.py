"""BasicVSR (Chan et al., CVPR 2021) as BasicSR builds it (`basicsr/archs/basicvsr_arch.py`):
SPyNet flows between neighbours, a backward and a forward recurrent branch over the whole clip
(warp the propagated feature, concatenate the LR frame, conv + 30 residual blocks), a 1×1 fusion,
pixel-shuffle upsampling and a bilinear global residual. Parameter names are BasicSR's, so its
checkpoints load strictly. 6,291,311 parameters at ×4 (SPyNet 1,440,300 of them).

×2 is not official: as the maintainers suggest (mmagic issue 932), one pixel-shuffle stage is
dropped (6,143,599 parameters; labelled as ours in the registry).

The official recipe initialises SPyNet from Sintel-pretrained weights, which uvssm cannot
download; `uvssm train flow-*` pre-trains it on the training clips with a warping loss instead
(see `models/training/loop.py`, stage "flow").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.flow import SpyNet, warp
from models.layers import lrelu, residual_blocks


class ConvResidualBlocks(nn.Module):
    """conv3×3 (in → out) + LeakyReLU(0.1), then `num_block` residual blocks, nested as BasicSR nests
    them (`main.0` the conv, `main.2.<i>` the blocks: BasicSR's `make_layer` returns a Sequential)."""

    def __init__(self, num_in_ch: int, num_out_ch: int = 64, num_block: int = 15):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(num_in_ch, num_out_ch, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
                                  residual_blocks(num_block, num_out_ch))

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class BasicVSR(nn.Module):
    """Input (B, T, 3, h, w) RGB in [0, 1], T ≥ 2; output (B, T, 3, s·h, s·w), unclamped.

    Args:
        num_feat: feature channels (64).
        num_block: residual blocks per branch (30 in the official REDS config).
        scale: 4 (official) or 2 (one pixel-shuffle stage).
    """

    def __init__(self, num_feat: int = 64, num_block: int = 30, scale: int = 4):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.num_feat, self.scale = num_feat, scale
        self.spynet = SpyNet()
        self.backward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.fusion = nn.Conv2d(num_feat * 2, num_feat, 1, 1, 0)
        # ×4 (official): num_feat·4 then 64·4 channels before the shuffles; ×2: straight to 64·4.
        self.upconv1 = nn.Conv2d(num_feat, (num_feat if scale == 4 else 64) * 4, 3, 1, 1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)

    def flows(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(forward, backward) flows (B, T−1, 2, h, w): forward[i] warps frame i onto i+1's grid,
        backward[i] warps frame i+1 onto i's."""
        b, t, c, h, w = x.shape
        x1, x2 = x[:, :-1].reshape(-1, c, h, w), x[:, 1:].reshape(-1, c, h, w)
        backward = self.spynet(x1, x2).view(b, t - 1, 2, h, w)
        forward = self.spynet(x2, x1).view(b, t - 1, 2, h, w)
        return forward, backward

    def _upsample(self, back: Tensor, fwd: Tensor, frame: Tensor) -> Tensor:
        out = lrelu(self.fusion(torch.cat([back, fwd], dim=1)))
        out = lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(lrelu(self.conv_hr(out)))
        return out + F.interpolate(frame, scale_factor=self.scale, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _, h, w = x.shape
        if t < 2:
            raise ValueError(f"BasicVSR needs at least 2 frames, got {t}")
        flows_fwd, flows_bwd = self.flows(x)
        backward: list[Tensor] = [x.new_empty(0)] * t
        feat = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = warp(feat, flows_bwd[:, i])
            feat = self.backward_trunk(torch.cat([x[:, i], feat], dim=1))
            backward[i] = feat
        outputs = []
        feat = torch.zeros_like(feat)
        for i in range(t):
            if i > 0:
                feat = warp(feat, flows_fwd[:, i - 1])
            feat = self.forward_trunk(torch.cat([x[:, i], feat], dim=1))
            outputs.append(self._upsample(backward[i], feat, x[:, i]))
            backward[i] = x.new_empty(0)  # drop what is no longer needed
        return torch.stack(outputs, dim=1)
