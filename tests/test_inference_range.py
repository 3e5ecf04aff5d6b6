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


@pytest.mark.parametrize("n", [5, 9])
def test_every_range_of_a_window_model_equals_the_whole_clip(n):
    frames, stages = _frames(n), [_stage("edvr-tiny")]
    whole = list(restore_stream(frames, stages))
    assert shard_unit(stages) == 1
    for start in range(n):
        for end in range(start + 1, n + 1):
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
