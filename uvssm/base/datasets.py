"""Readers for the dataset folders uvssm writes, used by training and benchmarking.

Two layouts:
- "reds": a `uvssm synth-reds` output. `ROOT/LQ_qp<Q>_x<S>/manifest.parquet` lists every frame
  with its split, LQ path and HQ path.
- "frames": the UVSSM release layout, which `uvssm build` writes too:
  `ROOT[/<platform>]/{HQ_frames,LQ_frames}/<clip>/%08d.png`. Splits come from
  `ROOT[/<platform>]/splits/<split>.txt` (one clip per line), or, for the WeChat platform without
  split files, from the catalogue (`data_manifest.csv`: the paper's 10 test clips).

A clip's frames are decoded on demand and kept in a small in-memory cache (a byte budget, least
recently used out first), so random training patches do not decode the same PNG again and again.
For training, `use_frame_store` decodes each clip once into a uint8 array file on disk
(`uvssm.base.framestore`) that every loader worker maps, so a patch reads only its crops.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from uvssm.base.catalog import load_catalog
from uvssm.base.errors import UvssmError
from uvssm.base.frames import ClipProblem, check_clip, frame_name, read_rgb
from uvssm.base.settings import LQ_FOLDER_GLOB, clean_lr_folder, lq_folder

LAYOUTS = ("reds", "frames")


class FrameCache:
    """Decoded frames keyed by path, at most `budget_mb` of them (least recently used dropped first)."""

    def __init__(self, budget_mb: int = 2048):
        self.budget = budget_mb * 2**20
        self.size = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            if key not in self._items and value.nbytes <= self.budget:
                self._items[key] = value
                self.size += value.nbytes
                while self.size > self.budget:
                    _, old = self._items.popitem(last=False)
                    self.size -= old.nbytes
        return value


@dataclass
class ClipPair:
    """One clip's aligned HQ/LQ frames: frame i of `lq_dir` is the degraded frame i of `hq_dir`."""

    name: str
    hq_dir: Path
    lq_dir: Path
    n_frames: int
    scale: int
    lq_size: tuple[int, int]  # (height, width)
    cache: FrameCache | None = None
    frame_store: Path | None = None  # with a folder: frames come from uvssm.base.framestore's arrays

    def _read(self, path: Path) -> np.ndarray:
        return self.cache.get(path, lambda: read_rgb(path)) if self.cache else read_rgb(path)

    def _stored(self, folder: Path) -> np.ndarray:
        """The clip folder's frames as one mapped array, opened once per process."""
        maps = self.__dict__.setdefault("_maps", {})
        if folder not in maps:
            from uvssm.base.framestore import cached_frames

            maps[folder] = cached_frames(folder, self.n_frames, self.frame_store)
        return maps[folder]

    def __getstate__(self) -> dict:  # a worker process maps the arrays itself rather than receive a copy
        return {k: v for k, v in self.__dict__.items() if k != "_maps"}

    def lq(self, i: int) -> np.ndarray:
        """LQ frame i, (h, w, 3) uint8 RGB."""
        if self.frame_store is not None:
            return self._stored(self.lq_dir)[i]
        return self._read(self.lq_dir / frame_name(i))

    def hq(self, i: int) -> np.ndarray:
        """HQ frame i, (s·h, s·w, 3) uint8 RGB."""
        if self.frame_store is not None:
            return self._stored(self.hq_dir)[i]
        return self._read(self.hq_dir / frame_name(i))

    def ref(self, i: int) -> np.ndarray:
        """HQ frame i down-scaled to LQ size with MATLAB-style bicubic (antialiased), float32 in [0, 1].

        The targets z of the degradation sensing module's stage-1 training (paper eq. 7).
        """
        def load():
            from uvssm.base.scalers import imresize

            hq = torch.tensor(self.hq(i)).permute(2, 0, 1).to(torch.float64) / 255.0
            return imresize(hq, 1 / self.scale).permute(1, 2, 0).to(torch.float32).contiguous().numpy()

        return self.cache.get(("ref", self.hq_dir, i), load) if self.cache else load()


@dataclass
class BicubicTarget(ClipPair):
    """A clip at scale 1 whose target `hq(i)` is its original (×`hq_scale`) down-scaled to LQ size with
    MATLAB bicubic and rounded to uint8."""

    hq_scale: int = 2

    def ref(self, i: int) -> np.ndarray:
        def load():
            from uvssm.base.scalers import imresize

            hq = torch.tensor(ClipPair.hq(self, i)).permute(2, 0, 1).to(torch.float64) / 255.0
            return imresize(hq, 1 / self.hq_scale).permute(1, 2, 0).to(torch.float32).contiguous().numpy()

        return self.cache.get(("ref", self.hq_dir, i), load) if self.cache else load()

    def hq(self, i: int) -> np.ndarray:
        return np.clip(np.round(self.ref(i) * 255.0), 0, 255).astype(np.uint8)


