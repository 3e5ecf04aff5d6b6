"""VSR-TGA (Isobe et al., CVPR 2020), the released model without alignment (`junpan19/VSR_TGA`,
`code/arch.py`): temporal group attention over 7 frames.

The 7 input frames t−3…t+3 are regrouped into three groups that all contain the centre frame,
G1 = (t−3, t, t+3), G2 = (t−1, t, t+1), G3 = (t−2, t, t+2), and stacked along the depth axis of
Conv3d: (B, 3, 9, h, w). A stem of (1,3,3) convs, then a (3,3,3) conv with depth stride 3, gives
one feature per group. Intra-group fusion is a dense network whose convs have depth 1, so all
groups share weights; its last unit also emits one attention logit per pixel, soft-maxed over the
3 groups (the temporal group attention). Inter-group fusion uses (3,3,3) convs, the last without
depth padding, which collapses the groups into one. Seven more dense blocks, then pixel-shuffle
upsampling and MATLAB-bicubic-upsampled centre frame as the global residual.

BatchNorm3d everywhere (eps 1e-3; momentum 1e-3, except the fourth norm of the intra-group
blocks, which keeps PyTorch's 0.1, as in the release). Names follow the release, so
TGA-without-align-dla.pth loads strictly: 7,057,853 parameters at ×4.

×2 is not official (the release's last conv emits scale·3 channels for a second pixel shuffle,
which only works at ×4): ours emits 3 channels after the first shuffle (7,056,692 parameters).
The paper's homography-based "fast spatial alignment" was never released and is not here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from uvssm.base.scalers import imresize

# Frame indices of the three groups, each (outer, centre, outer), as the release's data loaders order them.
GROUP_ORDER = (0, 3, 6, 2, 3, 4, 1, 3, 5)


@torch.no_grad()
def _init(modules: list[nn.Module], scale: float = 0.1) -> None:
    """The release's `initialize_weights`: Kaiming-normal (fan_in, gain √2) × 0.1, zero bias."""
    for m in modules:
        nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        m.weight.mul_(scale)
        if m.bias is not None:
            m.bias.zero_()


def _conv(cin: int, cout: int, spec: tuple[tuple, tuple]) -> nn.Conv3d:
    kernel, padding = spec
    return nn.Conv3d(cin, cout, kernel, 1, padding)


def _bn(channels: int, momentum: float) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=momentum)


class DenseBlock(nn.Module):
    """Dense units: unit k is [BN-ReLU-conv 1×1×1 (c → c), BN-ReLU-conv (c → ng)], its output
    concatenated to its input (c grows by ng). Modules are named `bn3d_<j>`/`conv3d_<j>` (j = 1…2k),
    as the release's `head`, `middle`, `last`, `Fusion_head` and `Fusion_last`.

    Args:
        nf, ng: input channels and growth.
        kernels: the (kernel, padding) of each unit's second conv; a depth kernel of 3 without depth
            padding shrinks the depth by 2, and the identity is then cropped to the middle.
        first_bn: False for `Fusion_head`, whose first conv sees ReLU(x) without a norm.
        momenta: BatchNorm momentum per norm, in order.
        attention: the last conv emits one extra channel, soft-maxed over depth and multiplied into
            the new features (the `last` block); forward then returns (features, attention).
    """

    def __init__(self, nf: int, ng: int, kernels: list[tuple[tuple, tuple]], first_bn: bool = True,
                 momenta: list[float] | None = None, attention: bool = False):
        super().__init__()
        self.ng, self.units, self.first_bn, self.attention = ng, len(kernels), first_bn, attention
        momenta = list(momenta or [1e-3] * (2 * len(kernels)))
        c = nf
        for k, (kernel, padding) in enumerate(kernels):
            a, b = 2 * k + 1, 2 * k + 2
            if k or first_bn:
                setattr(self, f"bn3d_{a}", _bn(c, momenta[a - 1]))
            setattr(self, f"conv3d_{a}", nn.Conv3d(c, c, 1))
            setattr(self, f"bn3d_{b}", _bn(c, momenta[b - 1]))
            last = attention and k == len(kernels) - 1
            setattr(self, f"conv3d_{b}", nn.Conv3d(c, ng + 1 if last else ng, kernel, 1, padding))
            c += ng
        self.out_channels = c
        _init([m for m in self.modules() if isinstance(m, nn.Conv3d)])

    def forward(self, x: Tensor):
        att = None
        for k in range(self.units):
            a, b = 2 * k + 1, 2 * k + 2
            pre = getattr(self, f"bn3d_{a}")(x) if (k or self.first_bn) else x
            new = getattr(self, f"conv3d_{a}")(F.relu(pre))
            new = getattr(self, f"conv3d_{b}")(F.relu(getattr(self, f"bn3d_{b}")(new)))
            if self.attention and k == self.units - 1:
                att = torch.softmax(new[:, self.ng:self.ng + 1], dim=2)
                new = new[:, :self.ng] * att
            if new.shape[2] != x.shape[2]:  # depth collapsed by an unpadded (3,3,3) conv
                crop = (x.shape[2] - new.shape[2]) // 2
                x = x[:, :, crop:x.shape[2] - crop]
            x = torch.cat([x, new], dim=1)
        return (x, att) if self.attention else x


