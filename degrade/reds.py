"""Synthesising compressed low-resolution frames for one clip (REDS and any PNG clip folder).

Each function works inside a private work folder and leaves the caller to move the results into
place; nothing here knows about datasets, resuming or manifests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from degrade.recipe import X264Recipe
from uvssm.bitstream import read_stream_info
from uvssm.errors import UvssmError
from uvssm.ffmpeg import FFmpeg, raw_frames, run
from uvssm.frames import FRAME_PATTERN, ClipFrames, ClipProblem, find_unreadable

OnFrames = Callable[[int], None]  # called with the number of frames just written


@dataclass(frozen=True)
class EncodedClip:
    clip: str
    frames_dir: Path  # work folder holding %08d.png
    mp4: Path
    rows: pd.DataFrame  # one row per frame: frame, pict_type, packet_bytes, keyframe, sha256
    bitrate_kbps: float
    mp4_bytes: int
    x264_version: str
    x264_options: str


def _pixel_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_pngs_and_hash(ffmpeg: FFmpeg, input_args: list[str], recipe: X264Recipe, out_dir: Path,
                        size: tuple[int, int], context: str, on_frames: OnFrames | None = None) -> list[str]:
    """Decode `input_args` once into `out_dir/%08d.png` and, from the same decode, raw RGB that is
    hashed here. Returns the sha256 of every frame's RGB bytes, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame_bytes = size[0] * size[1] * 3
    args = [*input_args, *recipe.png_args(str(out_dir / FRAME_PATTERN)),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    hashes = []
    for data in raw_frames(ffmpeg, args, frame_bytes, context=context):
        hashes.append(_pixel_hash(data))
        if on_frames:
            on_frames(1)
    return hashes


def _run_on_source(ffmpeg: FFmpeg, args: list[str], clip: ClipFrames, action: str) -> None:
    """Run ffmpeg on the clip's HQ frames; if it fails, name the damaged PNG where there is one."""
    try:
        run(ffmpeg, args, context=f"clip {clip.name}: {action} {clip.folder}")
    except UvssmError as exc:
        bad = find_unreadable(clip.folder, clip.n_frames)
        if bad is not None:
            raise ClipProblem(f"clip {clip.name}: unreadable PNG {bad}") from None
        raise exc from None


def encode_clip(ffmpeg: FFmpeg, recipe: X264Recipe, clip: ClipFrames, work: Path,
                decoder_threads: int = 0, on_frames: OnFrames | None = None) -> EncodedClip:
    """Encode the clip's HQ PNGs with `recipe`, decode the result to PNGs, and describe it."""
    work.mkdir(parents=True, exist_ok=True)
    mp4 = work / f"{clip.name}.mp4"
    context = f"clip {clip.name}"
    _run_on_source(ffmpeg, recipe.encode_args(str(clip.folder / FRAME_PATTERN), recipe.size_arg(clip.width, clip.height),
                                              str(mp4), decoder_threads), clip, "encoding")
    frames_dir = work / "frames"
    size = recipe.lq_size(clip.width, clip.height)
    hashes = write_pngs_and_hash(ffmpeg, ["-threads", str(decoder_threads), "-i", str(mp4)], recipe,
                                 frames_dir, size, f"{context}: decoding {mp4.name}", on_frames)
    info = read_stream_info(mp4, recipe.fps)
    if not (len(hashes) == len(info.frames) == clip.n_frames):
        raise UvssmError(f"{context}: {mp4.name} decoded to {len(hashes)} frames "
                         f"({len(info.frames)} coded), expected {clip.n_frames}")
    rows = pd.DataFrame({
        "frame": [f.index for f in info.frames],
        "pict_type": [f.pict_type for f in info.frames],
        "packet_bytes": [f.packet_bytes for f in info.frames],
        "keyframe": [f.keyframe for f in info.frames],
        "sha256": hashes,
    })
    return EncodedClip(clip.name, frames_dir, mp4, rows, info.bitrate_kbps, mp4.stat().st_size,
                       info.x264_version, info.x264_options)


def clean_clip(ffmpeg: FFmpeg, recipe: X264Recipe, clip: ClipFrames, work: Path,
               decoder_threads: int = 0, on_frames: OnFrames | None = None) -> tuple[Path, list[str]]:
    """Write the frames exactly as the encoder receives them (scaled, yuv420p), converted back to
    RGB the same way as decoded frames. Returns the work folder of PNGs and their hashes."""
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "clean.yuv"
    context = f"clip {clip.name}"
    _run_on_source(ffmpeg, recipe.clean_args(str(clip.folder / FRAME_PATTERN), recipe.size_arg(clip.width, clip.height),
                                             str(raw), decoder_threads), clip, "scaling")
    w, h = recipe.lq_size(clip.width, clip.height)
    raw_input = ["-threads", str(decoder_threads), "-f", "rawvideo", "-pix_fmt", recipe.pix_fmt,
                 "-video_size", f"{w}x{h}", "-framerate", str(recipe.fps), "-i", str(raw)]
    frames_dir = work / "frames"
    hashes = write_pngs_and_hash(ffmpeg, raw_input, recipe, frames_dir, (w, h),
                                 f"{context}: converting clean frames", on_frames)
    raw.unlink()
    if len(hashes) != clip.n_frames:
        raise UvssmError(f"{context}: {len(hashes)} clean frames, expected {clip.n_frames}")
    return frames_dir, hashes
