"""PNG frame folders: `<clip>/%08d.png`, 0-based, RGB uint8.

Checking a folder reads only each PNG's header (IHDR), so a 27,000-frame REDS tree is checked in
seconds; pixels are decoded only where they are needed.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from uvssm.base.errors import UvssmError

if TYPE_CHECKING:
    import torch

FRAME_PATTERN = "%08d.png"
_FRAME_NAME = re.compile(r"^(\d{8})\.png$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR colour types -> channels; bit depth is checked separately.
_COLOR_TYPES = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}


def frame_name(index: int) -> str:
    return f"{index:08d}.png"


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 or float → (..., 3, H, W) float32 in [0, 1]."""
    import torch  # here, not at the top: checking frame folders needs no torch

    a = np.ascontiguousarray(frames)
    if not a.flags.writeable:  # decoded video buffers and cached frames are read-only; torch wants writable
        a = a.copy()
    t = torch.from_numpy(a).movedim(-1, -3)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color: str


def read_png_header(path: Path) -> PngHeader:
    """Parse the signature and IHDR chunk. Raise UvssmError if the file is not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError as exc:
        raise UvssmError(f"{path}: unreadable PNG ({exc.strerror})") from None
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise UvssmError(f"{path}: unreadable PNG (not a PNG file or truncated header)")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    return PngHeader(width, height, depth, _COLOR_TYPES.get(color, f"type{color}"))


@dataclass(frozen=True)
class ClipFrames:
    """A checked clip folder: frames 0..n-1 exist and share one size."""

    name: str
    folder: Path
    n_frames: int
    width: int
    height: int


class ClipProblem(UvssmError):
    """A clip that fails its checks; the message names the clip and the file."""


def check_clip(name: str, folder: Path) -> ClipFrames:
    """Check that `folder` holds 00000000.png..N-1, all readable PNG headers of one size."""
    if not folder.is_dir():
        raise ClipProblem(f"clip {name}: {folder} is not a folder")
    indices = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _FRAME_NAME.match(p.name)))
    if not indices:
        raise ClipProblem(f"clip {name}: {folder} holds no %08d.png frames")
    missing = sorted(set(range(indices[-1] + 1)) - set(indices))
    if missing:
        raise ClipProblem(f"clip {name}: frames are not numbered from 00000000 without gaps: "
                          f"{folder / frame_name(missing[0])} is missing")
    first = None
    for index in indices:
        path = folder / frame_name(index)
        try:
            header = read_png_header(path)
        except UvssmError as exc:
            raise ClipProblem(f"clip {name}: {exc}") from None
        if header.color not in ("rgb", "rgba", "palette", "gray") or header.bit_depth != 8:
            raise ClipProblem(f"clip {name}: {path}: {header.bit_depth}-bit {header.color} PNG, expected 8-bit RGB")
        if first is None:
            first = header
        elif (header.width, header.height) != (first.width, first.height):
            raise ClipProblem(f"clip {name}: {path} is {header.width}x{header.height}, "
                              f"frame 00000000.png is {first.width}x{first.height} (mixed sizes)")
    return ClipFrames(name, folder, len(indices), first.width, first.height)


def read_rgb(path: Path) -> np.ndarray:
    """Decode one PNG to an (H, W, 3) uint8 RGB array."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise UvssmError(f"{path}: unreadable PNG ({exc})") from None


def find_unreadable(folder: Path, n_frames: int) -> Path | None:
    """Decode every frame fully; return the first that fails (used to name a corrupt file)."""
    from PIL import Image

    for index in range(n_frames):
        path = folder / frame_name(index)
        try:
            with Image.open(path) as im:
                im.load()
        except (OSError, ValueError, SyntaxError):
            return path
    return None


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as PNG, atomically (temp file + rename)."""
    from PIL import Image

    from uvssm.base.atomic import replacing

    with replacing(Path(path)) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", compress_level=1)
