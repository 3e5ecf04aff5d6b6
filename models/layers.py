"""Building blocks shared by the EDVR family (VOTES, EDVR): residual blocks, the DCNv2 pack and the
initialisations BasicSR uses for them. Parameter names follow BasicSR's `archs/arch_util.py`, so
official checkpoints load strictly."""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.ops.deform_conv import DeformConvBackend, deform_conv2d, torchvision_deform_conv2d

log = logging.getLogger(__name__)


def warn_large_offsets(model: nn.Module, limit: float = 50.0) -> list[str]:
    """After an eval forward: log (and return) a warning for every DCNv2 pack whose mean offset
    magnitude exceeded `limit` pixels (BasicSR's check, moved out of the forward: one host read
    here instead of a sync in every deformable convolution)."""
    found = []
    for name, module in model.named_modules():
        magnitude = getattr(module, "offset_magnitude", None)
        if isinstance(module, DCNv2Pack) and magnitude is not None and float(magnitude) > limit:
            found.append(f"{name}: mean offset magnitude {float(magnitude):.1f} > {limit:g} px; "
                         "alignment may have diverged")
            log.warning("DCNv2Pack %s", found[-1])
    return found


def lrelu(x: Tensor) -> Tensor:
    """LeakyReLU with slope 0.1, the activation of the whole EDVR family."""
    return F.leaky_relu(x, 0.1, inplace=True)


@torch.no_grad()
def scaled_kaiming_init(modules: list[nn.Module], scale: float = 1.0) -> None:
    """Kaiming-normal (fan_in, gain √2) weights times `scale`, zero biases (BasicSR `default_init_weights`)."""
    for m in modules:
        nn.init.kaiming_normal_(m.weight)
        m.weight.mul_(scale)
        if m.bias is not None:
            m.bias.zero_()


class ResidualBlockNoBN(nn.Module):
    """conv3×3 → ReLU → conv3×3, plus the identity. Initialised at 0.1× Kaiming so deep stacks start near identity.

    Args:
        num_feat: channels in and out.
    """

    def __init__(self, num_feat: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        scaled_kaiming_init([self.conv1, self.conv2], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def residual_blocks(num_blocks: int, num_feat: int) -> nn.Sequential:
    """`num_blocks` ResidualBlockNoBN in a row (keys `<i>.conv1.weight`, as BasicSR's `make_layer`)."""
    return nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_blocks)))


class DCNv2Pack(nn.Module, DeformConvBackend):
    """Modulated deformable conv whose offsets and masks are predicted from a separate feature map.

    `conv_offset` maps the offset features to G·3·k² channels: two chunks of G·k² that are
    concatenated into the offsets (Δy, Δx interleaved per group and tap, torchvision's layout),
    and one chunk of G·k² that goes through a sigmoid to give the masks. `conv_offset` starts at
    zero, so a fresh pack is a plain convolution with every tap at weight 0.5.

    Args:
        in_channels, out_channels: of the deformable convolution.
        kernel_size, stride, padding, dilation: as `nn.Conv2d`.
        deformable_groups: input channels are split into this many groups with their own offsets.
        offset_channels: channels of the offset features (default: `out_channels`, as in EDVR).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, deformable_groups: int = 8,
                 offset_channels: int | None = None):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deformable_groups = deformable_groups
        torchvision_deform_conv2d()  # looked up now, never inside a (compiled) forward
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset = nn.Conv2d(offset_channels or out_channels,
                                     deformable_groups * 3 * kernel_size * kernel_size,
                                     kernel_size, stride, padding, dilation)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.weight[0].numel())
        self.weight.uniform_(-bound, bound)
        self.bias.zero_()
        self.conv_offset.weight.zero_()
        self.conv_offset.bias.zero_()

    def forward(self, x: Tensor, offset_feat: Tensor) -> Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset(offset_feat), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        if not self.training:
            # kept on the device (no host sync inside the forward); `warn_large_offsets` reads it later
            self.offset_magnitude = offset.detach().abs().mean()
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             torch.sigmoid(mask), backend=self.dcn_backend)
