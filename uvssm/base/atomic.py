"""Atomic writes: write to a temporary name beside the target, then rename over it.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from uvssm.base.errors import UvssmError


def _tmp_path(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no other thread sees it change)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(target: Path) -> int:
    """The mode a plain `open(target, "w")` would give: the old file's mode when it is replaced, else
    0666 less the umask (mkstemp's temporary files are 0600, which colleagues could not read)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def _write_failed(target: Path, exc: OSError) -> UvssmError:
    return UvssmError(f"{target}: cannot write ({exc.strerror or exc})")


@contextlib.contextmanager
def replacing(target: Path):
    """Yield a temporary path beside `target`; rename it over `target` if the block succeeds."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_path(target)
        yield tmp
        os.chmod(tmp, _file_mode(target))
        os.replace(tmp, target)
    except OSError as exc:
        raise _write_failed(target, exc) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    target = Path(target)
    with replacing(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return target


def write_text(target: str | os.PathLike, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_parquet(target: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write `df` as parquet (pyarrow, zstd, no index). Same frame in, same bytes out."""
    target = Path(target)
    with replacing(target) as tmp:
        df.to_parquet(tmp, engine="pyarrow", compression="zstd", index=False)
    return target


def remove(path: str | os.PathLike) -> None:
    """Remove a file, a symlink or a folder tree if it exists."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
