"""Frames decoded once for the check and the weighing (`uvssm.align.held`), against the frames a plain
ffmpeg command writes."""

from __future__ import annotations

import subprocess

import numpy as np

from uvssm.align.held import HeldFrames
from uvssm.base.probe import probe


def _plain_gray(ffmpeg, path, w, h) -> np.ndarray:
    raw = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w)


def test_held_frames_are_ffmpegs_and_readers_past_them_get_the_rest(ffmpeg, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "20",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    truth = _plain_gray(ffmpeg, clip, 96, 64)
    assert len(truth) == 20
    info = probe(clip)
    for budget in (1 << 30, 10):  # held, and over the budget (every reader decodes again)
        held = HeldFrames(ffmpeg, info, 5, 9, budget=budget)
        assert (held.held is None) == (budget == 10)
        got = list(held.frames())
        assert [i for i, _ in got] == list(range(5, 20))  # the held span, then the rest of the video
        assert all(np.array_equal(f, truth[i]) for i, f in got)
        assert [i for i, _ in held.frames(7)][:3] == [7, 8, 9]
        picked = held.pick({6, 9})
        assert sorted(picked) == [6, 9] and all(np.array_equal(picked[i], truth[i]) for i in picked)
        assert sorted(held.pick({3, 12})) == [3, 12]  # outside the held span: decoded again
    # a span past the video's end holds what there is, and readers stop there
    tail = HeldFrames(ffmpeg, info, 15, 30)
    assert tail.ended and [i for i, _ in tail.frames()] == list(range(15, 20))
    assert sorted(tail.pick({18, 25})) == [18]
