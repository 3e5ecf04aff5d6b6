"""COMISR (Li et al., ICCV 2021), from the official TensorFlow inference code
(google-research `comisr/lib/model.py`, `inference_and_eval.py`); there is no PyTorch release and no
training code, so this is a re-implementation of that graph.

A frame-recurrent network (FRVSR/TecoGAN style). At step t:
1. FNet (TecoGAN's flow U-Net) estimates the LR flow from (LR_{t−1}, LR_t), tanh × 24 pixels;
2. detail-preserving HR flow: the LR flow × 4 upscaled (TecoGAN's corner-aligned bilinear) plus a
   learned residual from transposed convs on the LR flow;
3. the previous SR output is warped by it (TF `dense_image_warp`: samples at p − flow, flow
   channels (dy, dx), edges clamped) and sharpened by Laplacian enhancement
   x + (x − blur(x)), blur = TF-Addons' default 3×3 Gaussian at σ 1.5 with reflect padding;
4. the generator (TecoGAN-mini: conv + 10 residual blocks + transposed-conv upsampling) sees the
   LR frame and the space-to-depth of the warped output, and adds the bicubic-upsampled LR frame.
At step 0 the warped output is zero. At inference (eval mode) the clip is preceded by frames
5, 4, 3, 2, 1 as warm-up, whose outputs are dropped, as the release does.

Parameters: 2,628,391 at ×4 (generator 843,587, FNet 1,745,506, HR-flow upsampler 39,298).
×2 is ours, as the spec derives it: one transposed conv fewer in the generator and in the flow
upsampler, and the LR flow scaled by 2 instead of the release's hard-coded 4 (2,533,799
parameters). Module names follow the TF variable scopes (`generator.resblock_3.conv_1`,
`fnet.encoder_1.conv_2`, `fnet.deconv_flow_tran1`, …); kernels are in PyTorch's layout.

`forward(x, return_aux=True)` also returns the LR warping pairs (LR_{t−1} warped by the LR flow,
LR_t) for FNet's self-supervised loss, trained jointly as in FRVSR/TecoGAN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from uvssm.base.scalers import float_dtype, full_precision, imresize
from models.flow import warp


# --- TecoGAN's fixed upsamplers and TF image ops ----------------------------------------------------

def _keys(x: Tensor, a: float) -> Tensor:
    """Keys' cubic convolution kernel with parameter a."""
    ax = x.abs()
    near = ((a + 2) * ax ** 3 - (a + 3) * ax ** 2 + 1) * (ax <= 1)
    far = (a * ax ** 3 - 5 * a * ax ** 2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax < 2))
    return near + far


def corner_aligned_matrix(n: int, scale: int, kind: str, device: torch.device | str = "cpu") -> Tensor:
    """(scale·n, n) matrix of TecoGAN's fixed-ratio upscalers along one axis: output pixel
    scale·i + k samples input position i + k/scale, edge pixels repeated. kind "bilinear"
    (`ops.upscale_x`) or "bicubic" (`ops.bicubic_four`: Keys a = −0.75)."""
    u = torch.arange(scale * n, dtype=torch.float64, device=device) / scale  # built where it is used
    base = torch.floor(u)
    offsets = torch.arange(-1, 3, dtype=torch.float64, device=device)
    idx = base[:, None] + offsets[None, :]
    dist = u[:, None] - idx
    if kind == "bilinear":
        weights = (1 - dist.abs()).clamp(min=0)
    elif kind == "bicubic":
        weights = _keys(dist, -0.75)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    matrix = torch.zeros(scale * n, n, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, idx.long().clamp(0, n - 1), weights)
    return matrix


def _apply(matrix_h: Tensor, matrix_w: Tensor, x: Tensor) -> Tensor:
    """matrix_h · x · matrix_wᵀ in float32 (float64 for float64 x) outside autocast, as `imresize`: the bicubic
    residual and the upscaled flow are not rounded to bfloat16 under bf16 autocast."""
    dtype = float_dtype(x.dtype)
    with full_precision(x.device):
        x = x.to(dtype)
        return matrix_h.to(x) @ x @ matrix_w.to(x).T


def upscale_flow(flow: Tensor, scale: int) -> Tensor:
    """TecoGAN's `upscale_x` (corner-aligned bilinear) of (B, C, h, w)."""
    h, w = flow.shape[-2:]
    return _apply(corner_aligned_matrix(h, scale, "bilinear", flow.device),
                  corner_aligned_matrix(w, scale, "bilinear", flow.device), flow)


