"""The GPU path's pieces that a CPU can check: torch.compile's graphs and recompiles, the choice of the deformable
convolution's backend, MACs through it, recurrent chunks that fit the memory, and the section clock.

Expected values come from outside the code under test: dynamo's own graph and compile counts, counts of
multiply-accumulates worked out by hand, and the host clock around a known sleep."""

from __future__ import annotations

import time

import pytest
import torch

from models.inference import Stage, choose_dcn_backend, chunk_that_fits, restore_stage
from models.ops import deform_conv
from models.registry import create_model, get_spec
from uvssm.base.errors import UvssmError
from uvssm.base.timing import SectionClock, median_seconds


@pytest.mark.parametrize("name", ["votes-tiny", "stdf"])
def test_the_compiled_forward_is_one_graph(name):
    """The torchvision import inside every DCN call broke the graph (votes-tiny: 16 graphs, 15 breaks)."""
    import torch._dynamo as dynamo

    spec = get_spec(name)
    model = create_model(name, spec.scales[0]).eval()
    x = torch.rand(1, spec.num_frame, getattr(model, "in_nc", 3), 32, 32)
    try:
        with torch.no_grad():
            explained = dynamo.explain(model)(x)
    finally:
        dynamo.reset()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons[:3]


def _counting_compile(model):
    """torch.compile with a backend that records each graph it is given (dynamo's compile count) and runs it
    eagerly."""
    shapes = []

    def backend(gm, example_inputs):
        shapes.append(tuple(example_inputs[0].shape))
        return gm.forward

    return torch.compile(model, backend=backend, dynamic=False), shapes


def test_a_fixed_batch_compiles_once_per_frame_size_with_the_same_outputs():
    """8 frames in batches of 3: the last batch holds 2 windows (unpadded: a second compile, for batch 2). Padded
    to 3, one compile serves the clip; a second frame size is one more."""
    import torch._dynamo as dynamo

    spec = get_spec("tga-tiny")
    torch.manual_seed(0)
    model = create_model("tga-tiny", 2).eval()
    frames = [torch.rand(3, 16, 24) for _ in range(8)]
    eager = list(restore_stage(frames, Stage(model, spec.num_frame, 2, spec.multiple), batch=3))
    try:
        compiled, shapes = _counting_compile(model)
        stage = Stage(compiled, spec.num_frame, 2, spec.multiple, fixed_batch=3)
        fixed = list(restore_stage(frames, stage, batch=3))
        assert shapes == [(3, 7, 3, 16, 24)]
        list(restore_stage([torch.rand(3, 16, 32) for _ in range(8)], stage, batch=3))
        assert shapes == [(3, 7, 3, 16, 24), (3, 7, 3, 16, 32)]
    finally:
        dynamo.reset()
    assert len(fixed) == 8
    for a, c in zip(eager, fixed):
        torch.testing.assert_close(c, a)


def test_meeting_the_recompile_limit_is_a_one_line_error_not_a_silent_fall_back():
    import torch._dynamo as dynamo

    from benchmarks.harness import _compiled_run, _loud_recompile_limit
    from benchmarks.shards import Shard
    from models.trained import TrainedModel
    from uvssm.base.datasets import ClipPair

    spec = get_spec("tga-tiny")
    compiled, shapes = _counting_compile(create_model("tga-tiny", 2).eval())
    stage = Stage(compiled, spec.num_frame, 2, spec.multiple, fixed_batch=1)
    model = TrainedModel("tga-tiny", [stage], [], None)
    clip = ClipPair.__new__(ClipPair)
    object.__setattr__(clip, "name", "000")
    object.__setattr__(clip, "lq_dir", "LQ/000")
    shard = Shard(clip, 0, 8, True)

    def run(width):
        return lambda: list(restore_stage([torch.rand(3, 16, width) for _ in range(8)], stage))

    try:  # dynamo's own patch: pytest's monkeypatch leaves its config module without the key on undo
        with dynamo.config.patch(recompile_limit=1), _loud_recompile_limit("eager"):
            _compiled_run(model, shard, run(24))
            with pytest.raises(UvssmError, match=r"^LQ/000: --compile: tga-tiny met more input shapes than "
                                                 r"torch.compile's recompile limit \(1\) by clip 000"):
                _compiled_run(model, shard, run(32))
    finally:
        dynamo.reset()
    assert len(shapes) == 1


def _slow_twin(*args, **kwargs):
    """A second backend for the choice: the same convolution, computed three times (so slower here)."""
    kwargs.pop("stride", None), kwargs.pop("dilation", None)
    out = None
    for _ in range(3):
        out = deform_conv._deform_conv2d_torch(args[0], args[1], args[2], args[3], (1, 1),
                                               deform_conv._pair(kwargs["padding"]), (1, 1), kwargs["mask"])
    return out


