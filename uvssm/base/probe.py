"""Probing a video file with PyAV: everything alignment and decoding need to know about its stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from uvssm.base.errors import UvssmError

# FFmpeg enum values as PyAV returns them (libavutil/pixfmt.h)
_MATRIX = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
           8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_RANGE = {0: "unknown", 1: "tv", 2: "pc"}
_PRIMARIES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020",
              11: "smpte431", 12: "smpte432"}
_TRANSFER = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
HDR_TRANSFERS = ("smpte2084", "arib-std-b67")


@dataclass(frozen=True)
class VideoProbe:
    path: str
    container: str
    codec: str
    width: int  # coded size, before rotation
    height: int
    sar: str  # sample aspect ratio "num:den"
    rotation: int  # display rotation, degrees counter-clockwise (0, 90, 180, 270)
    avg_fps: float
    real_fps: float  # r_frame_rate (the base rate)
    time_base: str
    n_frames: int  # counted by demuxing when the header does not say
    duration_s: float
    pix_fmt: str
    bit_depth: int
    color_matrix: str  # as tagged ("unknown" when untagged)
    color_range: str
    color_primaries: str
    color_transfer: str

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    @property
    def is_hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    def decode_matrix(self) -> tuple[str, str]:
        """The colour matrix to decode with and why: the tag, else BT.709 for HD, BT.601 for SD."""
        if self.color_matrix not in ("unknown", "gbr"):
            return self.color_matrix, "tagged"
        return ("bt709", "untagged: HD default") if self.height >= 720 else ("smpte170m", "untagged: SD default")

    def to_dict(self) -> dict:
        return asdict(self)


def _bit_depth(pix_fmt: str) -> int:
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt:
            return depth
    return 8


def probe(path: str | Path) -> VideoProbe:
    """Probe the first video stream of `path`. Raises UvssmError naming the file if there is none."""
    path = Path(path)
    if not path.is_file():
        raise UvssmError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UvssmError(f"{path}: no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            first = next(iter(container.decode(stream)), None)
            if first is None:
                raise UvssmError(f"{path}: the video stream has no frames")
            n = stream.frames
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                container.duration / 1e6 if container.duration else 0.0)
            sar = ctx.sample_aspect_ratio or Fraction(1, 1)
            info = dict(
                path=str(path), container=container.format.name, codec=ctx.name, width=ctx.width, height=ctx.height,
                sar=f"{sar.numerator}:{sar.denominator}", rotation=int(first.rotation or 0) % 360,
                avg_fps=float(stream.average_rate or stream.base_rate or 0), real_fps=float(stream.base_rate or 0),
                time_base=str(stream.time_base), duration_s=duration, pix_fmt=str(ctx.pix_fmt),
                bit_depth=_bit_depth(str(ctx.pix_fmt)),
                color_matrix=_MATRIX.get(int(first.colorspace), str(first.colorspace)),
                color_range=_RANGE.get(int(first.color_range), str(first.color_range)),
                color_primaries=_PRIMARIES.get(int(first.color_primaries), str(first.color_primaries)),
                color_transfer=_TRANSFER.get(int(first.color_trc), str(first.color_trc)))
        if n <= 0:  # the header does not say: count the packets
            with av.open(str(path)) as recount:
                n = sum(1 for packet in recount.demux(recount.streams.video[0]) if packet.size)
        return VideoProbe(n_frames=n, **info)
    except UvssmError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise UvssmError(f"{path}: cannot read as video ({str(exc).splitlines()[0]})") from None


def frame_times(path: str | Path) -> np.ndarray:
    """Presentation time (seconds from the first frame) of every frame of the first video stream, in
    display order: the sorted packet timestamps (cheap: no decoding), or, where a container gives
    packets no timestamps, the decoded frames' own. Variable frame rates come out as they are."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts = [p.pts for p in container.demux(stream) if p.size]
            if any(p is None for p in pts):
                container.seek(0)
                stream.thread_type = "AUTO"
                rate = float(stream.average_rate or stream.base_rate or 25)
                pts = [f.pts for f in container.decode(stream)]
                if any(p is None for p in pts):
                    return np.arange(len(pts)) / rate
            times = np.sort(np.asarray(pts, dtype=np.float64)) * float(stream.time_base)
    except (av.error.FFmpegError, IndexError) as exc:
        raise UvssmError(f"{path}: cannot read frame timestamps ({str(exc).splitlines()[0]})") from None
    if not len(times):
        raise UvssmError(f"{path}: the video stream has no frames")
    return times - times[0]


def decoded_frame_times(path: str | Path) -> np.ndarray:
    """Presentation time (seconds from the first) of every frame the decoder outputs, by decoding
    with PyAV: for streams where some packets decode to nothing (a broken first GOP), so the packet
    timestamps outnumber the frames. Frames without a timestamp get NaN."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base = float(stream.time_base)
            pts = [np.nan if f.pts is None else f.pts * base for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise UvssmError(f"{path}: cannot decode for frame timestamps ({str(exc).splitlines()[0]})") from None
    times = np.asarray(pts, dtype=np.float64)
    return times - np.nanmin(times) if len(times) and np.isfinite(times).any() else times


def check_decodes(path: str | Path, on_frames: Callable[[int], None] | None = None, every: int = 25) -> int:
    """Decode every frame of the first video stream (PyAV, no conversion: cheap beside any model) and
    return how many there are; `on_frames(n)` is called every `every` frames. Raises UvssmError naming
    the file and the frame where decoding failed (a file cut off inside a frame), or, for a file that
    ends cleanly before the frames its index lists (cut off at a frame's end), how many it has."""
    path = Path(path)
    decoded = packets = listed = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            listed = stream.frames  # 0 where the container keeps no index (mkv, ts)
            for packet in container.demux(stream):
                packets += bool(packet.size)
                for _ in packet.decode():
                    decoded += 1
                    if on_frames is not None and decoded % every == 0:
                        on_frames(decoded)
    except (av.error.FFmpegError, IndexError) as exc:
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise UvssmError(f"{path}: decoding failed at frame {decoded} ({why}); the file may be truncated") from None
    if listed > packets:
        raise UvssmError(f"{path}: decoding stops at frame {packets}: the file holds {packets} of the {listed} frames "
                         f"its index lists (truncated?)")
    if not decoded:
        raise UvssmError(f"{path}: no frame decodes")
    return decoded