_SPATIAL = ((1, 3, 3), (0, 1, 1))  # a (1,3,3) conv, padded in space only
_CUBE = ((3, 3, 3), (1, 1, 1))
_CUBE_NO_DEPTH_PAD = ((3, 3, 3), (0, 1, 1))
def _intra(nf: int, ng: int, momentum: float, attention: bool = False) -> DenseBlock:
    """An intra-group block; its fourth norm keeps PyTorch's default momentum 0.1 (the release's quirk)."""
    momenta = [momentum] * 6
    momenta[3] = 0.1
    return DenseBlock(nf, ng, [_SPATIAL] * 3, momenta=momenta, attention=attention)


class TGA(nn.Module):
    """Input (B, 7, 3, h, w) RGB in [0, 1]; output (B, 3, s·h, s·w), the centre frame, unclamped.

    Args:
        nf: stem and trunk channels (64).  ng: dense growth (16).
        head_feat, up_feat: channels before and after the first pixel shuffle (256, 128).
        scale: 4 (official) or 2 (ours).
        bn_momentum: BatchNorm momentum (the release's 1e-3, a TensorFlow-style 0.999 decay; a short
            training run needs a larger one for the running statistics to settle).
    """

    def __init__(self, nf: int = 64, ng: int = 16, head_feat: int = 256, up_feat: int = 128, scale: int = 4,
                 bn_momentum: float = 1e-3):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.scale = scale
        m = bn_momentum
        self.conv3d_1 = _conv(3, nf, _SPATIAL)
        self.bn3d_1 = _bn(nf, m)
        self.conv3d_2 = _conv(nf, nf, _SPATIAL)
        self.bn3d_2 = _bn(nf, m)
        self.conv3d_2_1 = _conv(nf, nf, _SPATIAL)
        self.bn3d_2_1 = _bn(nf, m)
        self.conv3d_2_2 = nn.Conv3d(nf, nf, (3, 3, 3), (3, 1, 1), (0, 1, 1))  # one feature per group
        # Intra-group fusion (depth-1 kernels: weights shared by the groups), ending in the attention.
        self.head = _intra(nf, ng, m)
        for i in range(1, 5):
            setattr(self, f"middle_{i}", _intra(nf + 3 * i * ng, ng, m))
        self.last = _intra(nf + 15 * ng, ng, m, attention=True)
        # Inter-group fusion: the groups meet in (3,3,3) convs; the last one collapses them.
        self.fusion_head = DenseBlock(nf + 18 * ng, ng, [_CUBE, _CUBE], first_bn=False, momenta=[m] * 4)
        self.Fusion_last = DenseBlock(nf + 20 * ng, ng, [_CUBE_NO_DEPTH_PAD, _SPATIAL], momenta=[m] * 4)
        self.bn3d_2_2 = _bn(nf + 22 * ng, m)
        self.compress = _conv(nf + 22 * ng, nf, _SPATIAL)
        for i in range(6, 13):
            setattr(self, f"middle_{i}", _intra(nf + 3 * (i - 6) * ng, ng, m))
        self.bn3d_3 = _bn(nf + 21 * ng, m)
        self.conv3d_3 = _conv(nf + 21 * ng, head_feat, _SPATIAL)
        self.conv3d_r1 = nn.Conv3d(head_feat, head_feat, 1)
        self.conv3d_r2 = _conv(head_feat, up_feat * 4, _SPATIAL)
        self.conv3d_r4 = nn.Conv3d(up_feat, up_feat, 1)
        self.conv3d_r3 = nn.Conv3d(up_feat, 3 * scale if scale == 4 else 3, 1)
        _init([self.conv3d_1, self.conv3d_2, self.conv3d_2_1, self.conv3d_2_2, self.compress, self.conv3d_3,
               self.conv3d_r1, self.conv3d_r2, self.conv3d_r4, self.conv3d_r3])

    def _intra_group(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features (B, C, 3, h, w) of the three groups after intra-group fusion, and their attention
        (B, 1, 3, h, w)."""
        if x.shape[1] != 7:
            raise ValueError(f"TGA takes 7 frames, got {x.shape[1]}")
        feat = x[:, list(GROUP_ORDER)].transpose(1, 2)  # (B, 3, 9, h, w)
        feat = F.relu(self.bn3d_1(self.conv3d_1(feat)))
        feat = F.relu(self.bn3d_2(self.conv3d_2(feat)))
        feat = F.relu(self.bn3d_2_1(self.conv3d_2_1(feat)))
        feat = self.head(self.conv3d_2_2(feat))  # depth 3: one per group
        for i in range(1, 5):
            feat = getattr(self, f"middle_{i}")(feat)
        return self.last(feat)

    def group_attention(self, x: Tensor) -> Tensor:
        """The temporal group attention (B, 1, 3, h, w), for inspection; sums to 1 over the groups."""
        return self._intra_group(x)[1]

    def forward(self, x: Tensor) -> Tensor:
        feat, _ = self._intra_group(x)
        feat = self.Fusion_last(self.fusion_head(feat))  # depth 1
        feat = self.compress(F.relu(self.bn3d_2_2(feat)))
        for i in range(6, 13):
            feat = getattr(self, f"middle_{i}")(feat)
        feat = F.relu(self.conv3d_3(F.relu(self.bn3d_3(feat))))
        res = self.conv3d_r2(F.relu(self.conv3d_r1(feat)))
        res = F.relu(F.pixel_shuffle(res[:, :, 0], 2)).unsqueeze(2)
        res = self.conv3d_r3(F.relu(self.conv3d_r4(res)))[:, :, 0]
        if self.scale == 4:
            res = F.pixel_shuffle(res, 2)
        return imresize(x[:, 3], self.scale) + res
