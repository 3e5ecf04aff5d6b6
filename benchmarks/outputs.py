"""Outputs made elsewhere, scored like uvssm's own models: `uvssm bench --outputs NAME=DIR`.

BasicSR, mmagic and the official repositories write a method's restored frames as `DIR/<clip>/%08d.png`.
Accepted per clip of the benchmarked split:
- a folder `DIR/<clip>/` of PNG frames in frame order by the first number in each name (`00000000.png`,
  BasicSR's `00000000_EDVR.png`; names without a number sort after, by name), or
- a video `DIR/<clip>.<mp4|mkv|avi|mov|webm|y4m>`, decoded to RGB as every uvssm command decodes
  (display rotation applied, its tagged colour matrix and range; a lossy video scores its own losses).

Every clip must be there with as many frames as its HQ and at HQ size; anything else is refused, one line
naming the clip, before any clip is scored.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvssm.base.errors import UvssmError
from uvssm.base.frames import read_png_header, read_rgb

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m")
_NUMBER = re.compile(r"\d+")


def _frame_order(path: Path) -> tuple:
    found = _NUMBER.search(path.stem)
    return (0, int(found.group()), path.name) if found else (1, 0, path.name)


class _VideoFrames:
    """Frames of a video by index, decoded in order by one ffmpeg at a time (FramesAhead asks in mostly
    increasing order from two threads): an index before the last decoded restarts the decoder."""

    def __init__(self, path: Path, ffmpeg: str | None, keep: int = 32):
        from uvssm.base.ffmpeg import find_ffmpeg
        from uvssm.base.probe import probe

        self.path, self.ffmpeg, self.info, self.keep = path, find_ffmpeg(ffmpeg), probe(path), keep
        self.lock = threading.Lock()
        self.frames: dict[int, np.ndarray] = {}
        self.stream, self.next = None, 0

    def __call__(self, i: int) -> np.ndarray:
        from uvssm.base.decode import rgb_frames

        with self.lock:
            if i in self.frames:
                return self.frames[i]
            if self.stream is None or i < self.next:
                if self.stream is not None:
                    self.stream.close()
                self.stream, self.next = rgb_frames(self.ffmpeg, self.info), 0
            while self.next <= i:
                try:
                    frame = next(self.stream)
                except StopIteration:
                    raise UvssmError(f"{self.path}: has no frame {i} (it ended after {self.next})") from None
                self.frames[self.next] = frame
                self.next += 1
            for old in [k for k in self.frames if k < i - self.keep]:
                del self.frames[old]
            return self.frames[i]

    def close(self) -> None:
        with self.lock:
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            self.frames.clear()


@dataclass
class ClipOutputs:
    """One clip's frames made elsewhere: `frame(i)` is an (H, W, 3) uint8 RGB array."""

    clip: str
    path: Path  # the folder or the video
    n_frames: int
    size: tuple[int, int]  # (height, width)
    files: list[Path] | None = None  # the PNGs in frame order; None for a video
    ffmpeg: str | None = None
    _video: _VideoFrames | None = None

    def frame(self, i: int) -> np.ndarray:
        if self.files is not None:
            return read_rgb(self.files[i])
        if self._video is None:
            self._video = _VideoFrames(self.path, self.ffmpeg)
        return self._video(i)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None

    def fingerprint(self) -> str:
        """What the run key hashes: each file's name, size and modification time (a changed output is rescored)."""
        paths = self.files if self.files is not None else [self.path]
        return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def _clip_outputs(root: Path, clip: str, ffmpeg: str | None) -> ClipOutputs:
    folder = root / clip
    if folder.is_dir():
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=_frame_order)
        if not files:
            raise UvssmError(f"{folder}: clip {clip} has no PNG frames here")
        numbers = [_frame_order(p)[:2] for p in files]
        if len(set(numbers)) != len(numbers):
            a, b = next((x, y) for x, y in zip(files, files[1:]) if _frame_order(x)[:2] == _frame_order(y)[:2])
            raise UvssmError(f"{folder}: clip {clip}: {a.name} and {b.name} carry the same frame number")
        header = read_png_header(files[0])
        return ClipOutputs(clip, folder, len(files), (header.height, header.width), files=files)
    for suffix in VIDEO_SUFFIXES:
        video = root / f"{clip}{suffix}"
        if video.is_file():
            from uvssm.base.probe import probe

            info = probe(video)
            width, height = info.display_size
            return ClipOutputs(clip, video, info.n_frames, (height, width), ffmpeg=ffmpeg)
    raise UvssmError(f"{root}: no outputs of clip {clip} (expected {folder}/%08d.png or {clip}.mp4 and the like)")


@dataclass
class ForeignOutputs:
    """A method's outputs for every clip of the benchmarked split."""

    name: str
    root: Path
    clips: dict[str, ClipOutputs]

    def fingerprint(self) -> str:
        text = "|".join(f"{c}={o.fingerprint()}" for c, o in sorted(self.clips.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def close(self) -> None:
        for outputs in self.clips.values():
            outputs.close()


def parse_outputs(entries: list[str] | tuple[str, ...]) -> list[tuple[str, Path]]:
    """["NAME=DIR", ...] (`--outputs` values) → [(name, dir)]; one-line errors for a bad entry."""
    found = []
    for entry in entries:
        name, sep, folder = entry.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise UvssmError(f"--outputs {entry!r}: expected NAME=DIR (e.g. --outputs basicvsr-official=results/BasicVSR)")
        found.append((name.strip(), Path(folder.strip())))
    names = [n for n, _ in found]
    if len(set(names)) != len(names):
        raise UvssmError(f"--outputs: the name {next(n for n in names if names.count(n) > 1)!r} is given twice")
    return found


def open_outputs(name: str, root: Path, clips, ffmpeg: str | None = None) -> ForeignOutputs:
    """Find and check `name`'s outputs of `clips` (ClipPairs): there, as many frames as the clip, at HQ size. Raises a one-line UvssmError naming the clip otherwise."""
    if not root.is_dir():
        raise UvssmError(f"{root}: --outputs {name}: folder not found")
    found = {}
    for clip in clips:
        outputs = _clip_outputs(root, clip.name, ffmpeg)
        if outputs.n_frames != clip.n_frames:
            raise UvssmError(f"{outputs.path}: clip {clip.name}: {outputs.n_frames} output frames, but its HQ has "
                             f"{clip.n_frames} ({clip.hq_dir})")
        hq = (clip.scale * clip.lq_size[0], clip.scale * clip.lq_size[1])
        if outputs.size != hq:
            raise UvssmError(f"{outputs.path}: clip {clip.name}: outputs are {outputs.size[1]}x{outputs.size[0]}, "
                             f"HQ is {hq[1]}x{hq[0]}")
        found[clip.name] = outputs
    return ForeignOutputs(name, root, found)
