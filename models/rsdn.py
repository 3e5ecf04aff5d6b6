"""RSDN (Isobe et al., ECCV 2020), the released RSDN9_128 (`junpan19/RSDN`, `RSDN/arch.py`): a
unidirectional recurrent network with structure-detail (SD) branches and hidden-state adaptation.

Each frame is split into structure S = up(down(x, ½), 2) (bilinear) and detail D = x − S. Step t
sees the (D, S) pairs of frames t−1 and t (step 0: frames 1 and 0), the previous hidden state
h = h_d + h_s, gated per pixel by hidden-state adaptation (a 3×3 kernel predicted from the current
LR frame, applied to every hidden channel, sigmoid), and the previous detail/structure outputs.
Nine SD blocks exchange information between the branches; the output is the pixel shuffle of a
conv over both branches' outputs. No global residual. Names follow the release, so RSDN.pth loads
strictly (6,180,236 parameters at ×4).

×2 is not official: the heads emit 3·2² = 12 channels instead of 48 (5,975,360 parameters; ours).
The paper also supervises the detail and structure outputs against the ground truth's own
decomposition; `forward(x, return_aux=True)` and `aux_targets` give the training loop those pairs
(weighted by the config's `aux_weight`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.layers import scaled_kaiming_init


def structure_detail(x: Tensor) -> tuple[Tensor, Tensor]:
    """(S, D) of frames (..., 3, h, w): S is x down-scaled by 2 and back up (bilinear), D = x − S."""
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:])
    h, w = shape[-2:]
    down = F.interpolate(flat, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear", align_corners=False)
    s = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).reshape(shape)
    return s, x - s


def adapt_hidden(hidden: Tensor, kernels: Tensor) -> Tensor:
    """Hidden-state adaptation: each channel's 3×3 neighbourhood (zero padded) dotted with the per-pixel
    kernel (B, 9, H, W), the same kernel for every channel; returns the sigmoid gate (B, C, H, W)."""
    b, c, h, w = hidden.shape
    patches = F.unfold(hidden, 3, padding=1).view(b, c, 9, h, w)
    return torch.sigmoid((patches * kernels.unsqueeze(1)).sum(dim=2))


class SDBlock(nn.Module):
    """Structure-detail block (`ResidualBlock_noBN` in the release): conv-ReLU-conv per branch, the
    sum of both branches' residuals added to each identity."""

    def __init__(self, nf: int = 128):
        super().__init__()
        self.conv_d1, self.conv_d2 = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_s1, self.conv_s2 = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1)
        scaled_kaiming_init([self.conv_d1, self.conv_d2, self.conv_s1, self.conv_s2], 0.1)

    def forward(self, hd: Tensor, hs: Tensor) -> tuple[Tensor, Tensor]:
        both = self.conv_d2(F.relu(self.conv_d1(hd))) + self.conv_s2(F.relu(self.conv_s1(hs)))
        return hd + both, hs + both


class RecurrentCell(nn.Module):
    """One step (`neuro` in the release)."""

    def __init__(self, nf: int = 128, out_ch: int = 48, num_blocks: int = 9):
        super().__init__()
        self.forget = nn.Conv2d(3, 9, 3, 1, 1)
        self.conv_d = nn.Conv2d(out_ch + nf + 6, nf, 3, 1, 1)
        self.conv_s = nn.Conv2d(out_ch + nf + 6, nf, 3, 1, 1)
        for i in range(1, num_blocks + 1):
            setattr(self, f"SD{i}", SDBlock(nf))
        self.num_blocks = num_blocks
        self.conv_hd, self.conv_od = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, out_ch, 3, 1, 1)
        self.conv_hs, self.conv_os = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, out_ch, 3, 1, 1)
        scaled_kaiming_init([self.conv_d, self.conv_s, self.conv_hd, self.conv_od, self.conv_hs, self.conv_os], 0.1)

    def forward(self, d: Tensor, s: Tensor, hidden: Tensor, od: Tensor, os_: Tensor, frame: Tensor):
        hidden = hidden * adapt_hidden(hidden, F.leaky_relu(self.forget(frame), 0.1))
        hd = F.leaky_relu(self.conv_d(torch.cat([d, hidden, od], 1)), 0.1)
        hs = F.leaky_relu(self.conv_s(torch.cat([s, hidden, os_], 1)), 0.1)
        for i in range(1, self.num_blocks + 1):
            hd, hs = getattr(self, f"SD{i}")(hd, hs)
        return (F.leaky_relu(self.conv_hd(hd), 0.1), F.leaky_relu(self.conv_hs(hs), 0.1),
                self.conv_od(hd), self.conv_os(hs))


class RSDN(nn.Module):
    """Input (B, T, 3, h, w) RGB in [0, 1], T ≥ 2; output (B, T, 3, s·h, s·w), unclamped.

    Args:
        nf: hidden channels (128).  num_blocks: SD blocks (9).  scale: 4 (official) or 2 (ours).
    """

    def __init__(self, nf: int = 128, num_blocks: int = 9, scale: int = 4):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.nf, self.scale, self.out_ch = nf, scale, 3 * scale * scale
        self.neuro = RecurrentCell(nf, self.out_ch, num_blocks)
        self.conv = nn.Conv2d(2 * self.out_ch, self.out_ch, 3, 1, 1)
        scaled_kaiming_init([self.conv], 0.1)

    def forward_all(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(SR, detail SR, structure SR), each (B, T, 3, s·h, s·w)."""
        b, t, _, h, w = x.shape
        if t < 2:
            raise ValueError(f"RSDN needs at least 2 frames, got {t}")
        s, d = structure_detail(x)
        hd = hs = x.new_zeros(b, self.nf, h, w)
        od = os_ = x.new_zeros(b, self.out_ch, h, w)
        outs, outs_d, outs_s = [], [], []
        for i in range(t):
            a, c = (1, 0) if i == 0 else (i - 1, i)
            hd, hs, od, os_ = self.neuro(torch.cat([d[:, a], d[:, c]], 1), torch.cat([s[:, a], s[:, c]], 1),
                                         hd + hs, od, os_, x[:, i])
            outs.append(F.pixel_shuffle(self.conv(torch.cat([od, os_], 1)), self.scale))
            outs_d.append(F.pixel_shuffle(od, self.scale))
            outs_s.append(F.pixel_shuffle(os_, self.scale))
        return torch.stack(outs, 1), torch.stack(outs_d, 1), torch.stack(outs_s, 1)

    def forward(self, x: Tensor, return_aux: bool = False):
        """SR (B, T, 3, s·h, s·w); with `return_aux`, also the (detail SR, structure SR) pair."""
        out, detail, structure = self.forward_all(x)
        return (out, (detail, structure)) if return_aux else out

    @staticmethod
    def aux_targets(aux: tuple[Tensor, Tensor], gt: Tensor) -> list[tuple[Tensor, Tensor]]:
        """The paper's extra supervision: the detail and structure outputs against the same
        decomposition of the ground truth."""
        structure, detail = structure_detail(gt)
        return [(aux[0], detail), (aux[1], structure)]
