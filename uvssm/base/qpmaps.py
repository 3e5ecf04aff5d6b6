"""What an H.264 bitstream says about its own degradation: every macroblock's quantiser (QP), every
frame's picture type and coded size.

VOTES estimates a degradation feature map from pixels; a shared video's bitstream states its
degradation directly. libavcodec's H.264 decoder exports the quantiser it used for each 16×16
macroblock as `AV_FRAME_DATA_VIDEO_ENC_PARAMS` side data when asked (`export_side_data=venc_params`):
a frame QP plus one `delta_qp` per block. PyAV exposes that buffer; the per-block records
(src_x, src_y, w, h, delta_qp as int32) are read from it with numpy in one call per frame, so the
extraction adds little to the decode (`python -m benchmarks vmaf` measures it). The decoder runs
with slice threads only, never frame threads: with them, the exported tables of some B frames came back wrong (mostly
zeros) while the pixels were right.

Frames come in presentation order, as every uvssm decode (ffmpeg with passthrough timing) gives them,
so map i belongs to frame i of `uvssm.base.decode.rgb_frames`. Coded size is the size of the packet
whose timestamp the frame carries. Maps are in coded-frame macroblocks: ceil(W/16) × ceil(H/16)
of the coded (unrotated) frame, including any rows the encoder padded.

Storage (`save` / `load`): one compressed `.npz` per clip holding `qp` (N, rows, cols) uint8,
`pict_type` (N,) one-letter codes, `packet_bytes` (N,) int64, `keyframe` (N,) bool, `block` (the
macroblock side, 16), `crop` (x, y, w, h of the dataset's LQ frames in the coded frame, or -1s) and
`rotation` (the display rotation; the maps are of the coded, unrotated frame).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType

from uvssm.base import atomic
from uvssm.base.errors import UvssmError

MB = 16  # H.264 macroblock side
_PICT = {0: "?", 1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}
QP_MAP_SUFFIX = ".qp.npz"
BUILD_FOLDER = "LQ_qp"  # `build`: <Platform>/LQ_qp/<clip>.qp.npz beside <Platform>/LQ_frames/<clip>


@dataclass
class QPMaps:
    """Per-frame bitstream facts of one video, in presentation order."""

    qp: np.ndarray  # (N, rows, cols) uint8: each macroblock's quantiser
    pict_type: np.ndarray  # (N,) str: I, P, B
    packet_bytes: np.ndarray  # (N,) int64: coded size of the frame's packet
    keyframe: np.ndarray  # (N,) bool: the packet is a keyframe
    # Where a dataset's LQ frames lie in the coded frame: (x, y, w, h) in coded pixels (the whole
    # frame, or a `build` crop of black bars); None when they do not map onto the macroblock grid
    # (a rotated video).
    crop: tuple[int, int, int, int] | None = None
    rotation: int = 0

    def __len__(self) -> int:
        return len(self.qp)

    @property
    def mean_qp(self) -> np.ndarray:
        """(N,) float64: the mean over each frame's macroblocks."""
        return self.qp.reshape(len(self.qp), -1).mean(axis=1)

    def select(self, indices) -> "QPMaps":
        idx = np.asarray(list(indices), dtype=np.int64)
        return QPMaps(self.qp[idx], self.pict_type[idx], self.packet_bytes[idx], self.keyframe[idx], self.crop,
                      self.rotation)


def _enc_params(frame: av.VideoFrame):
    """The frame's VideoEncParams side data, or None. Read through a container of our own rather
    than `frame.side_data`, which caches its container on the frame: that reference cycle keeps every
    decoded frame (and its pixel buffers) alive until a full garbage collection, which made the
    decode ~20% slower (measured by `python -m benchmarks vmaf`)."""
    return SideDataContainer(frame).get(SideDataType.VIDEO_ENC_PARAMS)


def _block_map(params, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) QP map from one frame's VideoEncParams buffer (records of 5 int32:
    src_x, src_y, w, h, delta_qp). libavcodec's H.264 decoder lists the macroblocks in raster
    order; anything else is placed by its coordinates."""
    fields = params.block_size // 4
    records = np.frombuffer(memoryview(params), dtype=np.int32, count=params.nb_blocks * fields,
                            offset=params.blocks_offset).reshape(params.nb_blocks, fields)
    if len(records) == rows * cols and np.array_equal(records[:, :2], _raster(rows, cols)):
        return (records[:, 4] + params.qp).reshape(rows, cols)
    qp = np.full((rows, cols), params.qp, dtype=np.int32)
    qp[records[:, 1] // MB, records[:, 0] // MB] += records[:, 4]
    return qp


@functools.lru_cache(maxsize=8)
def _raster(rows: int, cols: int) -> np.ndarray:
    """(rows*cols, 2) top-left corners (x, y) of the macroblocks in raster order."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    return np.stack([xs.ravel() * MB, ys.ravel() * MB], axis=1).astype(np.int32)