@dataclass
class PairedDataset:
    name: str  # "REDS", "UVSSM", or the folder name
    layout: str
    root: Path
    split: str
    scale: int
    qp: int | None
    platform: str | None
    clips: list[ClipPair]

    def describe(self) -> str:
        frames = sum(c.n_frames for c in self.clips)
        what = f"QP {self.qp} " if self.qp is not None else ""
        where = f"{self.platform} " if self.platform else ""
        return f"{self.name} {where}{what}x{self.scale} {self.split}: {len(self.clips)} clips, {frames} frames"


def use_frame_store(ds: PairedDataset, root: Path | None) -> None:
    """Serve the clips' frames from decoded arrays under `root` (None: the default cache folder),
    building any that are missing now, in this process, so loader workers only map them."""
    from uvssm.base.framestore import check_free_space, default_root

    root = Path(root) if root is not None else default_root()
    stored = [c for c in ds.clips if type(c) in (ClipPair, BicubicTarget)]
    check_free_space(root, [(folder, c.n_frames) for c in stored for folder in (c.lq_dir, c.hq_dir)])
    for clip in ds.clips:
        if type(clip) not in (ClipPair, BicubicTarget):
            continue  # frames made in memory (a restored first stage): nothing to decode
        clip.frame_store = root
        clip.lq(0)
        ClipPair.hq(clip, 0)


def platform_folder(root: Path, platform: str) -> str:
    """The sub-folder of `root` that platform `platform` names, in any case ("wechat" finds WeChat/, as `uvssm build`
    writes it); `platform` itself where no folder matches."""
    if (root / platform).is_dir():
        return platform
    matches = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.lower() == platform.lower())
    return matches[0] if matches else platform


def detect_layout(root: Path, platform: str | None = None) -> str:
    base = root / platform if platform else root
    if (base / "HQ_frames").is_dir() and (base / "LQ_frames").is_dir():
        return "frames"
    if (root / "HQ").exists() and any(root.glob(LQ_FOLDER_GLOB)):
        return "reds"
    raise UvssmError(f"{base}: not a dataset folder (expected HQ_frames/ and LQ_frames/, "
                     "or a `uvssm synth-reds` output with HQ/ and LQ_qp<Q>_x<S>/)")


def open_dataset(root: str | Path, *, split: str = "train", scale: int = 2, qp: int | None = None,
                 platform: str | None = None, layout: str | None = None, cache_mb: int = 2048,
                 check_frames: bool = True, target: str = "hq") -> PairedDataset:
    """Open the `split` clips ("train", "val", "test" or "all") of a dataset folder.

    `target` chooses what each clip's `hq(i)` is: the originals ("hq"), or a target at LQ size
    for restoration without upscaling (STDF), with scale 1: "clean_lr" (a synth-reds `--clean-lr`
    folder: the frames the encoder received) or "bicubic_lr" (the originals down-scaled with
    MATLAB bicubic, rounded to uint8: the only choice for UVSSM, which has no clean LR).

    Raises UvssmError naming the folder or file when the dataset is missing, a split is empty, or a
    clip's frames do not pair up (counts differ, or HQ is not exactly `scale` × LQ).
    """
    root = Path(root)
    if not root.is_dir():
        raise UvssmError(f"{root}: dataset folder not found")
    platform = platform_folder(root, platform) if platform else platform
    layout = layout or detect_layout(root, platform)
    cache = FrameCache(cache_mb) if cache_mb > 0 else None
    if layout == "reds":
        if qp is None:
            raise UvssmError(f"{root}: a synth-reds dataset needs a QP (e.g. --qp 28)")
        if platform:
            raise UvssmError(f"{root}: a synth-reds dataset has no platforms; --platform {platform} does not apply "
                             "(it names a folder of a UVSSM / `uvssm build` dataset)")
        ds = _open_reds(root, split, scale, qp, cache, check_frames)
    elif layout == "frames":
        if qp is not None:
            raise UvssmError(f"{root}: a frames dataset (HQ_frames/LQ_frames) has no QP settings; --qp {qp} does not "
                             "apply (it chooses an LQ set of a `uvssm synth-reds` output)")
        ds = _open_frames(root, split, scale, platform, cache, check_frames)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return _with_target(ds, target, cache)


