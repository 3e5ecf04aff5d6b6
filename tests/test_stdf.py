"""STDF-R3 as STDF-PyTorch builds it: counts, key names, plane-major stacking, padding, residual."""

from __future__ import annotations

import pytest
import torch

from models.registry import create_model
from models.stdf import STDF


def test_key_names_and_shapes():
    sd = create_model("stdf", 1).state_dict()
    assert sd["ffnet.offset_mask.weight"].shape == (21 * 27, 32, 3, 3)  # one offset/mask set per plane
    assert sd["ffnet.deform_conv.weight"].shape == (64, 21, 3, 3)
    assert sd["ffnet.tr_conv.4.weight"].shape == (32, 32, 4, 4)  # the bottom transposed conv
    assert "ffnet.up_conv2.2.weight" in sd and "qenet.hid_conv.10.weight" in sd and "qenet.out_conv.bias" in sd


def test_frames_are_stacked_plane_major_and_the_centre_is_added():
    model = STDF(in_nc=3).eval()
    seen = []
    model.ffnet.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        model.qenet.out_conv.weight.zero_()
        model.qenet.out_conv.bias.zero_()
        x = torch.rand(2, 7, 3, 16, 24)
        out = model(x)
    torch.testing.assert_close(out, x[:, 3])  # QE output zero → exactly the centre frame
    stacked = seen[0]
    assert torch.equal(stacked[:, :7], x[:, :, 0]) and torch.equal(stacked[:, 7:14], x[:, :, 1])


def test_sizes_that_are_not_multiples_of_8_are_padded_and_cropped():
    model = STDF(in_nc=1).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 7, 1, 19, 30))
    assert out.shape == (1, 1, 19, 30)
    with pytest.raises(ValueError, match="7 frames"):
        model(torch.rand(1, 5, 1, 16, 16))
    with pytest.raises(ValueError, match="scale 1"):
        STDF(scale=2)