def bicubic_up(x: Tensor, scale: int) -> Tensor:
    """The generator's bicubic residual: `ops.bicubic_four` at ×4 (corner-aligned Keys −0.75);
    at ×2 the release calls `tf.image.resize` bicubic, here MATLAB's bicubic (Keys −0.5, half-pixel
    centres; they differ only in how the outermost pixel's neighbours are padded)."""
    if scale == 4:
        h, w = x.shape[-2:]
        return _apply(corner_aligned_matrix(h, 4, "bicubic", x.device), corner_aligned_matrix(w, 4, "bicubic", x.device), x)
    return imresize(x, scale)


def dense_image_warp(image: Tensor, flow: Tensor) -> Tensor:
    """TF-Addons `dense_image_warp`: image (B, C, H, W) sampled bilinearly at p − flow(p), flow
    channels (dy, dx), sampling positions clamped to the image."""
    return warp(image, -flow.flip(1), padding_mode="border")


def laplacian_enhance(x: Tensor, sigma: float = 1.5) -> Tensor:
    """x + (x − G(x)), G the TF-Addons `gaussian_filter2d` default: a 3×3 kernel, reflect padding."""
    g = torch.exp(-torch.arange(-1.0, 2.0, device=x.device, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])
    return x + (x - blurred)


def space_to_depth(x: Tensor, block: int) -> Tensor:
    """TF `space_to_depth` channel order: channel (dy·block + dx)·C + c."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // block, block, w // block, block)
    return x.permute(0, 3, 5, 1, 2, 4).reshape(b, block * block * c, h // block, w // block)


def symmetric_pad_bottom_right(x: Tensor, ph: int, pw: int) -> Tensor:
    """TF `pad(..., 'SYMMETRIC')` at the bottom and right (the edge pixel is repeated)."""
    if ph:
        x = torch.cat([x, x[..., -ph:, :].flip(-2)], dim=-2)
    if pw:
        x = torch.cat([x, x[..., -pw:].flip(-1)], dim=-1)
    return x


class TransposedConvSame(nn.ConvTranspose2d):
    """TF `conv2d_transpose` with 3×3 kernels, stride 2 and 'SAME' padding: the output is exactly
    twice the input, the extra row and column falling at the bottom and right (in PyTorch's
    padding=1/output_padding=1 form they would fall at the top and left)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return super().forward(x)[..., : 2 * h, : 2 * w]


# --- networks ---------------------------------------------------------------------------------------

def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


class _Pair(nn.Module):
    """Two 3×3 convs, each followed by LeakyReLU 0.2 (`conv_1`, `conv_2`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_1, self.conv_2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return _lrelu(self.conv_2(_lrelu(self.conv_1(x))))


class _FlowOutput(nn.Module):
    def __init__(self, cin: int, mid: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(cin, mid, 3, 1, 1), nn.Conv2d(mid, 2, 3, 1, 1)


class FNet(nn.Module):
    """TecoGAN's flow estimator on (LR_{t−1}, LR_t) stacked (6 channels): three encoder pairs with
    2×2 max-pooling (32, 64, 128), three decoder pairs with bilinear ×2 (256, 128, 64), then
    conv 32 + conv 2, tanh × `max_velocity`. The flow (dy, dx) is (floor(h/8)·8, floor(w/8)·8)."""

    def __init__(self, feats: tuple[int, int, int] = (32, 64, 128), max_velocity: float = 24.0):
        super().__init__()
        a, b, c = feats
        self.encoder_1, self.encoder_2, self.encoder_3 = _Pair(6, a), _Pair(a, b), _Pair(b, c)
        self.decoder_1, self.decoder_2, self.decoder_3 = _Pair(c, 2 * c), _Pair(2 * c, c), _Pair(c, b)
        self.output_stage = _FlowOutput(b, a)
        self.max_velocity = max_velocity

    def forward(self, x: Tensor) -> Tensor:
        for enc in (self.encoder_1, self.encoder_2, self.encoder_3):
            x = F.max_pool2d(enc(x), 2)
        for dec in (self.decoder_1, self.decoder_2, self.decoder_3):
            x = F.interpolate(dec(x), scale_factor=2, mode="bilinear", align_corners=False)
        x = self.output_stage.conv2(_lrelu(self.output_stage.conv1(x)))
        return torch.tanh(x) * self.max_velocity


class _ResBlock(nn.Module):
    def __init__(self, nf: int):
        super().__init__()
        self.conv_1, self.conv_2 = nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_2(F.relu(self.conv_1(x)))


class Generator(nn.Module):
    """TecoGAN-mini: conv (3 + 3·s² → nf) + ReLU, `num_block` residual blocks, log2(s) transposed
    convs + ReLU, conv → 3, plus the bicubic-upsampled LR frame."""

    def __init__(self, scale: int, nf: int = 64, num_block: int = 10):
        super().__init__()
        self.scale, self.num_block = scale, num_block
        self.input_stage = nn.Conv2d(3 + 3 * scale * scale, nf, 3, 1, 1)
        for i in range(1, num_block + 1):
            setattr(self, f"resblock_{i}", _ResBlock(nf))
        self.ups = int(math.log2(scale))
        for i in range(1, self.ups + 1):
            setattr(self, f"conv_tran{i}", TransposedConvSame(nf, nf))
        self.output_stage = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, lr: Tensor, warped_hr: Tensor) -> Tensor:
        x = F.relu(self.input_stage(torch.cat([lr, space_to_depth(warped_hr, self.scale)], dim=1)))
        for i in range(1, self.num_block + 1):
            x = getattr(self, f"resblock_{i}")(x)
        for i in range(1, self.ups + 1):
            x = F.relu(getattr(self, f"conv_tran{i}")(x))
        return self.output_stage(x) + bicubic_up(lr, self.scale)


class FlowNet(nn.Module):
    """FNet plus the detail-preserving HR-flow upsampler (`deconv_flow_*`), as the release's `fnet` scope."""

    def __init__(self, scale: int, fnet_feats: tuple[int, int, int] = (32, 64, 128), nf: int = 64):
        super().__init__()
        self.scale = scale
        self.autoencode_unit = FNet(fnet_feats)
        self.ups = int(math.log2(scale))
        self.deconv_flow_tran1 = TransposedConvSame(2, nf)
        if self.ups == 2:
            self.deconv_flow_tran2 = TransposedConvSame(nf, nf)
        self.deconv_flow_conv = nn.Conv2d(nf, 2, 3, 1, 1)

    def lr_flow(self, prev: Tensor, cur: Tensor) -> Tensor:
        """The LR flow (B, 2, h, w), symmetric-padded from FNet's multiple-of-8 size as the release."""
        flow = self.autoencode_unit(torch.cat([prev, cur], dim=1))
        h, w = cur.shape[-2:]
        return symmetric_pad_bottom_right(flow, h - flow.shape[-2], w - flow.shape[-1])

    def hr_flow(self, flow: Tensor) -> Tensor:
        x = F.relu(self.deconv_flow_tran1(flow))
        if self.ups == 2:
            x = F.relu(self.deconv_flow_tran2(x))
        # The release scales the LR flow by 4.0 whatever the factor; ×2 (ours) scales by 2.
        return self.deconv_flow_conv(x) + upscale_flow(flow * float(self.scale), self.scale)


