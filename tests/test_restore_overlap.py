"""`uvssm restore` overlaps its stages (#41 item 10): decode ahead of the model on a thread, encode behind it on
another. With each stage made deliberately slow, the restore takes about as long as one stage, not the sum of
the three; the frames written are exactly those of a sequential reference (decode, model, round, in turn, on
this thread); the bytes written equal those of the stages run in turn; an error on either thread is raised
on the caller's thread as the same one-line UvssmError, and nothing is left under the temporary name.

The sequential reference decodes with `rgb_frames` (ffmpeg), as restore does: PyAV's own RGB conversion of
the same file differs by up to 131 levels on noisy chroma, so it cannot be a byte-exact reference.

The model is a small seeded window model (3 frames in, x2 out, convs and a pixel shuffle) in place of the
checkpoint's, so that the planted delays, not the model's arithmetic on a loaded 2-core machine, set the
stage times; `tests/test_restore.py` runs votes-tiny through the same (overlapped) path against the same
kind of reference."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import models.trained
from models.inference import Stage, restore_stream
from models.trained import TrainedModel
from uvssm.base.decode import rgb_frames
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import FrameWriter, run
from uvssm.base.frames import frame_name, read_rgb
from uvssm.base.overlap import Ahead, Behind
from uvssm.base.probe import probe
from uvssm.pipelines import restore as restore_mod
from uvssm.pipelines.restore import RestoreOptions, restore_video

FRAMES = 16


@pytest.fixture(scope="module")
def video(tmp_path_factory, ffmpeg):
    path = tmp_path_factory.mktemp("v") / "noisy.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25,noise=alls=30:allf=t", "-frames:v", str(FRAMES),
                 "-c:v", "libx264", "-crf", "10", "-threads", "1", "-pix_fmt", "yuv420p", str(path)],
        context="test video")
    return path


class Small(torch.nn.Module):
    """(B, 3, 3, h, w) -> (B, 3, 2h, 2w): the centre frame upscaled (nearest) plus a learned x2 residual."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(9, 16, 3, padding=1)
        self.tail = torch.nn.Conv2d(16, 12, 3, padding=1)

    def forward(self, x):
        b, t, c, h, w = x.shape
        res = torch.nn.functional.pixel_shuffle(self.tail(torch.relu(self.body(x.reshape(b, t * c, h, w)))), 2)
        return torch.nn.functional.interpolate(x[:, 1], scale_factor=2, mode="nearest") + 0.3 * res


@pytest.fixture
def small():  # one per test: a test may hook it
    torch.manual_seed(0)
    return Small().eval()


@pytest.fixture
def small_model(monkeypatch, small):
    """restore loads `Small` (the checkpoint is still read and checked by nothing else); returns its stages."""
    def stages():
        return [Stage(small, num_frame=3, scale=2, multiple=1)]

    monkeypatch.setattr(models.trained, "load_trained",
                        lambda name, scale, weights: TrainedModel("small", stages(), ["small"], None))
    return stages


def _opts(ckpt, **kw):
    return RestoreOptions("votes-tiny", [f"votes-tiny={ckpt}"], preset="ultrafast", **kw)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if "tmp" in p.name)


def test_overlapped_restore_writes_the_sequential_references_frames_and_bytes(tmp_path, ffmpeg, ckpt, video,
                                                                              small_model):
    # the reference: every frame decoded, the model over them, rounded to 8 bits, in turn on this thread
    lq = [torch.tensor(f).permute(2, 0, 1).float() / 255 for f in rgb_frames(ffmpeg, probe(video))]
    want = [o.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy() for o in restore_stream(lq, small_model())]
    assert len(want) == FRAMES
    runs = {}
    for overlap in (True, False):
        frames, out = tmp_path / f"frames-{overlap}", tmp_path / f"r-{overlap}.mp4"
        runs[overlap] = restore_video(video, out, ffmpeg, _opts(ckpt, frames_dir=frames, overlap=overlap))
        got = [read_rgb(frames / frame_name(i)) for i in range(FRAMES)]
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), overlap
        assert not (frames / frame_name(FRAMES)).exists()
    assert runs[True]["frames"] == runs[False]["frames"] == FRAMES
    assert (tmp_path / "r-True.mp4").read_bytes() == (tmp_path / "r-False.mp4").read_bytes()
    assert _leftovers(tmp_path) == []


@pytest.fixture
def slow_stages(monkeypatch, small, small_model):
    """Each stage sleeps DELAY per frame: decoding (the decoder's generator), the model (a forward pre-hook on
    the model: one call per output frame here) and encoding (FrameWriter.write). Sleep releases the
    GIL, as ffmpeg's pipes and torch's kernels do, so the stages can overlap whatever the machine's load.
    Also records the thread each stage ran on. The delay (3.2 s per stage over 16 frames) dwarfs the fixed cost
    of starting and flushing ffmpeg, about a second on a loaded 2-core machine, which the wall clock also holds."""
    delay = 0.2
    threads = {"decode": set(), "model": set(), "encode": set()}
    real_frames, real_write = restore_mod.rgb_frames, FrameWriter.write

    def slow_frames(*args, **kwargs):
        for frame in real_frames(*args, **kwargs):
            time.sleep(delay)
            threads["decode"].add(threading.get_ident())
            yield frame

    def slow_model(m, args):
        time.sleep(delay)
        threads["model"].add(threading.get_ident())

    def slow_write(self, frame):
        time.sleep(delay)
        threads["encode"].add(threading.get_ident())
        return real_write(self, frame)

    monkeypatch.setattr(restore_mod, "rgb_frames", slow_frames)
    small.register_forward_pre_hook(slow_model)
    monkeypatch.setattr(FrameWriter, "write", slow_write)
    return delay, threads


