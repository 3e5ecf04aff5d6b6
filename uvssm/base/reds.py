"""The REDS dataset: where its clips are on disk and how they are split.

Two source layouts are accepted:
- the release layout, `ROOT/train_sharp/000..239` and `ROOT/val_sharp/000..029` (each may also sit
  one level down, as the zips unpack: `ROOT/train/train_sharp`, `ROOT/val/val_sharp`). The val
  clips are merged as 240..269, the BasicSR convention. An already-merged `train_sharp` holding
  000..269 is accepted too.
- a plain folder of clip folders, `ROOT/<clip>/%08d.png`.

Splits follow BasicSR and VOTES: REDS4 (000, 011, 015, 020) is validation, REDSOfficial (240..269,
the original val_sharp) is test, everything else is train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uvssm.base.errors import UvssmError

REDS4 = ("000", "011", "015", "020")
REDS_OFFICIAL = tuple(f"{i:03d}" for i in range(240, 270))
VAL_OFFSET = 240  # val_sharp/NNN becomes clip NNN + 240


def reds_split(clip: str) -> str:
    """'val' for REDS4, 'test' for REDSOfficial (240..269), 'train' otherwise."""
    if clip in REDS4:
        return "val"
    if clip in REDS_OFFICIAL:
        return "test"
    return "train"


@dataclass(frozen=True)
class SourceClip:
    clip: str  # the clip id used in every output (val clips already renamed 240..269)
    folder: Path  # where its HQ frames are


SAMPLE_MARKER = "sample.json"  # written by uvssm.pipelines.sample into the built-in sample's root


@dataclass(frozen=True)
class RedsSource:
    root: Path
    layout: str  # "reds-release" or "clip-folders"
    clips: list[SourceClip]

    @property
    def dataset(self) -> str:
        """Name recorded in results: "sample", "REDS" (release layout) or the root folder's name."""
        if (self.root / SAMPLE_MARKER).exists():
            return "sample"
        return "REDS" if self.layout == "reds-release" else self.root.resolve().name


def _find(root: Path, name: str, parent: str) -> Path | None:
    for candidate in (root / name, root / parent / name):
        if candidate.is_dir():
            return candidate
    return None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def discover(root: str | Path) -> RedsSource:
    """Find the clips under `root` in either layout."""
    root = Path(root)
    if not root.exists():
        raise UvssmError(f"{root}: source folder does not exist")
    if not root.is_dir():
        raise UvssmError(f"{root}: source is not a folder")
    train, val = _find(root, "train_sharp", "train"), _find(root, "val_sharp", "val")
    if train or val:
        clips = [SourceClip(p.name, p) for p in _subfolders(train)] if train else []
        taken = {c.clip for c in clips}
        for p in _subfolders(val) if val else []:
            if not p.name.isdigit():
                raise UvssmError(f"{p}: val_sharp clip folder is not numbered like 000..029")
            clip = f"{int(p.name) + VAL_OFFSET:03d}"
            if clip in taken:
                raise UvssmError(f"{p}: would become clip {clip}, but {train / clip} exists too")
            clips.append(SourceClip(clip, p))
        layout = "reds-release"
    else:
        clips = [SourceClip(p.name, p) for p in _subfolders(root)]
        layout = "clip-folders"
    if not clips:
        raise UvssmError(f"{root}: no clip folders found (expected train_sharp/, val_sharp/ or <clip>/%08d.png)")
    return RedsSource(root, layout, sorted(clips, key=lambda c: c.clip))