class COMISR(nn.Module):
    """Input (B, T, 3, h, w) RGB in [0, 1], T ≥ 1, h and w ≥ 8; output (B, T, 3, s·h, s·w), unclamped.

    Args:
        num_feat: generator and HR-flow channels (64).  num_block: generator residual blocks (10).
        fnet_feats: FNet encoder channels (32, 64, 128).  scale: 4 (official) or 2 (ours).
        warmup: frames replayed in reverse before the clip at inference (5, as the release).
    """

    def __init__(self, num_feat: int = 64, num_block: int = 10, fnet_feats: tuple[int, int, int] = (32, 64, 128),
                 scale: int = 4, warmup: int = 5):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.scale, self.warmup = scale, warmup
        self.generator = Generator(scale, num_feat, num_block)
        self.fnet = FlowNet(scale, tuple(fnet_feats), num_feat)

    def forward(self, x: Tensor, return_aux: bool = False):
        b, t, c, h, w = x.shape
        if min(h, w) < 8:
            raise ValueError(f"COMISR needs frames of at least 8×8, got {h}×{w}")
        warm = 0 if self.training else min(self.warmup, t - 1)
        order = list(range(warm, 0, -1)) + list(range(t))  # the release's frames[5:0:-1] + frames
        outputs, lr_pairs = [], []
        prev_sr = x.new_zeros(b, c, self.scale * h, self.scale * w)
        for step, i in enumerate(order):
            cur = x[:, i]
            if step == 0:
                warped = prev_sr
            else:
                prev = x[:, order[step - 1]]
                flow = self.fnet.lr_flow(prev, cur)
                if return_aux:
                    lr_pairs.append((dense_image_warp(prev, flow), cur))
                warped = laplacian_enhance(dense_image_warp(prev_sr, self.fnet.hr_flow(flow)))
            prev_sr = self.generator(cur, warped)
            if step >= warm:
                outputs.append(prev_sr)
        out = torch.stack(outputs, dim=1)
        if not return_aux:
            return out
        if not lr_pairs:
            return out, []
        warped_lr = torch.stack([p for p, _ in lr_pairs], 1)
        target_lr = torch.stack([q for _, q in lr_pairs], 1)
        return out, [(warped_lr, target_lr)]

    @staticmethod
    def aux_targets(aux: list, gt: Tensor) -> list[tuple[Tensor, Tensor]]:
        """The auxiliary (prediction, target) pairs of a training step: FNet's LR warping loss."""
        return aux
