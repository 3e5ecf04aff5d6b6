"""Synthesising compressed low-resolution frames for one clip (REDS and any PNG clip folder).

`synthesise_clip` makes every requested setting of one clip with one ffmpeg (see
`degrade.recipe.synth_command`): the HQ PNGs are decoded once, and what the manifest records of
each encoded frame comes from that same run: the picture type from the loopback decode's
`showinfo`, the pixel hash from the decoded frames' raw RGB (hashed here as they arrive). The
.mp4 is then read once more with PyAV for what only its bitstream says: every macroblock's QP
(`uvssm.base.qpmaps`), each packet's size and keyframe flag. That decode is of the small LQ stream
alone; its picture types must agree with showinfo's.

Each function works inside private work folders and leaves the caller to move the results into
place; nothing here knows about datasets, resuming or manifests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from degrade.recipe import CleanTarget, Downscale, LqTarget, X264Recipe, synth_command
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import FFmpeg, run_with_pipes, x264_signature
from uvssm.base.frames import FRAME_PATTERN, ClipFrames, ClipProblem, find_unreadable
from uvssm.base.qpmaps import QPMaps, read_qp_maps

OnFrames = Callable[[int], None]  # called with the number of frames just written

_SHOWINFO = re.compile(r"\[Parsed_showinfo_(\d+) @ [^\]]*\] \[info\] n:\s*(\d+) .*? type:(\S+)")


@dataclass(frozen=True)
class EncodedClip:
    clip: str
    frames_dir: Path  # work folder holding %08d.png
    mp4: Path
    rows: pd.DataFrame  # one row per frame: frame, pict_type, packet_bytes, keyframe, mean_qp, sha256
    qp_maps: QPMaps  # every frame's macroblock QPs (saved as <clip>.qp.npz beside the .mp4)
    bitrate_kbps: float
    mp4_bytes: int
    x264_version: str
    x264_options: str


@dataclass(frozen=True)
class CleanClip:
    clip: str
    frames_dir: Path  # work folder holding %08d.png
    hashes: list[str]  # sha256 of every frame's RGB bytes, in order


def picture_types(log: str, n_targets: int) -> list[dict[int, str]]:
    """Per target k, frame number -> picture type, from the `Parsed_showinfo_k` lines of a log."""
    types: list[dict[int, str]] = [{} for _ in range(n_targets)]
    for match in _SHOWINFO.finditer(log):
        k, n, kind = int(match.group(1)), int(match.group(2)), match.group(3)
        if k < n_targets:
            types[k][n] = kind
    return types


def synthesise_clip(ffmpeg: FFmpeg, clip: ClipFrames, lq: dict[X264Recipe, Path], clean: dict[int, Path],
                    decoder_threads: int = 0, on_frames: OnFrames | None = None
                    ) -> tuple[dict[X264Recipe, EncodedClip], dict[int, CleanClip]]:
    """Make every LQ setting (`lq`: recipe -> work folder) and clean LR scale (`clean`: scale ->
    work folder) of one clip in one ffmpeg run. Each work folder receives `frames/%08d.png` (and,
    for LQ, `<clip>.mp4`)."""
    recipes = list(lq)
    lq_targets = [LqTarget(r, str(lq[r] / f"{clip.name}.mp4"), str(lq[r] / "frames" / FRAME_PATTERN),
                           str(lq[r] / "rgb.pipe")) for r in recipes]
    clean_targets = [CleanTarget(Downscale(scale=s), str(work / "frames" / FRAME_PATTERN), str(work / "rgb.pipe"))
                     for s, work in clean.items()]
    targets = [*lq_targets, *clean_targets]
    for t in targets:
        Path(t.png_pattern).parent.mkdir(parents=True, exist_ok=True)
    sizes = [t.recipe.lq_size(clip.width, clip.height) for t in targets]
    hashes: list[list[str]] = [[] for _ in targets]

    def on_frame(index: int, data: bytes) -> None:
        hashes[index].append(hashlib.sha256(data).hexdigest())
        if on_frames:
            on_frames(1)

    args = synth_command(str(clip.folder / FRAME_PATTERN), lq_targets, clean_targets, decoder_threads)
    context = f"clip {clip.name}"
    try:
        log = run_with_pipes(ffmpeg, args, [Path(t.rgb_sink) for t in targets], [w * h * 3 for w, h in sizes],
                             on_frame, context=f"{context}: synthesising from {clip.folder}")
    except UvssmError:
        bad = find_unreadable(clip.folder, clip.n_frames)
        if bad is not None:
            raise ClipProblem(f"clip {clip.name}: unreadable PNG {bad}") from None
        raise
    types = picture_types(log, len(lq_targets))
    names = [f"qp{r.qp} x{r.scale}" for r in recipes] + [f"clean x{s}" for s in clean]
    for name, got in zip(names, hashes):
        if len(got) != clip.n_frames:
            raise UvssmError(f"{context}: {name} gave {len(got)} frames, expected {clip.n_frames}")
    encoded = {}
    for k, recipe in enumerate(recipes):
        mp4 = Path(lq_targets[k].mp4)
        maps = read_qp_maps(mp4)
        if not (len(maps) == len(types[k]) == clip.n_frames):
            raise UvssmError(f"{context}: {mp4.name} has {len(maps)} coded frames and {len(types[k])} "
                             f"decoded ones, expected {clip.n_frames}")
        pict = [types[k][i] for i in range(clip.n_frames)]
        if pict != maps.pict_type.tolist():
            raise UvssmError(f"{context}: {mp4.name}: picture types differ between ffmpeg and PyAV decodes")
        rows = pd.DataFrame({
            "frame": range(clip.n_frames),
            "pict_type": pict,
            "packet_bytes": maps.packet_bytes,
            "keyframe": maps.keyframe,
            "mean_qp": maps.mean_qp,
            "sha256": hashes[k],
        })
        total = int(maps.packet_bytes.sum())
        with open(mp4, "rb") as f:
            version, options = x264_signature(f.read(1 << 20))
        encoded[recipe] = EncodedClip(clip.name, mp4.parent / "frames", mp4, rows, maps,
                                      total * 8 / (clip.n_frames / recipe.fps) / 1000, mp4.stat().st_size,
                                      version, options)
    cleaned = {s: CleanClip(clip.name, work / "frames", hashes[len(recipes) + j])
               for j, (s, work) in enumerate(clean.items())}
    return encoded, cleaned
