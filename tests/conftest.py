"""Shared fixtures: the ffmpeg binary and tiny PNG clips made with ffmpeg's lavfi sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from uvssm.ffmpeg import find_ffmpeg, run
from uvssm.frames import FRAME_PATTERN


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
