"""The frame-rate conversion model (`uvssm.align.rate_chain`) against ffmpeg itself.

Each case is a share of a share made by plain ffmpeg commands: a lavfi original at 29.97 fps, a
first step (none, an `fps` filter with a rounding mode, or a constant-rate `-r` output) into a
lossless intermediate (MP4, whose times are exact, or Matroska, which keeps milliseconds), then the
share's `fps` filter. The truth is each output frame's hash found among the original's
(`-f framemd5`); the model, given the same steps, must name the same original frame for every one.
"""

from __future__ import annotations

import random
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from uvssm.align.rate_chain import MODES, RATES, Chain, chain_mapping, fit_chain

HQ_RATE = Fraction(30000, 1001)
SOURCE = "testsrc2=size=96x64:rate=30000/1001:duration=3"


def _md5(ffmpeg: str, args: list[str]) -> tuple[list[str], list[float]]:
    """(hash, time in seconds) of every frame ffmpeg writes with `-f framemd5`."""
    out = subprocess.run([ffmpeg, "-nostdin", "-v", "error", *args, "-f", "framemd5", "-"], capture_output=True,
                         text=True, check=True).stdout
    tb = Fraction(next(line for line in out.splitlines() if line.startswith("#tb 0:")).split(":", 1)[1].strip())
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return [r[-1].strip() for r in rows], [float(int(r[2]) * tb) for r in rows]


def _cases(n: int, seed: int = 7):
    rng = random.Random(seed)
    for _ in range(n):
        first = rng.choice(["none", "fps", "fps", "-r"])
        rate = None if first == "none" else rng.choice(RATES)
        mode = rng.choice(MODES) if first == "fps" else None
        milliseconds = first != "-r" and rng.random() < 0.6  # -r: MP4 (ffmpeg's constant-rate sync)
        yield Chain(first, rate, mode, milliseconds, rng.choice(MODES), origin=rng.randrange(0, 20)), rng.choice(RATES)


@pytest.fixture(scope="module")
def original(ffmpeg):
    hashes, _ = _md5(ffmpeg.path, ["-f", "lavfi", "-i", SOURCE, "-vf", "format=yuv420p"])
    assert len(set(hashes)) == len(hashes)  # every frame tells itself apart
    return {h: k for k, h in enumerate(hashes)}, len(hashes)


def _share(ffmpeg: str, folder, chain: Chain, lq_rate: Fraction) -> tuple[np.ndarray, np.ndarray]:
    """Make the share `chain` describes with plain ffmpeg: (the original frame each output frame
    shows, by hash; each output frame's fractional position in the original by its timestamp)."""
    timing = f"trim=start_frame={chain.origin},setpts=PTS-STARTPTS"
    if chain.first == "fps":
        timing += f",fps={chain.rate}:round={chain.mode}"
    out = folder / ("mid.mkv" if chain.milliseconds else "mid.mp4")
    codec = ["-c:v", "ffv1"] if chain.milliseconds else ["-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"]
    rate = ["-r", str(chain.rate)] if chain.first == "-r" else []
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", SOURCE, "-vf",
                    f"format=yuv420p,{timing}", *rate, *codec, "-pix_fmt", "yuv420p", str(out)], check=True)
    hashes, times = _md5(ffmpeg, ["-i", str(out), "-vf", f"fps={lq_rate}:round={chain.second}"])
    return hashes, chain.origin + np.asarray(times) * float(HQ_RATE)  # by the timestamps, from the trim point


@pytest.mark.parametrize("chain,lq_rate", list(_cases(40)), ids=lambda x: str(x) if isinstance(x, Fraction) else
                         f"{x.first}-{x.rate}-{x.mode}-{'ms' if x.milliseconds else 'exact'}-{x.second}-{x.origin}")
def test_the_model_names_the_frame_ffmpeg_kept(ffmpeg, tmp_path, original, chain, lq_rate):
    where, n_hq = original
    hashes, position = _share(ffmpeg.path, tmp_path, chain, lq_rate)
    truth = np.array([where[h] for h in hashes])  # lossless all the way: each output frame is an original one
    mapping = chain_mapping(chain, position, HQ_RATE, lq_rate, n_hq)
    assert mapping is not None
    wrong = np.flatnonzero(mapping != truth)
    assert not len(wrong), f"frames {wrong[:8].tolist()}: model {mapping[wrong[:8]].tolist()}, ffmpeg {truth[wrong[:8]].tolist()}"


@pytest.mark.parametrize("chain,lq_rate", list(_cases(6, seed=11)))
def test_the_search_finds_a_chain_that_pairs_like_ffmpeg(ffmpeg, tmp_path, original, chain, lq_rate):
    """Given errors that favour ffmpeg's frame (the truth by hash) over its neighbours, `fit_chain`
    picks a chain whose pairing is ffmpeg's on every frame."""
    where, n_hq = original
    hashes, position = _share(ffmpeg.path, tmp_path, chain, lq_rate)
    truth = np.array([where[h] for h in hashes])
    errors = [{k: 1.0 + abs(k - t) for k in range(max(0, t - 3), min(n_hq, t + 4))} for t in truth]
    fit = fit_chain(errors, position, HQ_RATE, lq_rate, n_hq)
    assert fit is not None and fit.cost == 0.0
    assert fit.mapping.tolist() == truth.tolist()


def test_constant_rate_reads_a_millisecond_clock_and_refuses_a_gap():
    from uvssm.align.rate_chain import constant_rate

    ms = np.round(np.arange(50) * 1001 / 30) / 1000  # 29.97 fps kept in milliseconds: 0, 0.033, 0.067, …
    assert constant_rate(ms) == Fraction(30000, 1001)
    assert constant_rate(np.arange(50) / 25 + 17.97) == 25  # a non-zero start time
    gap = np.concatenate([np.arange(20), np.arange(21, 50)]) / 25  # one frame missing
    assert constant_rate(gap) is None
