"""What the encoder did, read back from an .mp4 with PyAV: frame types, sizes, bitrate, x264 options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from uvssm.errors import UvssmError
from uvssm.ffmpeg import x264_signature

# AVPictureType values as PyAV returns them.
_PICT_TYPES = {0: "?", 1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}


@dataclass(frozen=True)
class EncodedFrame:
    index: int  # display order, 0-based
    pict_type: str  # "I", "P" or "B"
    packet_bytes: int  # size of the coded frame
    keyframe: bool


@dataclass(frozen=True)
class StreamInfo:
    frames: list[EncodedFrame]
    bitrate_kbps: float  # coded bytes * 8 / duration (frames / fps)
    x264_version: str
    x264_options: str


def read_stream_info(mp4: Path, fps: float) -> StreamInfo:
    """Demux and decode `mp4`; map every packet to its frame in display order."""
    packets: dict[int, tuple[int, bool]] = {}
    types: dict[int, str] = {}
    try:
        with av.open(str(mp4)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size:
                    packets[packet.pts] = (packet.size, bool(packet.is_keyframe))
                for frame in packet.decode():
                    types[frame.pts] = _PICT_TYPES.get(int(frame.pict_type), "?")
    except (av.error.FFmpegError, IndexError) as exc:
        raise UvssmError(f"{mp4}: cannot read the encoded stream ({exc})") from None
    frames = [EncodedFrame(i, types[pts], *packets[pts]) for i, pts in enumerate(sorted(types))]
    total = sum(f.packet_bytes for f in frames)
    bitrate = total * 8 / (len(frames) / fps) / 1000 if frames else 0.0
    with open(mp4, "rb") as f:
        version, options = x264_signature(f.read(1 << 20))
    return StreamInfo(frames, bitrate, version, options)
