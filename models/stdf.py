"""STDF (Deng et al., "Spatio-Temporal Deformable Convolution for Compressed Video Quality
Enhancement", AAAI 2020) as the de-facto reference STDF-PyTorch builds it ("MFVQE": STDF fusion →
quality-enhancement CNN → + centre frame). Parameter names are
STDF-PyTorch's (`ffnet.*`, `qenet.*`).

R3 (7 frames, the spec's setting): 364,510 parameters on Y, 486,714 on RGB. It restores the
compressed frame at its own (LQ) resolution; in the two-stage baselines an SR model follows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.ops.deform_conv import DeformConvBackend, deform_conv2d, torchvision_deform_conv2d
from models.padding import pad_to_multiple


class ModulatedDeformConv(nn.Module, DeformConvBackend):
    """A DCNv2 whose offsets and masks come from outside (STDF predicts them with its U-Net)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.deformable_groups = in_channels  # STDF: each input frame's channel has its own offsets
        torchvision_deform_conv2d()  # looked up now, never inside a (compiled) forward
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        with torch.no_grad():
            bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
            self.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, padding=self.padding, mask=mask,
                             backend=self.dcn_backend)


def _conv_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True)]


class STDFFusion(nn.Module):
    """Offsets and masks from a small U-Net (nb−1 stride-2 stages and a bottom stage), then one
    modulated deformable conv over the raw stacked frames with one deformable group per input
    channel (each frame plane gets its own offsets), then ReLU.

    Args:
        in_nc: stacked input channels (frames × colour channels).  out_nc: fused channels (64).
        nf: U-Net channels (32).  nb: U-Net depth (3; sizes must then be multiples of 2**nb).
    """

    def __init__(self, in_nc: int, out_nc: int = 64, nf: int = 32, nb: int = 3, deform_ks: int = 3):
        super().__init__()
        self.nb, self.in_nc, self.taps = nb, in_nc, deform_ks * deform_ks
        self.in_conv = nn.Sequential(*_conv_relu(in_nc, nf))
        for i in range(1, nb):
            setattr(self, f"dn_conv{i}", nn.Sequential(*_conv_relu(nf, nf, 2), *_conv_relu(nf, nf)))
            setattr(self, f"up_conv{i}", nn.Sequential(*_conv_relu(2 * nf, nf),
                                                       nn.ConvTranspose2d(nf, nf, 4, 2, 1), nn.ReLU(inplace=True)))
        self.tr_conv = nn.Sequential(*_conv_relu(nf, nf, 2), *_conv_relu(nf, nf),
                                     nn.ConvTranspose2d(nf, nf, 4, 2, 1), nn.ReLU(inplace=True))
        self.out_conv = nn.Sequential(*_conv_relu(nf, nf))
        self.offset_mask = nn.Conv2d(nf, in_nc * 3 * self.taps, 3, 1, 1)
        self.deform_conv = ModulatedDeformConv(in_nc, out_nc, deform_ks, deform_ks // 2)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.in_conv(x)]
        for i in range(1, self.nb):
            skips.append(getattr(self, f"dn_conv{i}")(skips[-1]))
        out = self.tr_conv(skips[-1])
        for i in range(self.nb - 1, 0, -1):  # the full-size in_conv output is not a skip
            out = getattr(self, f"up_conv{i}")(torch.cat((out, skips[i]), dim=1))
        off_msk = self.offset_mask(self.out_conv(out))
        n_off = self.in_nc * 2 * self.taps
        return F.relu(self.deform_conv(x, off_msk[:, :n_off], torch.sigmoid(off_msk[:, n_off:])), inplace=True)


class QualityEnhancer(nn.Module):
    """PlainCNN: conv in → (nb − 2) hidden convs, each + ReLU → conv out (no activation)."""

    def __init__(self, in_nc: int = 64, nf: int = 48, nb: int = 8, out_nc: int = 3):
        super().__init__()
        self.in_conv = nn.Sequential(*_conv_relu(in_nc, nf))
        self.hid_conv = nn.Sequential(*[m for _ in range(nb - 2) for m in _conv_relu(nf, nf)])
        self.out_conv = nn.Conv2d(nf, out_nc, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_conv(self.hid_conv(self.in_conv(x)))


class STDF(nn.Module):
    """STDF-R3 ("MFVQE"): windows (B, 2r+1, C, H, W) in [0, 1] → the restored centre frame (B, C, H, W).

    Frames are stacked plane-major ([R1..R7, G1..G7, B1..B7]) as STDF-PyTorch does. H and W need
    not be multiples of 8: windows are padded (reflection) and the output cropped back.

    Args:
        in_nc: colour channels (1 for Y, 3 for RGB).  radius: frames on each side (3 for R3).
        nf, nb: the fusion U-Net (32, 3).  fused: fused channels (64).  qe_nf, qe_nb: the QE CNN (48, 8).
    """

    def __init__(self, in_nc: int = 3, radius: int = 3, nf: int = 32, nb: int = 3, fused: int = 64,
                 qe_nf: int = 48, qe_nb: int = 8, scale: int = 1):
        super().__init__()
        if scale != 1:
            raise ValueError("STDF restores at the input resolution (scale 1); chain an SR model for x2/x4")
        self.in_nc, self.radius, self.num_frame, self.scale = in_nc, radius, 2 * radius + 1, 1
        self.multiple = 2 ** nb
        self.ffnet = STDFFusion(in_nc * self.num_frame, fused, nf, nb)
        self.qenet = QualityEnhancer(fused, qe_nf, qe_nb, in_nc)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c, h, w = x.shape
        if t != self.num_frame or c != self.in_nc:
            raise ValueError(f"expected windows of {self.num_frame} frames of {self.in_nc} channels, got {t}x{c}")
        x, _ = pad_to_multiple(x, self.multiple)
        stacked = x.transpose(1, 2).reshape(b, c * t, *x.shape[-2:])  # plane-major: [R1..R7, G1..G7, B1..B7]
        out = self.qenet(self.ffnet(stacked)) + x[:, self.radius]
        return out[..., :h, :w]
