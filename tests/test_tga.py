"""VSR-TGA (released, without alignment): parameter counts, the release's names, grouping, attention, residual."""

from __future__ import annotations

import pytest
import torch

from uvssm.base.scalers import imresize
from models.registry import create_model


def _block_keys(prefix: str, units: int, first_bn: bool = True) -> set[str]:
    keys = set()
    for j in range(1, 2 * units + 1):
        keys |= {f"{prefix}.conv3d_{j}.weight", f"{prefix}.conv3d_{j}.bias"}
        if j > 1 or first_bn:
            keys |= {f"{prefix}.bn3d_{j}.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                         "num_batches_tracked")}
    return keys


def test_names_are_the_releases():
    """The module tree of `code/arch.py`: stem, head, middle_1-4, last, fusion_head (no first norm),
    Fusion_last, compress, middle_6-12, the upsampling convs."""
    want = set()
    for conv in ("conv3d_1", "conv3d_2", "conv3d_2_1", "conv3d_2_2", "compress", "conv3d_3", "conv3d_r1",
                 "conv3d_r2", "conv3d_r4", "conv3d_r3"):
        want |= {f"{conv}.weight", f"{conv}.bias"}
    for bn in ("bn3d_1", "bn3d_2", "bn3d_2_1", "bn3d_2_2", "bn3d_3"):
        want |= {f"{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    for block in ["head", "last"] + [f"middle_{i}" for i in (1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12)]:
        want |= _block_keys(block, 3)
    want |= _block_keys("fusion_head", 2, first_bn=False) | _block_keys("Fusion_last", 2)
    assert set(create_model("tga", 4).state_dict()) == want


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes(scale):
    model = create_model("tga-tiny", scale).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 7, 3, 10, 14)).shape == (2, 3, 10 * scale, 14 * scale)
    with pytest.raises(ValueError, match="7 frames"):
        model(torch.rand(1, 5, 3, 8, 8))


def test_frames_are_grouped_as_the_release():
    """Before the groups meet, group g's features depend only on its own frames:
    G1 = (t-3, t, t+3), G2 = (t-1, t, t+1), G3 = (t-2, t, t+2)."""
    torch.manual_seed(0)
    model = create_model("tga-tiny", 2).eval()
    x = torch.rand(1, 7, 3, 8, 8)
    with torch.no_grad():
        base, _ = model._intra_group(x)
        # the last block's new features are attention-weighted (softmax over groups): compare those before it
        keep = base.shape[1] - model.last.ng
        for frame, groups in {0: {0}, 6: {0}, 2: {1}, 4: {1}, 1: {2}, 5: {2}, 3: {0, 1, 2}}.items():
            y = x.clone()
            y[:, frame] = torch.rand(3, 8, 8)
            feat, _ = model._intra_group(y)
            changed = {g for g in range(3) if not torch.allclose(feat[:, :keep, g], base[:, :keep, g])}
            assert changed == groups, f"frame {frame}"


def test_group_attention_is_a_softmax_over_the_groups():
    torch.manual_seed(0)
    model = create_model("tga-tiny", 2).eval()
    with torch.no_grad():
        att = model.group_attention(torch.rand(1, 7, 3, 6, 9))
    assert att.shape == (1, 1, 3, 6, 9)
    torch.testing.assert_close(att.sum(dim=2), torch.ones(1, 1, 6, 9))
    assert (att > 0).all() and att.std() > 0


@pytest.mark.parametrize("scale", [2, 4])
def test_a_zero_last_conv_gives_the_matlab_bicubic_centre_frame(scale):
    model = create_model("tga-tiny", scale).eval()
    with torch.no_grad():
        model.conv3d_r3.weight.zero_()
        model.conv3d_r3.bias.zero_()
        x = torch.rand(1, 7, 3, 9, 11)
        torch.testing.assert_close(model(x), imresize(x[:, 3], scale))
