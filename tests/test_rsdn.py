"""RSDN9_128: parameter counts, the release's names, shapes, structure/detail split, hidden-state adaptation."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from models.registry import create_model
from models.rsdn import adapt_hidden, structure_detail


def test_names_are_the_releases():
    want = {"conv.weight", "conv.bias"}
    for name in ["forget", "conv_d", "conv_s", "conv_hd", "conv_od", "conv_hs", "conv_os"]:
        want |= {f"neuro.{name}.weight", f"neuro.{name}.bias"}
    for i in range(1, 10):
        for c in ("conv_d1", "conv_d2", "conv_s1", "conv_s2"):
            want |= {f"neuro.SD{i}.{c}.weight", f"neuro.SD{i}.{c}.bias"}
    assert set(create_model("rsdn", 4).state_dict()) == want


def test_shapes_and_structure_detail_split():
    torch.manual_seed(0)
    x = torch.rand(1, 4, 3, 14, 18)
    s, d = structure_detail(x)
    assert torch.allclose(s + d, x)
    assert d.abs().mean() > 0 and (F.avg_pool2d(s[0], 2) - F.avg_pool2d(x[0], 2)).abs().mean() < d.abs().mean()
    for scale in (2, 4):
        with torch.no_grad():
            assert create_model("rsdn", scale).eval()(x).shape == (1, 4, 3, 14 * scale, 18 * scale)


def test_hidden_state_adaptation_is_a_per_pixel_3x3_filter_shared_by_channels():
    """Against the release's way: a one-hot grouped conv per channel, then a dot product with the kernel."""
    torch.manual_seed(0)
    hidden, kernels = torch.rand(2, 5, 6, 7), torch.randn(2, 9, 6, 7)
    eye = torch.eye(9).view(9, 1, 3, 3).repeat(5, 1, 1, 1)
    expanded = F.conv2d(hidden, eye, padding=1, groups=5).view(2, 5, 9, 6, 7)
    want = torch.sigmoid((expanded * kernels.unsqueeze(1)).sum(2))
    assert torch.allclose(adapt_hidden(hidden, kernels), want, atol=1e-6)


def test_output_of_a_frame_depends_only_on_the_past_and_the_next_frame_at_the_start():
    """Unidirectional: output t uses frames ≤ t (step 0 also uses frame 1, as the release)."""
    torch.manual_seed(0)
    m = create_model("rsdn", 2, nf=16, num_blocks=1).eval()
    x = torch.rand(1, 5, 3, 8, 8)
    y = x.clone()
    y[:, 4] = torch.rand(3, 8, 8)
    with torch.no_grad():
        a, b = m(x), m(y)
    assert torch.allclose(a[:, :4], b[:, :4]) and not torch.allclose(a[:, 4], b[:, 4])