def read_qp_maps(path: str | Path, frames: int | None = None) -> QPMaps:
    """Decode an H.264 video (the first video stream) and return its QP maps, picture types and packet
    sizes, for every frame or the first `frames`. Raises UvssmError (naming the file) for unreadable
    files and for codecs whose decoder exports no per-block quantisers."""
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise UvssmError(f"{path}: cannot open video ({exc})") from None
    with container:
        if not container.streams.video:
            raise UvssmError(f"{path}: no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec != "h264":
            raise UvssmError(f"{path}: QP maps need H.264, this stream is {codec}")
        stream.codec_context.options = {"export_side_data": "venc_params"}
        stream.codec_context.thread_type = "SLICE"  # PyAV's default; frame threads garble B frames' tables
        width, height = stream.codec_context.width, stream.codec_context.height
        rows, cols = -(-height // MB), -(-width // MB)
        sizes: dict[int, tuple[int, bool]] = {}
        maps, types, nbytes, keys = [], [], [], []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None:
                    sizes[packet.pts] = (packet.size, bool(packet.is_keyframe))
                for frame in packet.decode():
                    params = _enc_params(frame)
                    if params is None:
                        raise UvssmError(f"{path}: frame {len(maps)} carries no quantiser side data")
                    maps.append(np.clip(_block_map(params, rows, cols), 0, 255).astype(np.uint8))
                    types.append(_PICT.get(int(frame.pict_type), "?"))
                    size, key = sizes.get(frame.pts, (-1, False))
                    nbytes.append(size)
                    keys.append(key)
                    if frames is not None and len(maps) >= frames:
                        break
                if frames is not None and len(maps) >= frames:
                    break
        except av.error.FFmpegError as exc:
            raise UvssmError(f"{path}: decoding failed at frame {len(maps)} ({exc})") from None
    if not maps:
        raise UvssmError(f"{path}: no frames decoded")
    return QPMaps(np.stack(maps), np.array(types), np.array(nbytes, dtype=np.int64), np.array(keys, dtype=bool),
                  crop=(0, 0, width, height))


def maps_for_frames(lq_dir: str | Path) -> Path | None:
    """The QP-map file of a dataset's LQ frame folder, where uvssm wrote one: beside the folder for
    `synth-reds` (`LQ_qp28_x2/<clip>` → `LQ_qp28_x2/<clip>.qp.npz`), in `LQ_qp/` for `build`
    (`<Platform>/LQ_frames/<clip>` → `<Platform>/LQ_qp/<clip>.qp.npz`)."""
    lq_dir = Path(lq_dir)
    for candidate in (lq_dir.parent / f"{lq_dir.name}{QP_MAP_SUFFIX}",
                      lq_dir.parent.parent / BUILD_FOLDER / f"{lq_dir.name}{QP_MAP_SUFFIX}"):
        if candidate.is_file():
            return candidate
    return None


def save(maps: QPMaps, path: str | Path) -> Path:
    """Write `maps` as one compressed .npz (atomically)."""
    path = Path(path)
    with atomic.replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, qp=maps.qp, pict_type=maps.pict_type.astype("U2"),
                                packet_bytes=maps.packet_bytes, keyframe=maps.keyframe, block=np.int64(MB),
                                crop=np.array(maps.crop if maps.crop else [-1, -1, -1, -1], dtype=np.int64),
                                rotation=np.int64(maps.rotation))
    return path


def load(path: str | Path) -> QPMaps:
    try:
        with np.load(path) as data:
            crop = tuple(int(v) for v in data["crop"])
            return QPMaps(data["qp"], data["pict_type"], data["packet_bytes"], data["keyframe"],
                          None if crop[0] < 0 else crop, int(data["rotation"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UvssmError(f"{path}: not a QP-map file ({exc})") from None


def to_macroblocks(values: np.ndarray, maps: QPMaps) -> np.ndarray:
    """A per-pixel map of the dataset's LQ frame (H, W) as the mean over each macroblock of the coded
    frame (rows, cols), placed where the crop puts it; macroblocks it does not cover are NaN."""
    if maps.crop is None:
        raise ValueError("these LQ frames do not map onto the coded macroblock grid")
    rows, cols = maps.qp.shape[1:]
    x, y = maps.crop[:2]
    canvas = np.full((rows * MB, cols * MB), np.nan)
    h, w = values.shape
    canvas[y:y + h, x:x + w] = values[:rows * MB - y, :cols * MB - x]
    return block_means(canvas, MB, (rows, cols))


def block_means(values: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    """Mean of a (H, W) map over `block`×`block` cells, as a (rows, cols) map of `shape`: cells beyond
    the image (the encoder's padding) are NaN, partial cells average what they cover."""
    h, w = values.shape
    rows, cols = shape
    padded = np.full((rows * block, cols * block), np.nan)
    padded[:min(h, rows * block), :min(w, cols * block)] = values[:rows * block, :cols * block]
    cells = padded.reshape(rows, block, cols, block)
    with np.errstate(invalid="ignore"):
        count = np.isfinite(cells).sum(axis=(1, 3))
        total = np.nansum(cells, axis=(1, 3))
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
