"""EDVR (BasicSR's, with the VOTES repository's x2 head): counts, key names, TSA behaviour, round trip."""

from __future__ import annotations

import pytest
import torch

from models.edvr import EDVR, TSAFusion
from models.registry import create_model

TINY = dict(num_feat=16, num_extract_block=1, num_reconstruct_block=1, deformable_groups=2)


def test_basicsr_key_names():
    sd = create_model("edvr-m", 4).state_dict()
    for key in ("fusion.temporal_attn1.weight", "fusion.spatial_attn_l2.weight", "fusion.spatial_attn_add2.bias",
                "fusion.feat_fusion.weight", "pcd_align.cas_dcnpack.conv_offset.weight", "upconv2.weight",
                "reconstruction.9.conv2.weight", "conv_last.bias"):
        assert key in sd, key
    assert sd["fusion.spatial_attn1.weight"].shape == (64, 320, 1, 1)
    wo_tsa = EDVR(num_feat=64, with_tsa=False).state_dict()
    assert wo_tsa["fusion.weight"].shape == (64, 320, 1, 1)


def test_shapes_at_x2_and_x4_and_bad_sizes():
    x = torch.rand(2, 5, 3, 8, 12)
    assert EDVR(**TINY, scale=2)(x).shape == (2, 3, 16, 24)
    assert EDVR(**TINY, scale=4)(x).shape == (2, 3, 32, 48)
    assert EDVR(**TINY, scale=4, with_tsa=False)(x).shape == (2, 3, 32, 48)
    with pytest.raises(ValueError, match="multiples of 4"):
        EDVR(**TINY)(torch.rand(1, 5, 3, 10, 12))


def test_tsa_reduces_to_half_weighted_fusion_when_attention_is_neutral():
    """Zero embeddings give temporal weights sigmoid(0) = 0.5; a zero last spatial conv gives a
    multiplicative map sigmoid(0)·2 = 1 and, with a zero additive branch, the plain fused features."""
    tsa = TSAFusion(num_feat=8, num_frame=3, center=1)
    with torch.no_grad():
        for conv in (tsa.temporal_attn1, tsa.temporal_attn2, tsa.spatial_attn5, tsa.spatial_attn_add2):
            conv.weight.zero_()
            conv.bias.zero_()
        aligned = torch.randn(2, 3, 8, 8, 12)
        expected = torch.nn.functional.leaky_relu(tsa.feat_fusion((aligned * 0.5).flatten(1, 2)), 0.1)
        torch.testing.assert_close(tsa(aligned), expected)

