"""`restore_range` (a shard of a clip) gives exactly the whole-clip run's outputs."""

from __future__ import annotations

import pytest
import torch

from models.inference import Stage, restore_range, restore_stream, shard_unit
from models.registry import create_model


def _frames(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 16, 20, generator=g) for _ in range(n)]


def _stage(name: str, kind: str = "window", num_frame: int = 5, chunk: int = 100, multiple: int = 4) -> Stage:
    torch.manual_seed(1)
    return Stage(create_model(name, 2).eval(), num_frame, 2, multiple, kind=kind, chunk=chunk, chunk_overlap=2)


@pytest.mark.parametrize("n", [5, 11])
def test_ranges_of_a_window_model_equal_the_whole_clip(n):
    """Every range of a 5-frame clip; on 11 frames, ranges at both ends, inside, and single frames
    (a window near a clip's end reaches 2p = 4 frames back)."""
    frames, stages = _frames(n), [_stage("edvr-tiny")]
    whole = list(restore_stream(frames, stages))
    assert shard_unit(stages) == 1
    ranges = [(a, b) for a in range(n) for b in range(a + 1, n + 1)] if n == 5 else \
        [(0, 1), (0, 3), (2, 5), (3, 11), (5, 6), (6, 9), (9, 11), (10, 11)]
    for start, end in ranges:
        part = list(restore_range(frames.__getitem__, n, start, end, stages))
        assert len(part) == end - start
        for a, b in zip(part, whole[start:end]):
            assert torch.equal(a, b), (start, end)


def test_recurrent_chunks_equal_the_whole_clip_and_misaligned_starts_are_refused():
    n, frames = 10, _frames(10)
    stages = [_stage("basicvsr-tiny", kind="recurrent", num_frame=2, chunk=4)]
    whole = list(restore_stream(frames, stages))
    assert shard_unit(stages) == 4
    for start, end in ((0, 4), (4, 8), (8, 10), (4, 10), (0, 10), (4, 6)):
        part = list(restore_range(frames.__getitem__, n, start, end, stages))
        assert len(part) == end - start
        for a, b in zip(part, whole[start:end]):
            assert torch.equal(a, b), (start, end)
    with pytest.raises(ValueError, match="multiple of its chunk"):
        list(restore_range(frames.__getitem__, n, 2, 6, stages))


def test_reads_only_the_frames_a_window_range_needs():
    n, frames, read = 30, _frames(30), []
    stages = [_stage("edvr-tiny")]

    def frame_at(i):
        read.append(i)
        return frames[i]

    list(restore_range(frame_at, n, 10, 15, stages))
    assert read == list(range(6, 19))  # 2p = 4 either side


@pytest.mark.parametrize("name,batch", [("votes-tiny", 1), ("edvr-tiny", 1), ("edvr-tiny", 3)])
def test_shared_frame_features_give_the_per_window_outputs(name, batch):
    """The EDVR family computes each frame's feature pyramid once per stream; outputs equal the
    per-window computation within 1e-5 (batch composition may reorder float sums)."""
    n, frames = 9, [f[:, :15, :18] for f in _frames(9)]  # not a multiple of 4: padded frames
    shared, alone = _stage(name), _stage(name)
    alone.share_features = False
    a = list(restore_stream(frames, [shared], batch=batch))
    b = list(restore_stream(frames, [alone], batch=batch))
    assert len(a) == len(b) == n
    for x, y in zip(a, b):
        assert x.shape == (3, 30, 36)
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
