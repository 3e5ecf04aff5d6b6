"""Pyramid, Cascading and Deformable (PCD) alignment of EDVR (Wang et al., CVPR-W 2019).

The same module in VOTES and EDVR; the parameter names are BasicSR's (`archs/edvr_arch.py`).
"""

from __future__ import annotations

from torch import Tensor, nn
import torch
from torch.nn import functional as F

from models.layers import DCNv2Pack, lrelu


def _upsample2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class PCDAlignment(nn.Module):
    """Align a neighbour frame's feature pyramid to the reference frame's.

    Three levels (L1 full size, L2 half, L3 quarter) are processed coarse to fine. At each level
    offset features are predicted from the concatenated neighbour and reference features (plus the
    upsampled offset features of the coarser level, **multiplied by 2** as in EDVR even though they
    are 128-channel features, not offsets), and a DCNv2 pack warps the neighbour's features. A final
    cascading DCN refines the L1 result against the reference.

    Args:
        num_feat: channels at every level.
        deformable_groups: deformable groups of every DCN.
    """

    def __init__(self, num_feat: int = 64, deformable_groups: int = 8):
        super().__init__()
        f = num_feat
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for level in ("l3", "l2", "l1"):
            self.offset_conv1[level] = nn.Conv2d(2 * f, f, 3, 1, 1)
            if level == "l3":
                self.offset_conv2[level] = nn.Conv2d(f, f, 3, 1, 1)
            else:
                self.offset_conv2[level] = nn.Conv2d(2 * f, f, 3, 1, 1)
                self.offset_conv3[level] = nn.Conv2d(f, f, 3, 1, 1)
            self.dcn_pack[level] = DCNv2Pack(f, f, 3, padding=1, deformable_groups=deformable_groups)
            if level != "l3":
                self.feat_conv[level] = nn.Conv2d(2 * f, f, 3, 1, 1)
        self.cas_offset_conv1 = nn.Conv2d(2 * f, f, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(f, f, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(f, f, 3, padding=1, deformable_groups=deformable_groups)

    def forward(self, nbr_feats: list[Tensor], ref_feats: list[Tensor]) -> Tensor:
        """nbr_feats, ref_feats: [L1 (B,F,h,w), L2 (B,F,h/2,w/2), L3 (B,F,h/4,w/4)]. Returns (B,F,h,w)."""
        up_offset = up_feat = None
        for i in (3, 2, 1):
            level = f"l{i}"
            nbr, ref = nbr_feats[i - 1], ref_feats[i - 1]
            offset = lrelu(self.offset_conv1[level](torch.cat((nbr, ref), dim=1)))
            if i == 3:
                offset = lrelu(self.offset_conv2[level](offset))
            else:
                offset = lrelu(self.offset_conv2[level](torch.cat((offset, up_offset), dim=1)))
                offset = lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr, offset)
            if i < 3:
                feat = self.feat_conv[level](torch.cat((feat, up_feat), dim=1))
            if i > 1:  # no activation after L1, the cascade follows
                feat = lrelu(feat)
                up_offset = _upsample2(offset) * 2
                up_feat = _upsample2(feat)
        offset = lrelu(self.cas_offset_conv1(torch.cat((feat, ref_feats[0]), dim=1)))
        offset = lrelu(self.cas_offset_conv2(offset))
        return lrelu(self.cas_dcnpack(feat, offset))