def _with_target(ds: PairedDataset, target: str, cache) -> PairedDataset:
    if target == "hq":
        return ds
    if target == "clean_lr":
        clean = ds.root / clean_lr_folder(ds.scale)
        if ds.layout != "reds" or not clean.is_dir():
            where = clean if ds.layout == "reds" else ds.root
            raise UvssmError(f"{where}: no clean LR frames (run `uvssm synth-reds --clean-lr`; UVSSM has none: "
                             "use target bicubic_lr)")
        ds.clips = [_pair(c.name, clean / c.name, c.lq_dir, 1, cache, True) for c in ds.clips]
    elif target == "bicubic_lr":
        ds.clips = [BicubicTarget(c.name, c.hq_dir, c.lq_dir, c.n_frames, 1, c.lq_size, c.cache, hq_scale=c.scale)
                    for c in ds.clips]
    else:
        raise ValueError(f"target must be hq, clean_lr or bicubic_lr, got {target!r}")
    ds.scale = 1
    return ds


def _pair(name: str, hq_dir: Path, lq_dir: Path, scale: int, cache, check: bool, n_frames: int | None = None) -> ClipPair:
    if not check and n_frames is not None:
        from uvssm.base.frames import read_png_header

        header = read_png_header(lq_dir / frame_name(0))
        return ClipPair(name, hq_dir, lq_dir, n_frames, scale, (header.height, header.width), cache)
    try:
        hq, lq = check_clip(name, hq_dir), check_clip(name, lq_dir)
    except ClipProblem as exc:
        raise UvssmError(str(exc)) from None
    if hq.n_frames != lq.n_frames:
        raise UvssmError(f"clip {name}: {hq_dir} has {hq.n_frames} frames, {lq_dir} has {lq.n_frames}")
    if (hq.width, hq.height) != (scale * lq.width, scale * lq.height):
        raise UvssmError(f"clip {name}: HQ {hq.width}x{hq.height} is not x{scale} of LQ {lq.width}x{lq.height} "
                         f"({hq_dir / frame_name(0)})")
    return ClipPair(name, hq_dir, lq_dir, lq.n_frames, scale, (lq.height, lq.width), cache)


def _open_reds(root: Path, split: str, scale: int, qp: int, cache, check: bool) -> PairedDataset:
    unit = root / lq_folder(qp, scale)
    manifest_path = unit / "manifest.parquet"
    if not manifest_path.is_file():
        have = ", ".join(sorted(p.name for p in root.glob(LQ_FOLDER_GLOB))) or "none"
        raise UvssmError(f"{manifest_path}: not found (LQ sets here: {have}); "
                         f"run `uvssm synth-reds --qp {qp} --scale {scale}`")
    manifest = pd.read_parquet(manifest_path, columns=["clip", "frame", "split", "lq_path", "hq_path"])
    if split != "all":
        manifest = manifest[manifest["split"] == split]
    if manifest.empty:
        raise UvssmError(f"{manifest_path}: no clips in split {split!r}")
    clips = []
    for clip, frames in manifest.groupby("clip", sort=True):
        hq_dir = root / Path(frames["hq_path"].iloc[0]).parent
        lq_dir = root / Path(frames["lq_path"].iloc[0]).parent
        clips.append(_pair(clip, hq_dir, lq_dir, scale, cache, check, n_frames=len(frames)))
    return PairedDataset(_source_name(unit), "reds", root, split, scale, qp, None, clips)


def _source_name(unit: Path) -> str:
    """The source set a synth-reds folder was made from ("REDS", "sample", or a folder's name)."""
    import json

    try:
        name = json.loads((unit / "provenance.json").read_text())["source"]["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return "REDS"
    return "REDS" if name in (None, "reds") else str(name)


def _split_clips(base: Path, split: str, platform: str | None, available: list[str]) -> list[str]:
    if split == "all":
        return available
    split_file = base / "splits" / f"{split}.txt"
    if split_file.is_file():
        wanted = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise UvssmError(f"{split_file}: clip(s) {', '.join(missing[:5])} have no frames in {base / 'HQ_frames'}")
        return sorted(wanted)
    cat = load_catalog()
    known = cat[(cat["dataset"] == "UVSSM") & (cat["platform"].str.lower() == (platform or base.name).lower())]
    if known.empty:
        raise UvssmError(f"{split_file}: no split file, and {base.name} is not a catalogued platform; "
                         "write splits/<split>.txt or use --split all")
    return sorted(set(known.loc[known["split"] == split, "clip"]) & set(available))


def _open_frames(root: Path, split: str, scale: int, platform: str | None, cache, check: bool) -> PairedDataset:
    base = root / platform if platform else root
    hq_root, lq_root = base / "HQ_frames", base / "LQ_frames"
    available = sorted(p.name for p in lq_root.iterdir() if p.is_dir() and (hq_root / p.name).is_dir())
    names = _split_clips(base, split, platform, available)
    if not names:
        raise UvssmError(f"{base}: no clips in split {split!r}")
    clips = [_pair(name, hq_root / name, lq_root / name, scale, cache, check) for name in names]
    return PairedDataset("UVSSM", "frames", root, split, scale, None, platform or base.name, clips)
