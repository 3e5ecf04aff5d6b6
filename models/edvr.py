"""EDVR (Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPR-W 2019), as BasicSR builds it (`basicsr/archs/edvr_arch.py`),
with the ×2 head of the VOTES repository's variant. Parameter names are BasicSR's.

EDVR-L: 128 features, 5 extraction / 40 reconstruction blocks: 20,633,827 parameters at ×4 and
20,043,491 at ×2. EDVR-M: 64 features, 5 / 10 blocks: 3,300,131 at ×4, 3,152,419 at ×2.
The pre-deblur module (REDS deblurring tracks) and HR inputs are not included.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.edvr_family import EDVRFamily
from models.layers import lrelu


def _pool_pair(x: Tensor) -> Tensor:
    """Max- and average-pooled (3×3, stride 2) copies side by side on the channel axis."""
    return torch.cat((F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)), dim=1)


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion.

    Temporal: each aligned frame is weighted per pixel by sigmoid(⟨embedding(frame), embedding(centre)⟩).
    Fusion: a 1×1 conv over all weighted frames. Spatial: a two-level pyramid of max/avg-pooled
    attention gives a multiplicative map (sigmoid, ×2 so that it starts near 1) and an additive map.

    Args:
        num_feat: channels.  num_frame: aligned frames.  center: index of the reference frame.
    """

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center: int = 2):
        super().__init__()
        f = num_feat
        self.center = center
        self.temporal_attn1 = nn.Conv2d(f, f, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(f, f, 3, 1, 1)
        self.feat_fusion = nn.Conv2d(num_frame * f, f, 1, 1)
        self.spatial_attn1 = nn.Conv2d(num_frame * f, f, 1)
        self.spatial_attn2 = nn.Conv2d(2 * f, f, 1)
        self.spatial_attn3 = nn.Conv2d(f, f, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(f, f, 1)
        self.spatial_attn5 = nn.Conv2d(f, f, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(f, f, 1)
        self.spatial_attn_l2 = nn.Conv2d(2 * f, f, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(f, f, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(f, f, 1)
        self.spatial_attn_add2 = nn.Conv2d(f, f, 1)

    def forward(self, aligned: Tensor) -> Tensor:
        """aligned: (B, T, F, h, w) → (B, F, h, w); h and w must be multiples of 4."""
        b, t, c, h, w = aligned.shape
        ref = self.temporal_attn1(aligned[:, self.center])  # (B, F, h, w)
        emb = self.temporal_attn2(aligned.reshape(b * t, c, h, w)).view(b, t, c, h, w)
        weight = torch.sigmoid((emb * ref.unsqueeze(1)).sum(dim=2, keepdim=True))  # (B, T, 1, h, w)
        weighted = (aligned * weight).reshape(b, t * c, h, w)

        feat = lrelu(self.feat_fusion(weighted))
        attn = lrelu(self.spatial_attn1(weighted))
        attn = lrelu(self.spatial_attn2(_pool_pair(attn)))  # h/2
        level = lrelu(self.spatial_attn_l1(attn))
        level = lrelu(self.spatial_attn_l2(_pool_pair(level)))  # h/4
        level = _up2(lrelu(self.spatial_attn_l3(level)))  # h/2
        attn = lrelu(self.spatial_attn3(attn)) + level
        attn = _up2(lrelu(self.spatial_attn4(attn)))  # h
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVR(EDVRFamily):
    """EDVR for video super-resolution: PCD alignment, TSA fusion (or a 1×1 conv), residual trunk.

    Args:
        num_in_ch: input channels.  num_feat: features (64 for M, 128 for L).
        num_frame: frames per window (5 for REDS).  deformable_groups: of the DCNs (8).
        num_extract_block, num_reconstruct_block: residual blocks (5 and 10 for M, 5 and 40 for L).
        with_tsa: TSA fusion (True) or a plain 1×1 conv (the official "woTSA" first stage).
        scale: 2, 3 or 4.
        head_feat: channels of the output-size head (64, the official value; smaller for CPU demos).
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_feat: int = 64,
                 num_frame: int = 5,
                 deformable_groups: int = 8,
                 num_extract_block: int = 5,
                 num_reconstruct_block: int = 10,
                 with_tsa: bool = True,
                 scale: int = 4,
                 head_feat: int = 64):
        super().__init__()
        self.scale, self.num_frame, self.center, self.with_tsa = scale, num_frame, num_frame // 2, with_tsa
        self._build_front(num_in_ch, num_feat, num_extract_block, deformable_groups)
        self.fusion = (TSAFusion(num_feat, num_frame, self.center) if with_tsa
                       else nn.Conv2d(num_frame * num_feat, num_feat, 1, 1))
        self._build_back(num_feat, num_reconstruct_block, scale, head_feat)

    def forward(self, x: Tensor, pyramid: list[Tensor] | None = None) -> Tensor:
        """x: (B, T, 3, h, w) in [0, 1], h and w multiples of 4 → (B, 3, s·h, s·w), unclamped.

        pyramid: the frames' feature pyramids if already computed (see `frame_pyramid`)."""
        self.check_window(x, self.num_frame)
        aligned = self.extract_and_align(x, pyramid)
        feat = self.fusion(aligned if self.with_tsa else aligned.flatten(1, 2))
        return self.reconstruct(feat, x[:, self.center])
