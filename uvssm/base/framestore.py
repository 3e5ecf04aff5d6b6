"""Decoded clips on disk: each PNG folder decoded once into one uint8 array file that training maps.

A random training patch needs 5 LQ crops and one HQ crop from 6 different frames; decoding the 6
full PNGs for it costs ~1 s of CPU per batch of 16 at REDS size, which is 30x a GPU step. A clip
decoded once into `(N, H, W, 3)` uint8 (a `.npy` file opened with `mmap_mode="r"`) turns each
crop into a read of a few hundred kilobytes from the page cache, shared by every loader worker.

The files live under a cache folder (default `$XDG_CACHE_HOME/uvssm/frames`, else
`~/.cache/uvssm/frames`), named by the PNG folder's absolute path, and are valid while the
folder's frames keep their names, sizes and modification times (a fingerprint stored beside the
array). A stale or missing array is rebuilt: written under a temporary name and renamed, so
concurrent builders and killed runs never leave a half-written array in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from uvssm.base import atomic
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, read_rgb


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "uvssm" / "frames"


def fingerprint(folder: Path, n_frames: int) -> str:
    """A hash of the frames' names, sizes and modification times (no pixels read)."""
    h = hashlib.sha256()
    for i in range(n_frames):
        path = folder / frame_name(i)
        try:
            st = path.stat()
        except OSError as exc:
            raise UvssmError(f"{path}: cannot read ({exc.strerror})") from None
        h.update(f"{path.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _paths(root: Path, folder: Path) -> tuple[Path, Path]:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    return root / f"{key}.npy", root / f"{key}.json"


def _is_current(root: Path, folder: Path, n_frames: int) -> bool:
    _, meta_path = _paths(root, folder)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return meta == {"folder": str(folder.resolve()), "n_frames": n_frames, "fingerprint": fingerprint(folder, n_frames)}


def bytes_to_decode(root: Path, folders: list[tuple[Path, int]]) -> tuple[int, int]:
    """(bytes, folders) that decoding the not-yet-cached folders of `folders` ((folder, n_frames)) will
    write under `root`, from each folder's first PNG header (no pixels read)."""
    from uvssm.base.frames import read_png_header

    need, count = 0, 0
    for folder, n in dict.fromkeys(folders):
        if _is_current(root, folder, n):
            continue
        header = read_png_header(folder / frame_name(0))
        need += n * header.height * header.width * 3 + 128
        count += 1
    return need, count


def check_free_space(root: Path, folders: list[tuple[Path, int]], spare: int = 1 << 30) -> None:
    """Refuse, before any decoding, a cache folder whose disk cannot hold the folders still to decode
    (REDS's training clips are ~80 GB decoded) with `spare` bytes left over."""
    need, count = bytes_to_decode(root, folders)
    if not count:
        return
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + spare > free:
        gb = 1 << 30
        raise UvssmError(f"{root}: the training frame cache needs {need / gb:.1f} GiB more for {count} clip folders, "
                         f"and its disk has {free / gb:.1f} GiB free (keeping {spare / gb:.0f} GiB spare); point "
                         "--frame-cache at a bigger disk, or --frame-cache off to decode PNGs per batch")


def cached_frames(folder: Path, n_frames: int, root: Path | None = None) -> np.ndarray:
    """Frames 0..n_frames-1 of `folder` as a read-only (N, H, W, 3) uint8 memory map, decoded
    into the cache on the first call (or when the frames changed)."""
    root = Path(root) if root is not None else default_root()
    array_path, meta_path = _paths(root, folder)
    want = {"folder": str(folder.resolve()), "n_frames": n_frames, "fingerprint": fingerprint(folder, n_frames)}
    if _is_current(root, folder, n_frames):
        try:
            return np.load(array_path, mmap_mode="r")
        except (OSError, ValueError):
            pass
    first = read_rgb(folder / frame_name(0))
    tmp = array_path.with_name(f".{array_path.stem}.{os.getpid()}.npy")
    try:
        root.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_frames, *first.shape))
        out[0] = first
        for i in range(1, n_frames):
            frame = read_rgb(folder / frame_name(i))
            if frame.shape != first.shape:
                raise UvssmError(f"{folder / frame_name(i)}: {frame.shape[1]}x{frame.shape[0]}, frame 0 is "
                                 f"{first.shape[1]}x{first.shape[0]}")
            out[i] = frame
        out.flush()
        del out
        os.replace(tmp, array_path)
    except OSError as exc:
        raise UvssmError(f"{tmp}: cannot write the frame cache ({exc.strerror}); "
                         "use --frame-cache off or another folder") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    atomic.write_text(meta_path, json.dumps(want, sort_keys=True))
    return np.load(array_path, mmap_mode="r")
