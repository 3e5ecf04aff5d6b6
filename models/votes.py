"""VOTES (Luo et al., "Restoration of User Videos Shared on Social Media", ACM MM 2022).

Written from the paper (Luo et al., ACM MM 2022, §3) and the structure of the official code
(`luohongming/VOTES`), whose module names are kept so official checkpoints load strictly.

Data flow for a window x of shape (B, 5, 3, h, w), RGB in [0, 1], h and w multiples of 4:
1. `bin` (the degradation sensing module, frozen: run without gradients) estimates the
   down-scaled original of the centre frame, ẑ_t, from LQ frames 0, 2 and 4.
2. The degradation feature map (DFM) e compares 8-bit luma of x_t and ẑ_t (see `degradation_feature_map`).
3. A shared feature extractor (conv + 5 residual blocks) and a 3-level pyramid feed PCD alignment
   of every frame (the centre too) to the centre frame.
4. The degradation modulation module (`fusion`) fuses the 5 aligned feature maps and adds, block
   after block, features computed from the DFM alone.
5. 40 residual blocks, a pixel-shuffle head (×2 or ×4), and a bilinear ×s upsampled centre frame
   added as a global residual. The output is not clamped.

Config "L" (the paper's): 128 features, 8 deformable groups, 5/40/10 blocks; 24,200,937
parameters at ×2 (21,930,083 outside the DSM), 24,791,273 at ×4.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from models.bin import DegradationSensing
from models.edvr_family import EDVRFamily
from models.layers import lrelu

DfmNorm = Literal["batch", "sample"]
DfmMode = Literal["estimate", "zero"]


def luma8(rgb: Tensor) -> Tensor:
    """8-bit BT.601 full-range luma as the official code computes it: round(255·(0.299 R + 0.587 G + 0.114 B)).

    rgb: (B, 3, h, w) in [0, 1]. Returns (B, 1, h, w) float holding integers (0..255 for inputs in [0, 1]).
    """
    r, g, b = (rgb * 255.0).unbind(dim=1)
    return (0.299 * r + 0.587 * g + 0.114 * b).round().unsqueeze(1)


def degradation_feature_map(x_center: Tensor, z_hat: Tensor, normalize: DfmNorm = "batch") -> Tensor:
    """The DFM e of eq. 5, as the official code computes it (`votes_arch.py`, `forward`).

        d = luma8(x_t) − luma8(clamp(ẑ_t, 0, 1));  L = log2(|d| + 1) ∈ [0, 8];  e = round(255·L / S) / 255

    Args:
        x_center: the LQ centre frames (B, 3, h, w).
        z_hat: the DSM's estimate ẑ_t (B, 3, h, w); clamped to [0, 1] here.
        normalize: how S is taken.
            "batch" (default, the official behaviour): S = max of L over the whole mini-batch, so a
            sample's DFM depends on the other samples it is batched with. In official training S is
            the max over 16 random 64×64 patches, at test time over one full frame; the scales differ.
            "sample": S = max of L over each sample separately. It exists because of that train/test
            mismatch: a sample's DFM then no longer depends on its batch, so training on patches and
            testing on full frames see the same normalisation.

    Returns:
        (B, 1, h, w) in [0, 1] on a 1/255 grid. Where S = 0 (the estimate equals the frame in 8-bit
        luma) the DFM is 0, where the official code would divide by zero and give NaN.
    """
    diff = luma8(x_center) - luma8(z_hat.clamp(0, 1))
    level = torch.log2(diff.abs() + 1)
    if normalize == "batch":
        peak = level.amax()
    elif normalize == "sample":
        peak = level.amax(dim=(1, 2, 3), keepdim=True)
    else:
        raise ValueError(f"normalize must be 'batch' or 'sample', got {normalize!r}")
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))  # level is 0 wherever peak is 0
    return (level / peak * 255.0).round() / 255.0


def dfm_agreement(x_center: Tensor, z_hat: Tensor, z: Tensor) -> float:
    """How well the DSM's estimate ẑ_t locates the degradation: the Pearson correlation, over every pixel of the
    batch, between the DFM's levels L = log2(|luma8(x_t) − luma8(ẑ_t)| + 1) (before its normalisation and
    rounding, which a correlation ignores but for ties) and the same levels with the true z_t. 1: the DFM is high
    exactly where the LQ frame differs from z_t; 0: no relation (also where either map is flat, e.g. an
    estimate that copies the LQ frame and so gives a DFM of zeros). This, not the PSNR of ẑ_t against z_t, is
    what VOTES uses the DSM for: an estimate far from z_t in PSNR can still put its differences in the right
    places, and an LQ frame passed through scores a high PSNR with a DFM that says nothing."""
    def levels(estimate: Tensor) -> Tensor:
        level = torch.log2((luma8(x_center) - luma8(estimate.clamp(0, 1))).abs() + 1).flatten().double()
        return level - level.mean()

    est, true = levels(z_hat), levels(z)
    scale = est.norm() * true.norm()
    return float(est @ true / scale) if scale > 0 else 0.0


class DegradationModulation(nn.Module):
    """The degradation modulation module (DMM; `MaskFusion` in the official code).

        f⁰ = LReLU(Conv1×1(concat of the T aligned features))      (feat_fusion)
        β⁰ = Conv3×3(e)                                            (mask_modulation_first, no activation)
        βⁱ = LReLU(Convᵢ(βⁱ⁻¹)),  fⁱ = LReLU(Convᵢ(fⁱ⁻¹)) + βⁱ     (mask_modulation_l[i], feat_cas_l[i])
        out = Conv3×3(fᴺ)                                          (fusion, no activation)

    The modulation is purely additive; the β branch sees only the DFM.

    Args:
        num_feat: channels.  num_frame: aligned frames concatenated at the input.
        num_blocks: modulation blocks N.
    """

    def __init__(self, num_feat: int = 128, num_frame: int = 5, num_blocks: int = 10):
        super().__init__()
        # Registered in the official order (`MaskFusion.__init__`: feat_fusion, the lists mask_modulation_l and
        # feat_cas_l, mask_modulation_first, fusion), so the parameters come in the order of the official optimiser's
        # group. Built (their random initial weights drawn) in uvssm's earlier order, so a seed gives the weights
        # it always gave.
        feat_fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        first = nn.Conv2d(1, num_feat, 3, 1, 1)
        modulation = [nn.Conv2d(num_feat, num_feat, 3, 1, 1) for _ in range(num_blocks)]
        cascade = [nn.Conv2d(num_feat, num_feat, 3, 1, 1) for _ in range(num_blocks)]
        self.feat_fusion = feat_fusion
        self.mask_modulation_l = nn.ModuleList(modulation)
        self.feat_cas_l = nn.ModuleList(cascade)
        self.mask_modulation_first = first
        self.fusion = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, aligned: Tensor, dfm: Tensor) -> Tensor:
        """aligned: (B, T, F, h, w); dfm: (B, 1, h, w). Returns (B, F, h, w)."""
        b, t, c, h, w = aligned.shape
        feat = lrelu(self.feat_fusion(aligned.reshape(b, t * c, h, w)))
        beta = self.mask_modulation_first(dfm)
        for conv_f, conv_beta in zip(self.feat_cas_l, self.mask_modulation_l):
            feat = lrelu(conv_f(feat))
            beta = lrelu(conv_beta(beta))
            feat = feat + beta
        return self.fusion(feat)


class VOTES(EDVRFamily):
    """VOTES video restoration and super-resolution network.

    Args:
        num_in_ch: input channels (3, RGB).
        num_feat: feature channels F (128 in config L).
        num_frame: frames per window (5; the DSM needs exactly 5).
        deformable_groups: of every DCN in PCD (8).
        num_extract_block: residual blocks of the feature extractor (5).
        num_reconstruct_block: residual blocks of the reconstruction trunk (40).
        num_modulation_blocks: blocks of the DMM (10).
        scale: 2, 3 or 4. ×2 and ×3 use one pixel shuffle, ×4 two ×2 shuffles.
        dfm_norm: "batch" (official) or "sample"; see `degradation_feature_map`.
        dfm: "estimate" (the model) or "zero" (the paper's "w/o DFM" ablation: e ≡ 0 and the
            DSM is not run; its parameters stay, so checkpoints keep one layout).
        bin_features, bin_blocks: the DSM's G0 and D (64 and 6 in every official config).
        head_feat: channels of the output-size head (64 in every official config; smaller for CPU demos).
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_feat: int = 128,
                 num_frame: int = 5,
                 deformable_groups: int = 8,
                 num_extract_block: int = 5,
                 num_reconstruct_block: int = 40,
                 num_modulation_blocks: int = 10,
                 scale: int = 2,
                 dfm_norm: DfmNorm = "batch",
                 dfm: DfmMode = "estimate",
                 bin_features: int = 64,
                 bin_blocks: int = 6,
                 head_feat: int = 64):
        super().__init__()
        if num_frame != 5:
            raise ValueError("VOTES's degradation sensing module takes exactly 5 frames")
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        if dfm not in ("estimate", "zero"):
            raise ValueError(f"dfm must be 'estimate' or 'zero', got {dfm!r}")
        if dfm_norm not in ("batch", "sample"):
            raise ValueError(f"dfm_norm must be 'batch' or 'sample', got {dfm_norm!r}")
        self.scale, self.num_frame, self.center = scale, num_frame, num_frame // 2
        self.dfm_norm, self.dfm_mode = dfm_norm, dfm
        f = num_feat

        self.bin = DegradationSensing(G0=bin_features, D=bin_blocks)
        self.bin.requires_grad_(False)  # frozen in stage 2; `train_bin()` re-enables it for stage 1

        self._build_front(num_in_ch, f, num_extract_block, deformable_groups)
        self.fusion = DegradationModulation(num_feat=f, num_frame=num_frame, num_blocks=num_modulation_blocks)
        self._build_back(f, num_reconstruct_block, scale, head_feat)

    def estimate_dfm(self, x: Tensor) -> Tensor:
        """The DFM (B, 1, h, w) of the centre frames of windows x (B, 5, 3, h, w), without gradients."""
        x_center = x[:, self.center]
        if self.dfm_mode == "zero":
            return x_center.new_zeros(x_center.shape[0], 1, *x_center.shape[2:])
        with torch.no_grad():
            _, z_t = self.bin(x)
            return degradation_feature_map(x_center, z_t, self.dfm_norm)

    def forward(self, x: Tensor, dfm: Tensor | None = None, pyramid: list[Tensor] | None = None) -> Tensor:
        """x: (B, 5, 3, h, w) RGB in [0, 1]. Returns the centre frame (B, 3, s·h, s·w), unclamped.

        dfm: a precomputed DFM (B, 1, h, w) to use instead of estimating one.
        pyramid: the frames' feature pyramids if already computed (see `frame_pyramid`).
        """
        self.check_window(x, self.num_frame)
        x_center = x[:, self.center]
        if dfm is None:
            dfm = self.estimate_dfm(x)
        return self.reconstruct(self.fusion(self.extract_and_align(x, pyramid), dfm), x_center)

    def train_bin(self, enabled: bool = True) -> None:
        """Let the DSM's parameters take gradients (stage 1) or freeze them (stage 2, the default)."""
        self.bin.requires_grad_(enabled)
