"""Shared fixtures: the ffmpeg binary and tiny PNG clips made with ffmpeg's lavfi sources."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from uvssm.base.ffmpeg import find_ffmpeg, run
from uvssm.base.frames import FRAME_PATTERN


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """Training's frame cache (and anything else under XDG_CACHE_HOME) goes to a session folder,
    for this process and the CLI processes tests start."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def ffmpeg():
    return find_ffmpeg()


def make_clip(ffmpeg, folder: Path, seed: int, frames: int = 8, size: str = "128x72") -> Path:
    """A real, moving, noisy clip of `frames` PNGs: testsrc2 plus seeded temporal noise."""
    folder.mkdir(parents=True, exist_ok=True)
    run(ffmpeg, ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=25,noise=alls=20:allf=t:all_seed={seed}",
                 "-frames:v", str(frames), "-pix_fmt", "rgb24", "-f", "image2", "-start_number", "0",
                 str(folder / FRAME_PATTERN)], context=f"test clip {folder}")
    return folder


@pytest.fixture(scope="session")
def clip_cache(tmp_path_factory, ffmpeg):
    """Three clips named like REDS4 (val), train and REDSOfficial (test) clips, made once."""
    root = tmp_path_factory.mktemp("clips")
    for seed, name in enumerate(["000", "001", "240"]):
        make_clip(ffmpeg, root / name, seed)
    return root


@pytest.fixture
def clips(tmp_path, clip_cache):
    """A private copy of the cached clips that a test may damage."""
    dst = tmp_path / "src"
    shutil.copytree(clip_cache, dst)
    return dst


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    """An untrained votes-tiny x2 checkpoint (seed 0), as `uvssm train` saves one: what restore's tests run."""
    import torch

    from models import checkpoint
    from models.registry import create_model, model_kwargs

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "votes-tiny.pt"
    checkpoint.save(path, create_model("votes-tiny", 2),
                    {"model": "votes-tiny", "scale": 2, "model_kwargs": model_kwargs("votes-tiny", 2)})
    return path


@pytest.fixture(scope="session")
def tiny_reds(tmp_path_factory, ffmpeg):
    """A `uvssm synth-reds` output (QP 28, x2) of the built-in sample made small: 6 clips of 16
    frames at 384x224 (LQ 192x112). Splits: train 001-003, val 000, test 240-241."""
    from uvssm.pipelines.sample import make_sample
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    root = tmp_path_factory.mktemp("tiny_reds")
    src = make_sample(root / "src", ffmpeg, size=(384, 224), frames_per_clip=16)
    report = synth_reds(src, root / "data", ffmpeg, SynthOptions(qps=(28,), scales=(2,), clean_lr=True))
    assert all(not unit.failed for unit in report.units)
    return root / "data"


@pytest.fixture(scope="session")
def hq_video(tmp_path_factory, ffmpeg):
    """A 1280x720, 30 fps original of 100 frames, every frame distinct (moving test pattern + noise)."""
    path = tmp_path_factory.mktemp("hq") / "original.mp4"
    # converted and tagged as BT.709 (what uvssm assumes for untagged HD, and what HD should be)
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30,noise=alls=10:allf=t+u", "-frames:v", "100",
                 "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p", "-colorspace", "bt709",
                 "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
                 "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", "-threads", "1", str(path)],
         context="test original")
    return path
