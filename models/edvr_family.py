"""What VOTES and EDVR share: the feature pyramid, PCD alignment of every frame to the centre frame,
the residual reconstruction trunk and the pixel-shuffle head with its bilinear global residual.

Subclasses call `_build_front` (conv_first, feature_extraction, conv_l2_*, conv_l3_*, pcd_align),
register their own `fusion`, then `_build_back` (reconstruction, upconv1[, upconv2], conv_hr,
conv_last). The attribute names are BasicSR's, so official checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.layers import lrelu, residual_blocks
from models.pcd import PCDAlignment


class EDVRFamily(nn.Module):
    scale: int
    center: int

    def _build_front(self, num_in_ch: int, num_feat: int, num_extract_block: int, deformable_groups: int) -> None:
        f = num_feat
        self.conv_first = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.feature_extraction = residual_blocks(num_extract_block, f)
        self.conv_l2_1 = nn.Conv2d(f, f, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(f, f, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(f, f, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat=f, deformable_groups=deformable_groups)

    def _build_back(self, num_feat: int, num_reconstruct_block: int, scale: int, head_feat: int = 64) -> None:
        f, h = num_feat, head_feat
        self.reconstruction = residual_blocks(num_reconstruct_block, f)
        # The official head has 64 channels whatever num_feat is (hard-coded), except that ×4's
        # first shuffle keeps num_feat. `head_feat` changes the 64 for the small CPU models: the
        # head runs at output size, where 64 channels cost more than the whole rest of a tiny model.
        if scale == 2:
            self.upconv1 = nn.Conv2d(f, h * 4, 3, 1, 1)
        elif scale == 3:
            self.upconv1 = nn.Conv2d(f, h * 9, 3, 1, 1)
        elif scale == 4:
            self.upconv1 = nn.Conv2d(f, f * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(f, h * 4, 3, 1, 1)
        else:
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        self.conv_hr = nn.Conv2d(h, h, 3, 1, 1)
        self.conv_last = nn.Conv2d(h, 3, 3, 1, 1)

    @staticmethod
    def check_window(x: Tensor, num_frame: int) -> None:
        b, t, c, h, w = x.shape
        if t != num_frame:
            raise ValueError(f"expected windows of {num_frame} frames, got {t}")
        if h % 4 or w % 4:
            raise ValueError(f"height and width must be multiples of 4, got {h}x{w}")

    def frame_pyramid(self, frames: Tensor) -> list[Tensor]:
        """(N, 3, h, w) → every frame's feature pyramid [(N, F, h, w), (N, F, h/2, w/2), (N, F, h/4, w/4)]:
        the part of `extract_and_align` that depends on one frame alone, so the inference runner
        computes it once per frame and reuses it in the windows that share the frame."""
        l1 = self.feature_extraction(lrelu(self.conv_first(frames)))
        l2 = lrelu(self.conv_l2_2(lrelu(self.conv_l2_1(l1))))
        l3 = lrelu(self.conv_l3_2(lrelu(self.conv_l3_1(l2))))
        return [l1, l2, l3]

    def extract_and_align(self, x: Tensor, pyramid: list[Tensor] | None = None) -> Tensor:
        """x (B, T, 3, h, w) → every frame's features aligned to the centre frame, (B, T, F, h, w).

        pyramid: the windows' frame pyramids, levels (B, T, F, h/2^k, w/2^k), if already computed."""
        b, t = x.shape[:2]
        if pyramid is None:
            pyramid = [level.view(b, t, *level.shape[1:]) for level in self.frame_pyramid(x.flatten(0, 1))]
        ref = [level[:, self.center] for level in pyramid]
        return torch.stack([self.pcd_align([level[:, i] for level in pyramid], ref) for i in range(t)], dim=1)

    def reconstruct(self, feat: Tensor, x_center: Tensor) -> Tensor:
        """Fused features (B, F, h, w) → the centre frame at ×scale, plus its bilinear upsampling."""
        out = self.reconstruction(feat)
        out = lrelu(F.pixel_shuffle(self.upconv1(out), 3 if self.scale == 3 else 2))
        if self.scale == 4:
            out = lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(lrelu(self.conv_hr(out)))
        return out + F.interpolate(x_center, scale_factor=self.scale, mode="bilinear", align_corners=False)