def _fast_twin(*args, **kwargs):
    """A second backend that does far less work (a plain convolution): faster than the pure-torch DCN here."""
    return torch.nn.functional.conv2d(args[0], args[2], args[3], padding=kwargs["padding"])


@pytest.mark.parametrize("twin,expected", [(_slow_twin, "torch"), (_fast_twin, "torchvision")])
def test_auto_keeps_the_backend_measured_faster_and_sets_it_everywhere(monkeypatch, twin, expected):
    """torchvision does not install here: a real second op stands in for it, slower or faster by construction."""
    monkeypatch.setattr(deform_conv, "_torchvision_op", twin)
    monkeypatch.setattr(deform_conv, "_looked", True)
    torch.manual_seed(0)
    stages = [Stage(create_model("stdf", 1).eval(), 7, 1), Stage(create_model("edvr-tiny", 2).eval(), 5, 2)]
    chosen = choose_dcn_backend(stages, torch.device("cpu"), False, (96, 64))
    assert chosen == expected
    backends = {m.dcn_backend for s in stages for m in s.model.modules() if isinstance(m, deform_conv.DeformConvBackend)}
    assert backends == {expected}
    assert choose_dcn_backend(stages, torch.device("cpu"), False, (96, 64), "torch") == "torch"


def test_without_torchvision_the_choice_is_the_pure_torch_op_and_nothing_is_timed(monkeypatch):
    monkeypatch.setattr(deform_conv, "_torchvision_op", None)
    monkeypatch.setattr(deform_conv, "_looked", True)
    monkeypatch.setattr(deform_conv, "measure_backends", lambda *a, **k: pytest.fail("timed with one backend"))
    stage = Stage(create_model("votes-tiny", 2).eval(), 5, 2)
    assert choose_dcn_backend([stage], torch.device("cpu"), True, (64, 36)) == "torch"
    assert choose_dcn_backend([Stage(create_model("tga-tiny", 2).eval(), 7, 2, 1)], torch.device("cpu"), True,
                              (64, 36)) is None
    with pytest.raises(ValueError, match="does not run here"):
        choose_dcn_backend([stage], torch.device("cpu"), True, (64, 36), "torchvision")


class _OneDcn(torch.nn.Module):
    """A window model that is one DCNv2 pack: 4 channels in, 6 out, 1 deformable group, offsets from 4 channels."""

    def __init__(self):
        super().__init__()
        from models.layers import DCNv2Pack

        self.dcn = DCNv2Pack(4, 6, 3, padding=1, deformable_groups=1, offset_channels=4)

    def forward(self, x):
        frame = torch.cat([x[:, 0], x[:, 0, :1]], dim=1)  # (B, 4, h, w)
        return self.dcn(frame, frame)


def test_macs_count_the_deformable_convolution_as_its_dense_conv_whatever_the_backend(monkeypatch):
    """By hand, per 8x8 output: conv_offset 27·4·9·64 = 62,208 MACs; the DCN 6·4·9·64 = 13,824. Counted on a
    64-px probe and scaled by area. The pack is set to torchvision (a stand-in op the counter cannot see
    into): the count still goes through the pure-torch path."""
    from models.inference import count_macs

    monkeypatch.setattr(deform_conv, "_torchvision_op", _fast_twin)
    monkeypatch.setattr(deform_conv, "_looked", True)
    model = _OneDcn().eval()
    deform_conv.set_backend(model, "torchvision")
    macs = count_macs([Stage(model, 1, 1)], (8, 8))
    assert macs == 27 * 4 * 9 * 64 + 6 * 4 * 9 * 64
    assert model.dcn.dcn_backend == "torchvision"  # as it was


def test_a_chunk_is_shortened_only_where_its_sequence_does_not_fit():
    """100 output frames + 2·8 context = 116 frames. By hand: 0.9 · 10,240 MiB − 1,024 MiB = 8,192 MiB holds 81
    frames of 100 MiB (81.9), so 81 − 16 = 65 output frames; 40 GiB holds all 116; 0.9 · 2,048 − 1,024 = 819 MiB
    holds 8, fewer than 1 + 16."""
    gib, mib = 2**30, 2**20
    assert chunk_that_fits(100, 8, 10 * gib, 1 * gib, 100 * mib) == 65
    assert chunk_that_fits(100, 8, 40 * gib, 1 * gib, 100 * mib) == 100
    with pytest.raises(MemoryError, match="fewer than one output frame with 8 context frames on each side"):
        chunk_that_fits(100, 8, 2 * gib, 1 * gib, 100 * mib)


def test_the_section_clock_adds_up_sections_and_host_waits():
    clock = SectionClock("cpu", ("load", "metric"))
    for _ in range(2):
        with clock.section("metric"):
            time.sleep(0.05)
    clock.add_host("load", 0.25)
    spent = clock.totals()
    assert spent["load"] == 0.25
    assert 0.1 <= spent["metric"] < 0.3
    assert 0.02 <= median_seconds(lambda: time.sleep(0.02), "cpu", repeat=3) < 0.1