@pytest.fixture
def one_torch_thread():
    """The small model's arithmetic on two OpenMP threads of a loaded 2-core machine varies by seconds from run to
    run (measured: 0.9 to 3.3 s for 16 frames); on one thread it stays well under the planted delays."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_slow_stages_overlap_the_restore_takes_about_one_stage(tmp_path, ffmpeg, ckpt, video, slow_stages,
                                                               one_torch_thread):
    delay, threads = slow_stages
    timed = {}
    for overlap in (False, True):
        for seen in threads.values():
            seen.clear()
        result = restore_video(video, tmp_path / f"r-{overlap}.mp4", ffmpeg, _opts(ckpt, overlap=overlap))
        stages, wall = result["stage_seconds"], result["seconds"]
        assert set(stages) == {"decode", "model", "encode"}
        for name, seconds in stages.items():  # each stage's clock holds at least its planted sleeps
            assert seconds >= FRAMES * delay * 0.95, (overlap, name, stages)
        timed[overlap] = (wall, sum(stages.values()))
        print(f"overlap={overlap}: wall {wall:.2f} s, stages {({k: round(v, 2) for k, v in stages.items()})}")
        if overlap:
            assert len(set().union(*threads.values())) == 3, threads  # three threads, one per stage
        else:
            assert len(set().union(*threads.values())) == 1, threads
    wall, total = timed[False]
    assert wall >= 0.95 * total  # in turn: the stages add up (the clocks are honest)
    wall, total = timed[True]
    assert wall < 0.7 * total, timed  # overlapped: about the slowest stage (ideally 1/3 of the sum)
    assert wall < 0.7 * timed[False][0], timed


@pytest.mark.parametrize("where", ["decode", "encode"])
def test_an_error_on_a_stage_thread_is_raised_as_the_same_one_line_error(tmp_path, ffmpeg, ckpt, video,
                                                                         monkeypatch, small_model, where):
    planted = UvssmError(f"{video}: {where} failed at frame 5 (planted)")
    if where == "decode":
        real = restore_mod.rgb_frames

        def failing(*args, **kwargs):
            for i, frame in enumerate(real(*args, **kwargs)):
                if i == 5:
                    raise planted
                yield frame

        monkeypatch.setattr(restore_mod, "rgb_frames", failing)
    else:
        real = restore_mod.write_rgb
        written = []

        def failing(path, rgb):
            if len(written) == 5:
                raise planted
            written.append(path)
            real(path, rgb)

        monkeypatch.setattr(restore_mod, "write_rgb", failing)
    out = tmp_path / "r.mp4"
    with pytest.raises(UvssmError) as caught:
        restore_video(video, out, ffmpeg, _opts(ckpt, frames_dir=tmp_path / "frames"))
    assert caught.value is planted and "\n" not in str(caught.value)
    assert not out.exists() and _leftovers(tmp_path) == []
    assert not [t for t in threading.enumerate() if t.name.startswith(("uvssm-decode", "uvssm-encode"))]


# --- the two helpers on their own ------------------------------------------------------------------------

def test_ahead_runs_its_source_on_a_thread_and_closes_it():
    closed, where = [], set()

    def source():
        try:
            for i in range(100):
                where.add(threading.get_ident())
                yield i
        finally:
            closed.append(threading.get_ident())

    with Ahead(source(), depth=3) as ahead:
        assert [next(ahead) for _ in range(5)] == list(range(5))
    assert closed and where == {closed[0]} and closed[0] != threading.get_ident()
    assert list(Ahead(iter(range(7)), depth=2)) == list(range(7))
    assert list(Ahead(iter(range(7)), depth=0)) == list(range(7))


def test_ahead_and_behind_raise_their_threads_error_on_the_caller():
    boom = ValueError("boom")

    def source():
        yield 1
        raise boom

    ahead = Ahead(source(), depth=2)
    assert next(ahead) == 1
    with pytest.raises(ValueError) as caught:
        next(ahead)
    assert caught.value is boom
    ahead.close()

    seen = []

    def consume(item):
        if item == 3:
            raise boom
        seen.append(item)

    behind = Behind(consume, depth=2)
    with pytest.raises(ValueError) as caught:
        for i in range(50):
            behind.put(i)
        behind.finish()
    assert caught.value is boom and seen == [0, 1, 2]
    behind.abort()
    stopping = Behind(lambda item: item < 2, depth=2)
    results = [stopping.put(i) for i in range(20)]
    stopping.finish()
    assert stopping.completed == 2 and results[-1] is False
