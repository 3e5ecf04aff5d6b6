"""Finding original/shared pairs under a source folder: videos paired by file stem in
<platform>/{HQ,LQ}/, a pairs.csv, or the UVSSM release layout of frame folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uvssm.base.errors import UvssmError
from uvssm.base.probe import probe

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".flv", ".ts", ".m2ts", ".mts", ".3gp", ".mpg", ".mpeg",
              ".vob", ".ogv", ".wmv", ".asf", ".y4m", ".mxf", ".dv", ".ivf", ".h264", ".264", ".hevc", ".265")
NOT_VIDEO = (".txt", ".csv", ".json", ".md", ".srt", ".vtt", ".ass", ".nfo", ".jpg", ".jpeg", ".png", ".parquet")


@dataclass(frozen=True)
class Pair:
    platform: str
    clip: str
    hq: Path
    lq: Path
    problem: str | None = None  # why the pair cannot be built (e.g. its other video is missing)


def _is_video(path: Path) -> bool:
    """A file ffmpeg reads as video: a known extension, or anything else (not a known non-video) that
    probing opens with a video stream."""
    if path.name.startswith(".") or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTS:
        return True
    if suffix in NOT_VIDEO:
        return False
    try:
        probe(path)
    except UvssmError:
        return False
    return True


def _video_pairs(folder: Path) -> list[Pair]:
    """Pairs of <folder>/HQ/<id>.<ext> and <folder>/LQ/<id>.<ext> by file stem (any container)."""
    name = folder.name.lower()
    listed = {kind: sorted(p for p in (folder / kind).iterdir() if _is_video(p)) for kind in ("HQ", "LQ")}
    pairs = []
    for kind, other in (("HQ", "LQ"), ("LQ", "HQ")):
        stems: dict[str, list[Path]] = {}
        for p in listed[kind]:
            stems.setdefault(p.stem, []).append(p)
        for stem, paths in stems.items():
            if len(paths) > 1:
                pairs.append(Pair(name, stem, paths[0], paths[0], f"{folder / kind}: several videos named {stem}: "
                                  + ", ".join(p.name for p in paths)))
    by_stem = {kind: {p.stem: p for p in listed[kind]} for kind in ("HQ", "LQ")}
    bad = {p.clip for p in pairs}
    for stem in sorted((set(by_stem["HQ"]) | set(by_stem["LQ"])) - bad):
        hq, lq = by_stem["HQ"].get(stem), by_stem["LQ"].get(stem)
        if hq and lq:
            pairs.append(Pair(name, stem, hq, lq))
            continue
        have, missing = ("HQ", "LQ") if hq else ("LQ", "HQ")
        there = ", ".join(p.name for p in listed[missing][:6]) or "no videos"
        more = f" and {len(listed[missing]) - 6} more" if len(listed[missing]) > 6 else ""
        pairs.append(Pair(name, stem, hq or lq, lq or hq,
                          f"{(hq or lq)}: no {missing} video named {stem}.* in {folder / missing} (it has {there}{more})"))
    return sorted(pairs, key=lambda p: p.clip)


def discover_pairs(src: Path, platform: str | None = None) -> tuple[str, dict[str, list[Pair]]]:
    """Find the pairs under `src`: ("videos", {platform: [Pair]}) or ("frames", {...})."""
    if not src.is_dir():
        raise UvssmError(f"{src}: source folder does not exist")
    csv = src / "pairs.csv"
    found: dict[str, list[Pair]] = {}
    if csv.is_file():
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        missing = {"platform", "id", "hq", "lq"} - set(table.columns)
        if missing:
            raise UvssmError(f"{csv}: missing column(s) {', '.join(sorted(missing))}")
        for row in table.itertuples():
            found.setdefault(row.platform.lower(), []).append(Pair(row.platform.lower(), row.id, src / row.hq, src / row.lq))
        layout = "videos"
    else:
        layout = None
        for folder in sorted(p for p in src.iterdir() if p.is_dir()):
            if (folder / "HQ_frames").is_dir() and (folder / "LQ_frames").is_dir():
                layout = "frames"
                clips = sorted(p.name for p in (folder / "LQ_frames").iterdir() if p.is_dir())
                found[folder.name.lower()] = [Pair(folder.name.lower(), c, folder / "HQ_frames" / c,
                                                   folder / "LQ_frames" / c) for c in clips]
            elif (folder / "HQ").is_dir() and (folder / "LQ").is_dir():
                layout = layout or "videos"
                found[folder.name.lower()] = _video_pairs(folder)
        if layout is None:
            raise UvssmError(f"{src}: no pairs found (expected <platform>/HQ + <platform>/LQ videos, pairs.csv, "
                             "or <Platform>/HQ_frames + LQ_frames)")
    if platform:
        found = {k: v for k, v in found.items() if k == platform.lower()}
        if not found:
            raise UvssmError(f"{src}: no pairs for platform {platform!r}")
    return layout, found
