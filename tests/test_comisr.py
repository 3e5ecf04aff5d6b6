"""COMISR: parameter counts, the TF ops it mirrors, recurrence, warm-up and the auxiliary warping loss."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from models.comisr import (TransposedConvSame, bicubic_up, corner_aligned_matrix, dense_image_warp, laplacian_enhance, space_to_depth,
                           symmetric_pad_bottom_right, upscale_flow)
from models.registry import create_model


def test_part_parameter_counts_match_the_spec():  # the whole model's: tests/test_registry.py
    def count(m):
        return sum(p.numel() for p in m.parameters())
    model = create_model("comisr", 4)
    assert count(model.generator) == 843_587
    assert count(model.fnet.autoencode_unit) == 1_745_506
    assert count(model.fnet) - count(model.fnet.autoencode_unit) == 39_298


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_any_size(scale):
    model = create_model("comisr-tiny", scale).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 3, 13, 19)).shape == (1, 3, 3, 13 * scale, 19 * scale)
        assert model(torch.rand(1, 1, 3, 8, 8)).shape == (1, 1, 3, 8 * scale, 8 * scale)


def test_transposed_conv_is_tf_same():
    """TF's stride-2 'SAME' transposed conv: output 2h; input pixel i spreads to 2i, 2i+1, 2i+2 (the
    last one cut at the bottom edge)."""
    conv = TransposedConvSame(1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        x = torch.zeros(1, 1, 4, 4)
        x[0, 0, 1, 1] = 1
        y = conv(x)[0, 0]
        assert y.shape == (8, 8)
        assert torch.equal(y.nonzero().unique(dim=0), torch.tensor([[r, c] for r in (2, 3, 4) for c in (2, 3, 4)]))
        x = torch.zeros(1, 1, 4, 4)
        x[0, 0, 3, 3] = 1
        assert conv(x)[0, 0, 6:, 6:].sum() == 4  # rows/cols 6, 7 kept; 8 cut


def test_fixed_upscalers_are_corner_aligned_and_reproduce_ramps():
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 4, 5).contiguous()
    up = upscale_flow(x, 4)
    # output pixel 4i+k samples input position i + k/4: exact on a ramp, the right edge repeated
    torch.testing.assert_close(up[0, 0, 0, :17], torch.arange(17.0) / 4)
    torch.testing.assert_close(up[0, 0, 0, 17:], torch.full((3,), 4.0))
    cubic = bicubic_up(x, 4)
    torch.testing.assert_close(cubic[..., ::4, ::4], x)  # phase 0 is the input pixel
    torch.testing.assert_close(bicubic_up(torch.full((1, 1, 4, 5), 0.3), 4), torch.full((1, 1, 16, 20), 0.3))


def test_bicubic_four_weights_are_the_releases_polynomial():
    """`ops.bicubic_four`: the taps (i-1, i, i+1, i+2) of phase t get [1, t, t², t³] · M, r = 0.75."""
    r = 0.75
    m = torch.tensor([[0, 1, 0, 0], [-r, 0, r, 0], [2 * r, r - 3, 3 - 2 * r, -r], [-r, 2 - r, r - 2, r]],
                     dtype=torch.float64)
    matrix = corner_aligned_matrix(6, 4, "bicubic")
    for k, t in enumerate((0.0, 0.25, 0.5, 0.75)):
        want = torch.tensor([1, t, t * t, t ** 3], dtype=torch.float64) @ m
        torch.testing.assert_close(matrix[4 * 2 + k, 1:5], want)  # input pixel 2: taps 1..4
    # at the top edge the missing tap i-1 is the edge pixel (the release pads by repetition)
    want0 = torch.tensor([1, 0.25, 0.0625, 0.25 ** 3], dtype=torch.float64) @ m
    torch.testing.assert_close(matrix[1, :3], torch.stack([want0[0] + want0[1], want0[2], want0[3]]))
    torch.testing.assert_close(bicubic_up(torch.full((1, 3, 5, 6), 0.3), 2), torch.full((1, 3, 10, 12), 0.3))


def test_dense_image_warp_samples_at_p_minus_flow_with_dy_dx_channels():
    img = torch.rand(1, 2, 6, 7)
    flow = torch.zeros(1, 2, 6, 7)
    flow[:, 0] = 1.0  # dy = 1: output row r comes from row r - 1
    out = dense_image_warp(img, flow)
    torch.testing.assert_close(out[..., 1:, :], img[..., :-1, :])
    torch.testing.assert_close(out[..., 0, :], img[..., 0, :])  # clamped at the edge
    flow = torch.zeros(1, 2, 6, 7)
    flow[:, 1] = -2.0  # dx = -2: output column c comes from column c + 2
    torch.testing.assert_close(dense_image_warp(img, flow)[..., :-2], img[..., 2:])


def test_laplacian_enhancement_uses_a_3x3_gaussian():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1
    y = laplacian_enhance(x)
    g = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / (2 * 1.5 ** 2))
    g = g / g.sum()
    assert torch.isclose(y[0, 0, 3, 3], 2 - g[1] ** 2)
    assert torch.isclose(y[0, 0, 2, 2], -g[0] ** 2)
    assert y[0, 0, 1, 1] == 0  # nothing beyond the 3×3 support
    torch.testing.assert_close(laplacian_enhance(torch.full((1, 3, 5, 5), 0.7)), torch.full((1, 3, 5, 5), 0.7))


def test_space_to_depth_and_symmetric_pad_follow_tf():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    s2d = space_to_depth(x, 2)
    assert s2d[0, :, 0, 0].tolist() == [0, 1, 4, 5]  # channel (dy·2 + dx)
    torch.testing.assert_close(space_to_depth(x.repeat(1, 3, 1, 1), 2).shape, torch.Size([1, 12, 2, 2]))
    p = symmetric_pad_bottom_right(torch.arange(4.0).view(1, 1, 1, 4), 0, 2)
    assert p.flatten().tolist() == [0, 1, 2, 3, 3, 2]


def test_unidirectional_with_warmup_only_in_eval():
    torch.manual_seed(0)
    model = create_model("comisr-tiny", 2).eval()
    x = torch.rand(1, 6, 3, 16, 16)
    y = x.clone()
    y[:, 5] = torch.rand(3, 16, 16)
    with torch.no_grad():
        a, b = model(x), model(y)
    # outputs 0..4 do not see frame 5 ... except through the warm-up, which replays frames 5..1 first
    assert not torch.allclose(a[:, 0], b[:, 0])
    model.warmup = 0
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5], b[:, 5])
    # the first step sees a zero warped frame: frame 0 alone, whatever follows
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, :1])[:, 0], a[:, 0])


def test_aux_pairs_are_the_lr_warping_loss():
    torch.manual_seed(0)
    model = create_model("comisr-tiny", 2).train()
    x = torch.rand(2, 4, 3, 16, 16)
    out, aux = model(x, return_aux=True)
    (warped, target), = model.aux_targets(aux, None)
    assert warped.shape == target.shape == (2, 3, 3, 16, 16)
    torch.testing.assert_close(target, x[:, 1:])
    F.l1_loss(warped, target).backward()
    assert model.fnet.autoencode_unit.encoder_1.conv_1.weight.grad.abs().sum() > 0
