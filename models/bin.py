"""The degradation sensing module (DSM) of VOTES: a two-stage frame interpolator built from the
backbone of BIN (Shen et al., "Blurry Video Frame Interpolation", CVPR 2020).

Given LQ frames x_{t-2}, x_t, x_{t+2} (frames 0, 2, 4 of the 5-frame window), it estimates the
down-scaled original frames at t-1, t+1 and t:

    ẑ_{t-1} = F_B1(x_{t-2}, x_t)
    ẑ_{t+1} = F_B1(x_t, x_{t+2})        # the same F_B1 (shared weights), inputs in this order
    ẑ_t     = F_B2(ẑ_{t-1}, ẑ_{t+1})

Each F_B is a residual dense network working at half the LQ size (pixel-unshuffle ×2 in, pixel
shuffle ×2 out) whose output is added to the mean of its two inputs. Sizes: G0=64 features, D=6
residual dense blocks of C=4 dense layers with growth G=32; 1,135,427 parameters each.

Parameter names are those of the official `archs/bin_arch.py` (`model.model1_1.RDBs.0.LFF.weight`),
so the official `bin_100000.pth` and VOTES checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class DenseLayer(nn.Module):
    """conv3×3 + ReLU whose output is concatenated to its input (keys `conv.0.*`)."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, 3, 1, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), dim=1)


class ResidualDenseBlock(nn.Module):
    """`num_layers` dense layers, a 1×1 local fusion (`LFF`) back to `channels`, and a local residual."""

    def __init__(self, channels: int, growth: int, num_layers: int):
        super().__init__()
        self.convs = nn.Sequential(*(DenseLayer(channels + c * growth, growth) for c in range(num_layers)))
        self.LFF = nn.Conv2d(channels + num_layers * growth, channels, 1, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.LFF(self.convs(x))


class ResidualDenseInterpolator(nn.Module):
    """F_B: estimates the frame between `num_inputs` RGB frames, as their mean plus a learned residual.

    Args:
        num_inputs: frames concatenated at the input (2 in VOTES).
        G0: feature channels.  D: residual dense blocks.  C: dense layers per block.  G: growth rate.
    """

    def __init__(self, num_inputs: int = 2, G0: int = 64, D: int = 6, C: int = 4, G: int = 32):
        super().__init__()
        self.num_inputs = num_inputs
        self.SFENet1 = nn.Conv2d(3 * 4 * num_inputs, G0, 5, 1, 2)
        self.SFENet2 = nn.Conv2d(G0, G0, 3, 1, 1)
        self.RDBs = nn.ModuleList(ResidualDenseBlock(G0, G, C) for _ in range(D))
        self.GFF = nn.Sequential(nn.Conv2d(D * G0, G0, 1, 1, 0), nn.Conv2d(G0, G0, 3, 1, 1))
        self.UPNet = nn.Sequential(nn.Conv2d(G0, 256, 3, 1, 1), nn.PixelShuffle(2), nn.Conv2d(64, 3, 3, 1, 1))

    def forward(self, frames: list[Tensor]) -> Tensor:
        """frames: `num_inputs` tensors (B, 3, h, w) with even h, w. Returns (B, 3, h, w)."""
        if len(frames) != self.num_inputs:
            raise ValueError(f"expected {self.num_inputs} frames, got {len(frames)}")
        x = F.pixel_unshuffle(torch.cat(frames, dim=1), 2)  # (B, 12·n, h/2, w/2)
        shallow = self.SFENet1(x)
        x = self.SFENet2(shallow)
        block_outputs = []
        for block in self.RDBs:
            x = block(x)
            block_outputs.append(x)
        x = self.GFF(torch.cat(block_outputs, dim=1)) + shallow
        return self.UPNet(x) + sum(frames) / len(frames)


class TwoStageInterpolator(nn.Module):
    """F_B1 (`model1_1`, applied twice) then F_B2 (`model2_1`); see the module docstring."""

    def __init__(self, G0: int = 64, D: int = 6):
        super().__init__()
        self.model1_1 = ResidualDenseInterpolator(2, G0=G0, D=D)
        self.model2_1 = ResidualDenseInterpolator(2, G0=G0, D=D)

    def forward(self, x_prev2: Tensor, x_t: Tensor, x_next2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_prev = self.model1_1([x_prev2, x_t])
        z_next = self.model1_1([x_t, x_next2])
        z_t = self.model2_1([z_prev, z_next])
        return z_prev, z_next, z_t


class DegradationSensing(nn.Module):
    """The DSM (`bin` inside VOTES). Input (B, 5, 3, h, w) LQ frames with h, w even.

    Returns:
        (stack(ẑ_{t-1}, ẑ_{t+1}) of shape (B, 2, 3, h, w), ẑ_t of shape (B, 3, h, w)).
        Outputs are not clamped.
    """

    def __init__(self, G0: int = 64, D: int = 6):
        super().__init__()
        self.model = TwoStageInterpolator(G0=G0, D=D)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 5 or x.size(1) != 5:
            raise ValueError(f"the degradation sensing module takes (B, 5, 3, h, w) windows, got {tuple(x.shape)}")
        z_prev, z_next, z_t = self.model(x[:, 0], x[:, 2], x[:, 4])
        return torch.stack((z_prev, z_next), dim=1), z_t
