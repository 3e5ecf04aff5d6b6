"""BasicVSR, SPyNet, flow warping, flow pre-training and chunked recurrent inference."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from models.basicvsr import BasicVSR
from models.flow import SpyNet, warp
from models.inference import Stage, restore_stream, sequence_chunks
from models.registry import create_model
from models.training.loop import flow_loss
from models.training.losses import LOSSES


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_spynet_parameter_count_matches_the_spec():  # the whole model's: tests/test_registry.py
    assert _count(SpyNet()) == 1_440_300


def test_basicsr_key_names():
    keys = set(BasicVSR(scale=4).state_dict())
    for k in ("spynet.mean", "spynet.std", "spynet.basic_module.5.basic_module.8.bias",
              "backward_trunk.main.0.weight", "backward_trunk.main.2.29.conv2.weight", "forward_trunk.main.2.0.conv1.bias",
              "fusion.weight", "upconv1.weight", "upconv2.weight", "conv_hr.weight", "conv_last.bias"):
        assert k in keys, k
    assert "upconv2.weight" not in BasicVSR(scale=2).state_dict()


def test_shapes_at_x2_and_x4_and_any_size():
    torch.manual_seed(0)
    for scale in (2, 4):
        m = create_model("basicvsr-tiny", scale).eval()
        with torch.no_grad():
            out = m(torch.rand(1, 3, 3, 22, 30))
        assert out.shape == (1, 3, 3, 22 * scale, 30 * scale)


def test_zero_head_gives_the_bilinear_upsampled_frames():
    m = create_model("basicvsr-tiny", 2).eval()
    with torch.no_grad():
        m.conv_last.weight.zero_()
        m.conv_last.bias.zero_()
        x = torch.rand(1, 4, 3, 16, 20)
        want = F.interpolate(x.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=False).view(1, 4, 3, 32, 40)
        assert torch.allclose(m(x), want, atol=1e-6)


def test_warp_follows_the_flow_convention():
    """warp(x, f) samples x at p + f(p): a constant flow (3, -2) moves content by (-3, +2)."""
    x = torch.rand(1, 3, 20, 24)
    flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 20, 24)
    out = warp(x, flow)
    assert torch.allclose(out[..., 2:, :-3], x[..., :-2, 3:], atol=1e-5)


@pytest.mark.parametrize("flow_dtype", [torch.float32, torch.bfloat16])
def test_a_zero_flow_returns_a_wide_bf16_map_under_autocast(flow_dtype):
    """BasicVSR and COMISR warp bf16 features under bf16 autocast. A zero flow must return the input (to a
    bf16 rounding), at every column of a 960-wide map: a grid built in bf16 lands columns past 512 on the
    neighbouring pixel (an error of up to 1.0 on values in [0, 1])."""
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(1, 4, 8, 960, generator=g).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(feat, torch.zeros(1, 2, 8, 960, dtype=flow_dtype))
    assert out.dtype == torch.bfloat16
    # bf16's rtol; atol 1e-4: the float32 grid puts column 511 at 511 ± 3e-5, so a value near 0 beside a
    # value near 1 picks up ~3e-5 of it (the bf16 grid's error was a whole pixel)
    torch.testing.assert_close(out, feat, atol=1e-4, rtol=1.6e-2)
    # a whole-pixel flow moves the map by whole pixels at every column, too
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shifted = warp(feat, torch.tensor([1.0, 0.0], dtype=flow_dtype).view(1, 2, 1, 1).expand(1, 2, 8, 960))
    torch.testing.assert_close(shifted[..., :-1], feat[..., 1:], atol=1e-4, rtol=1.6e-2)


def test_untrained_spynet_predicts_zero_flow():
    net = SpyNet()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 40, 50), torch.rand(1, 3, 40, 50)).abs().max() == 0


def test_flow_pretraining_learns_a_translation():
    """The self-supervised warping loss alone teaches SPyNet a known global motion."""
    torch.manual_seed(0)
    base = F.interpolate(torch.rand(1, 3, 24, 24), size=(96, 96), mode="bicubic", align_corners=False).clamp(0, 1)
    shift = lambda t: warp(base, torch.tensor([1.5 * t, -1.0 * t]).view(1, 2, 1, 1).expand(1, 2, 96, 96),  # noqa: E731
                           padding_mode="border")[..., 16:80, 16:80]
    seq = torch.stack([shift(t) for t in range(3)], dim=1)
    net = SpyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(40):
        loss = flow_loss(net, seq, LOSSES["charbonnier"], "mean", 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        ref, supp = seq[:, 0], seq[:, 1]
        flow = net(ref, supp)
        err = lambda a: ((a - ref)[..., 8:-8, 8:-8] ** 2).mean()  # noqa: E731
        assert err(warp(supp, flow, padding_mode="border")) < 0.5 * err(supp)
        fx, fy = flow[..., 16:-16, 16:-16].mean(dim=(2, 3))[0].tolist()
        assert fx < -0.5 and fy > 0.3  # frame 1 is frame 0 moved by (1.5, -1): the flow back is (-1.5, +1)


def test_sequence_chunks_cover_the_stream_with_bounded_context():
    frames = [torch.tensor(float(i)) for i in range(30)]
    seen, outputs = [], []
    for inputs, a, b in sequence_chunks(iter(frames), chunk=10, overlap=2):
        seen.append(len(inputs))
        outputs += [int(v) for v in inputs[a:b]]
    assert outputs == list(range(30)) and max(seen) <= 14


def test_recurrent_model_runs_a_30_frame_clip_in_chunks():
    """The model only ever sees a chunk plus its context, never the whole clip; with one chunk the
    output is the model's own on the whole clip."""
    torch.manual_seed(0)
    model = create_model("basicvsr-tiny", 2).eval()
    lengths = []
    model.register_forward_pre_hook(lambda mod, args: lengths.append(args[0].shape[1]))
    frames = [torch.rand(3, 12, 16) for _ in range(30)]
    chunked = list(restore_stream(frames, [Stage(model, 15, 2, 1, kind="recurrent", chunk=8, chunk_overlap=3)]))
    assert len(chunked) == 30 and max(lengths) <= 8 + 2 * 3
    whole = list(restore_stream(frames, [Stage(model, 15, 2, 1, kind="recurrent", chunk=30, chunk_overlap=0)]))
    with torch.no_grad():
        direct = model(torch.stack(frames)[None])[0].clamp(0, 1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, direct))
    # chunk borders change the result only a little (context frames on both sides)
    assert max((a - b).abs().max() for a, b in zip(chunked, whole)) < 0.05
