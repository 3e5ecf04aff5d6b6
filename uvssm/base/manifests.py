"""Split files and meta_info files in the formats the field's toolboxes read.

Formats (BasicSR's `REDSDataset` in `basicsr/data/reds_dataset.py` and its `meta_info` files, mmagic's
per-frame annotation files, the VOTES repository's clip lists):
- BasicSR: one line per clip, `000 100 (720,1280,3)` (REDSDataset splits on single spaces, 3 fields).
- mmagic: one line per frame, `000/00000000.png (720, 1280, 3)`.
- VOTES: one line per clip, `000 100` (its loader unpacks exactly two fields, so no blank lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uvssm.base import atomic
from uvssm.base.frames import frame_name

FORMATS = ("basicsr", "mmagic", "votes")


@dataclass(frozen=True)
class ClipEntry:
    clip: str
    n_frames: int
    height: int
    width: int


def meta_info_lines(entries: list[ClipEntry], fmt: str) -> list[str]:
    if fmt == "basicsr":
        return [f"{e.clip} {e.n_frames} ({e.height},{e.width},3)" for e in entries]
    if fmt == "mmagic":
        return [f"{e.clip}/{frame_name(i)} ({e.height}, {e.width}, 3)" for e in entries for i in range(e.n_frames)]
    if fmt == "votes":
        return [f"{e.clip} {e.n_frames}" for e in entries]
    raise ValueError(f"unknown meta_info format {fmt!r}; expected one of {FORMATS}")


def _lines_text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def write_splits(out: Path, entries: list[ClipEntry], split_of) -> dict[str, int]:
    """Write `out/splits/<split>.txt` (clip ids) and `out/meta_info/<fmt>_<split>.txt`.

    `split_of(clip)` names each clip's split. Returns the clip count per split.
    """
    groups: dict[str, list[ClipEntry]] = {"all": sorted(entries, key=lambda e: e.clip)}
    for e in groups["all"]:
        groups.setdefault(split_of(e.clip), []).append(e)
    counts = {}
    for split, members in groups.items():
        counts[split] = len(members)
        if split != "all":
            atomic.write_text(out / "splits" / f"{split}.txt", _lines_text([e.clip for e in members]))
        for fmt in FORMATS:
            atomic.write_text(out / "meta_info" / f"{fmt}_{split}.txt", _lines_text(meta_info_lines(members, fmt)))
    return counts
