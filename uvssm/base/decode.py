"""Decoding a video to RGB frames the way every uvssm command does: display rotation applied, the
file's own colour matrix and range (or the size default when untagged), bit-exact scaling flags."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from uvssm.base.ffmpeg import FFmpeg, command, raw_frames
from uvssm.base.probe import VideoProbe

SWS_MATRIX = {"bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "bt2020nc": "bt2020", "fcc": "fcc",
               "smpte240m": "smpte240m"}


def rgb_filter(info: VideoProbe) -> str:
    """The ffmpeg filter that turns this video's frames into full-range RGB24."""
    matrix, _ = info.decode_matrix()
    in_range = "pc" if info.color_range == "pc" else "tv"
    return (f"scale=in_color_matrix={SWS_MATRIX.get(matrix, 'bt709')}:in_range={in_range}:out_range=pc:"
            "flags=accurate_rnd+full_chroma_int+bitexact,format=rgb24")


def rgb_frames(ffmpeg: FFmpeg, info: VideoProbe) -> Iterator[np.ndarray]:
    """Every frame of the video in order, (H, W, 3) uint8 RGB at the display size, one at a time.
    Closing the generator early stops ffmpeg."""
    width, height = info.display_size
    args = command(info.path, "-", after={"map": "0:v:0", "vf": rgb_filter(info), "fps_mode": "passthrough",
                                          "f": "rawvideo", "pix_fmt": "rgb24"})
    for data in raw_frames(ffmpeg, args,
                           width * height * 3, context=f"{info.path}: decoding failed"):
        yield np.frombuffer(data, np.uint8).reshape(height, width, 3)


def gray_frames(ffmpeg: FFmpeg, info: VideoProbe, size: tuple[int, int] | None = None,
                indices: set[int] | None = None,
                crop: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Iterator[tuple[int, np.ndarray]]:
    """(index, luma) of every frame (or of `indices`, stopping after the last), (h, w) uint8 at the
    display size or resized to `size` (w, h) with an area filter, after cutting `crop` (left, top,
    right, bottom display pixels) away. Display rotation and flips are
    applied by ffmpeg exactly as for `rgb_frames`, and timing is passthrough (one output per
    decoded frame), so indices agree with `rgb_frames` and with the stream's timestamps."""
    l, t, r, b = crop
    dw, dh = info.display_size
    width, height = size or (dw - l - r, dh - t - b)
    scale = f"crop={dw - l - r}:{dh - t - b}:{l}:{t}," if any(crop) else ""
    scale += f"scale={width}:{height}:flags=area," if size else ""
    last = max(indices) if indices else None
    args = command(info.path, "-", after={"map": "0:v:0", "vf": f"{scale}format=gray", "fps_mode": "passthrough",
                                          "f": "rawvideo", "pix_fmt": "gray"})
    stream = raw_frames(ffmpeg, args,
                        width * height, context=f"{info.path}: decoding failed")
    try:
        for i, data in enumerate(stream):
            if indices is None or i in indices:
                yield i, np.frombuffer(data, np.uint8).reshape(height, width)
            if last is not None and i >= last:
                break
    finally:
        stream.close()
