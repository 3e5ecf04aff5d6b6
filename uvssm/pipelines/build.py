"""The `uvssm build` pipeline: original/shared video pairs → aligned HQ/LQ frame folders, a report
per pair, frame rows with pixel hashes, and splits.

Inputs (auto-detected under SRC):
- video pairs `SRC/<platform>/{HQ,LQ}/<id>.<ext>` (paired by file stem), or `SRC/pairs.csv` with
  columns platform, id, hq, lq (paths relative to SRC);
- frame folders in the UVSSM release layout `SRC/<Platform>/{HQ_frames,LQ_frames}/<clip>/`, which
  are checked and indexed, not re-extracted.

Per video pair: probe both (uvssm.base.probe), match frames in time and fit the HQ rectangle
(uvssm.align), then decode both with ffmpeg to RGB (display rotation applied, each file's own
colour matrix and range, BT.709/BT.601 by size when untagged) and write N aligned frames. The HQ
output is exactly `scale` × the LQ picture: a crop when the fitted scale is an integer within
0.1%, else the fitted rectangle resampled (Lanczos, antialiased) to that size, flagged
`hq_resampled`. `scale` is the nearest integer when the fitted one is within 5% of it, else the
integer below (so the HQ target is down-sampled, never invented). Pairs that cannot be aligned are left out with the reason; the rest go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from uvssm.base import atomic, qpmaps
from uvssm.align import AlignOptions, Geometry, PairAlignment, align_pair, exact_geometry, hq_frame
from uvssm.base.catalog import load_catalog
from uvssm.base.clipsel import select_clips
from uvssm.base.errors import UvssmError
from uvssm.base.decode import rgb_frames
from uvssm.base.ffmpeg import FFmpeg, FrameWriter, command
from uvssm.base.frames import FRAME_PATTERN, ClipProblem, check_clip, frame_name
from uvssm.base.manifests import ClipEntry, write_splits
from uvssm.base.pairs import Pair, discover_pairs
from uvssm.base.probe import VideoProbe
from uvssm.base.progress import BuildPair, BuildPlan, Progress, quiet
from uvssm.base.provenance import tool_versions
from uvssm.base.settings import platform_folder_name

PAPER_TEST = {"wechat"}  # platforms whose paper test split is in the catalogue (the UVSSM release's WeChat list)


@dataclass(frozen=True)
class BuildOptions:
    frames: int | None = 100  # aligned frames per clip (None: all)
    jobs: int = 1
    min_margin: float = 0.0  # (0: off) alignment confidence: the start offset's cost margin over the next best
    max_neighbour_better: float = 0.05  # self-check: share of frames a neighbouring HQ frame may fit better
    max_next_better: float = 1.0  # self-check: share of frames the next HQ frame may fit better at all (1: off)
    max_residual: float = 0.5  # self-check: 1 − correlation of the LQ picture with its HQ box (median)
    min_distinct: float = 0.0  # self-check: how much better chosen frames must fit than their neighbours (median)
    confirm_distinct: float = 0.20  # a start offset below min_margin is kept when the self-check fits this distinctly
    confirm_next_distinct: float = 0.05  # a next-better share above max_next_better is kept when the check fits this distinctly
    max_offset_s: float = 4.0  # the share may start this many seconds into the original
    allow_hdr: bool = False  # accept 10-bit / HDR sources
    folds: int = 5
    fold: int = 0  # which fold's split becomes splits/{train,val,test}.txt
    test_clips: int = 10
    test_ids: str | None = None  # the test split as named (ids and ranges, "240-249"); the rest split by the seed
    val_clips: int = 4
    seed: int = 0
    force: bool = False
    clips: str | None = None  # build only these clips ("001-020,031"); the manifest gathers every finished pair

    @property
    def align(self) -> AlignOptions:
        """What `align_pair` takes of these: the frames to check, the start's reach and the gates."""
        return AlignOptions(frames=self.frames, max_offset_s=self.max_offset_s, min_margin=self.min_margin,
                            confirm_distinct=self.confirm_distinct, max_neighbour_better=self.max_neighbour_better,
                            max_next_better=self.max_next_better, confirm_next_distinct=self.confirm_next_distinct,
                            min_distinct=self.min_distinct, max_residual=self.max_residual, allow_hdr=self.allow_hdr)


@dataclass
class PlatformReport:
    platform: str
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done
    left_out: dict[str, str] = field(default_factory=dict)  # clip -> reason
    splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    layout: str = "videos"


def _sha256(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()


@dataclass(frozen=True)
class PairReport:
    """What `build` records of one aligned pair: `.parts/<clip>.json`, then a row of pairs.parquet/csv."""

    pair: Pair
    alignment: PairAlignment
    geometry: Geometry
    n_frames: int  # frames written
    psnr_mean: float  # BT.601 luma PSNR of LQ against HQ box-averaged to LQ size: the codec's damage,
    psnr_median: float  # not the alignment's (a report column)
    psnr_min: float
    qp_maps: str | None  # the LQ's QP maps, relative to the platform folder (None: not H.264)
    mean_qp: float | None

    def to_dict(self) -> dict:
        """The flat record (probe fields prefixed hq_/lq_, the match's confidence, the cut)."""
        a, m, geo, pair = self.alignment, self.alignment.match, self.geometry, self.pair
        runner = a.verdict.runner_up if a.verdict else None
        return {
            "platform": pair.platform, "clip": pair.clip, "hq_path": str(pair.hq), "lq_path": str(pair.lq),
            **{f"hq_{k}": val for k, val in a.hq.to_dict().items() if k != "path"},
            **{f"lq_{k}": val for k, val in a.lq.to_dict().items() if k != "path"},
            "hq_decode_matrix": "/".join(a.hq.decode_matrix()), "lq_decode_matrix": "/".join(a.lq.decode_matrix()),
            "timing": a.timing, "offset_frames": m.offset_frames, "offset_seconds": m.offset_seconds,
            "fps_ratio": a.hq.avg_fps / a.lq.avg_fps if a.lq.avg_fps else float("nan"),
            # the alignment's confidence: how distinct the chosen match is from its alternatives
            "offset_margin": m.offset_margin, "offset_cost": m.offset_cost, "next_offset_cost": m.next_offset_cost,
            "content_agreement": m.agreement, "motion_contrast": m.motion_contrast,
            "frames_off_timing": m.off_timing, "duplicated_frames": m.repeated, "dropped_frames": m.dropped,
            "lq_frames_before_hq_start": m.lq_first, "lq_frames_past_hq_end": m.unmatched_tail,
            "align_rounds": a.rounds, "located_score": a.frame_map.score,
            "located_frame_box": [float(x) for x in a.frame_map.box],
            "check_frames": a.check.frames if a.check else 0, "check_moved": a.check.moved if a.check else 0,
            "check_neighbour_better": a.check.neighbour_better if a.check else float("nan"),
            "check_box_residual": a.check.residual if a.check else float("nan"),
            "check_distinct": a.check.distinct if a.check else float("nan"),
            "check_next_better": a.check.next_better if a.check else float("nan"),
            "check_previous_better": a.check.previous_better if a.check else float("nan"),
            "check_rounding": a.check.rounding if a.check else float("nan"),
            "check_timing_rule": a.check.timing_rule if a.check else "",
            # the chosen account against its rivals (uvssm.align.decision): the one it is least sure to beat
            "runner_up": runner.rival if runner else "", "runner_up_cost": runner.rival_cost if runner else float("nan"),
            "chosen_cost": runner.chosen_cost if runner else float("nan"),
            "runner_up_confidence": runner.confidence if runner else float("nan"),
            "runner_up_frames": runner.frames if runner else 0, "rival_won": a.rival_won,
            "geometry": "whole picture" if a.fit.hq_box == (0.0, 0.0, float(a.hq.display_size[0]),
                                                            float(a.hq.display_size[1])) else "fitted",
            "bars_ltrb": list(a.fit.bars), "hq_box": [float(x) for x in a.fit.hq_box],
            "fitted_scale_x": a.fit.scale[0], "fitted_scale_y": a.fit.scale[1], "scale": geo.scale,
            "hq_resampled": geo.hq_resampled, "lq_crop_xywh": list(geo.lq_crop),
            "hq_out_box": [float(x) for x in geo.hq_box],
            "align_psnr_mean": self.psnr_mean, "align_psnr_median": self.psnr_median,
            "align_psnr_min": self.psnr_min, "n_lq_frames": a.lq.n_frames, "n_frames": self.n_frames,
            "hq_size": list(geo.hq_size), "lq_size": list(geo.lq_size),
            "lq_qp_maps": self.qp_maps, "lq_mean_qp": self.mean_qp,
        }


_LUMA = np.array([65.481, 128.553, 24.966], np.float32) / 255.0


def _psnr_lq_size(hq: np.ndarray, lq: np.ndarray, scale: int) -> float:
    """PSNR of the LQ frame's BT.601 luma against the HQ frame's, box-averaged to LQ size (a report
    column: it measures the codec as much as the alignment)."""
    h, w = lq.shape[:2]
    hq_y = (hq @ _LUMA).reshape(h, scale, w, scale).mean(axis=(1, 3))
    mse = float(np.mean((hq_y - lq @ _LUMA) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def _png_writer(ffmpeg: FFmpeg, folder: Path, size: tuple[int, int]) -> FrameWriter:
    """An ffmpeg process that writes the RGB frames piped to it as folder/%08d.png (ffmpeg's PNG
    encoder, compression level 1: lossless, so the pixels and their hashes are the arrays'), in
    parallel with the decoding and matching in this process."""
    args = command("-", str(folder / FRAME_PATTERN), before={"f": "rawvideo", "pix_fmt": "rgb24", "s": f"{size[0]}x{size[1]}"},
                   after={"compression_level": 1, "start_number": 0, "f": "image2"})
    return FrameWriter(ffmpeg, args, f"{folder}: writing PNGs failed")


def _lq_qp_maps(pair: Pair, lq: VideoProbe, first: int, n: int, lq_crop) -> qpmaps.QPMaps | None:
    """The bitstream's QP maps of the LQ frames written (source frames first..first+n-1), or None when
    the LQ video is not H.264 (its decoder exports no per-block quantisers)."""
    if lq.codec != "h264":
        return None
    maps = qpmaps.read_qp_maps(pair.lq, frames=first + n)
    if len(maps) < first + n:
        raise UvssmError(f"{pair.lq}: {len(maps)} frames decoded for QP maps, {first + n} expected")
    maps = maps.select(range(first, first + n))
    # LQ frames are cut from the decoded frame at its coded size (rotation applied), so without a
    # rotation their pixels are the coded frame's
    return replace(maps, crop=tuple(int(c) for c in lq_crop) if lq.rotation == 0 else None, rotation=lq.rotation)


def build_pair(pair: Pair, out: Path, ffmpeg: FFmpeg, options: BuildOptions) -> pd.DataFrame:
    """Align and extract one pair into out/<platform-folder>; returns its frame rows (raises on failure).

    Extraction streams: both videos are decoded once, in order, side by side (the mapping never goes
    backwards), so one HQ and one LQ frame are held at a time whatever the clip's length."""
    if pair.problem:
        raise UvssmError(pair.problem)
    a = align_pair(pair, ffmpeg, options.align)
    m = a.match
    geo = exact_geometry(a.fit, a.pic, a.hq.display_size)
    n = len(m.mapping) if options.frames is None else min(options.frames, len(m.mapping))
    if options.frames is not None and len(m.mapping) < options.frames:
        raise UvssmError(f"{pair.lq}: only {len(m.mapping)} aligned frames, {options.frames} wanted")
    u, v, w, h = geo.lq_crop
    work = out / ".tmp" / pair.clip
    atomic.remove(work)
    (work / "HQ").mkdir(parents=True)
    (work / "LQ").mkdir(parents=True)
    rows = []
    hq_decoder = rgb_frames(ffmpeg, a.hq)
    hq_stream = enumerate(hq_decoder)
    hq_index, hq_rgb = -1, None
    lq_stream = rgb_frames(ffmpeg, a.lq)
    s = geo.scale
    writers = [_png_writer(ffmpeg, work / "HQ", geo.hq_size), _png_writer(ffmpeg, work / "LQ", geo.lq_size)]
    try:
        for source, lq_rgb in enumerate(lq_stream):
            j = source - m.lq_first
            if j < 0:
                continue
            if j >= n:
                break
            i = int(m.mapping[j])
            while hq_index < i:
                try:
                    hq_index, hq_rgb = next(hq_stream)
                except StopIteration:
                    raise UvssmError(f"{pair.hq}: ended at frame {hq_index}, frame {i} needed") from None
            lq = np.ascontiguousarray(lq_rgb[v:v + h, u:u + w])
            hq = np.ascontiguousarray(hq_frame(hq_rgb, geo))
            if not (writers[0].write(hq) and writers[1].write(lq)):
                break  # a writer stopped: its failure is raised on closing
            rows.append({"clip": pair.clip, "frame": j, "lq_source_frame": source, "hq_source_frame": i,
                         "psnr_y_lq_size": _psnr_lq_size(hq, lq, s), "match_cost": float(m.cost[j]),
                         "hq_sha256": _sha256(hq), "lq_sha256": _sha256(lq)})
    except BaseException:
        for writer in writers:
            writer.kill()
        raise
    finally:
        lq_stream.close()
        hq_decoder.close()
    for writer in writers:
        writer.close()
    if len(rows) < n:
        raise UvssmError(f"{pair.lq}: decoded {len(rows)} frames, {n} expected")
    maps = _lq_qp_maps(pair, a.lq, m.lq_first, n, geo.lq_crop)
    if maps is not None:
        for row, mean_qp, kind, size in zip(rows, maps.mean_qp, maps.pict_type, maps.packet_bytes):
            row.update(lq_mean_qp=float(mean_qp), lq_pict_type=str(kind), lq_packet_bytes=int(size))
        qpmaps.save(maps, out / qpmaps.BUILD_FOLDER / f"{pair.clip}{qpmaps.QP_MAP_SUFFIX}")
    for folder, name in (("HQ", "HQ_frames"), ("LQ", "LQ_frames")):
        target = out / name / pair.clip
        atomic.remove(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / folder, target)
    shutil.rmtree(work, ignore_errors=True)
    psnr = np.array([r["psnr_y_lq_size"] for r in rows])
    report = PairReport(pair, a, geo, n, psnr_mean=float(psnr.mean()), psnr_median=float(np.median(psnr)),
                        psnr_min=float(psnr.min()),
                        qp_maps=f"{qpmaps.BUILD_FOLDER}/{pair.clip}{qpmaps.QP_MAP_SUFFIX}" if maps is not None else None,
                        mean_qp=float(maps.mean_qp.mean()) if maps is not None else None)
    parts = out / ".parts"
    atomic.write_text(parts / f"{pair.clip}.json",
                      json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
    frames = pd.DataFrame(rows)
    atomic.write_parquet(parts / f"{pair.clip}.parquet", frames)
    return frames


def index_frame_pair(pair: Pair, out: Path) -> pd.DataFrame:
    """A release-layout clip: check both folders, hash frames, write the parts (no re-extraction)."""
    from uvssm.base.frames import read_rgb

    try:
        hq, lq = check_clip(pair.clip, pair.hq), check_clip(pair.clip, pair.lq)
    except ClipProblem as exc:
        raise UvssmError(str(exc)) from None
    if hq.n_frames != lq.n_frames:
        raise UvssmError(f"clip {pair.clip}: {pair.hq} has {hq.n_frames} frames, {pair.lq} has {lq.n_frames}")
    if hq.width % lq.width or hq.width // lq.width != hq.height / lq.height:
        raise UvssmError(f"clip {pair.clip}: HQ {hq.width}x{hq.height} is not an integer multiple of LQ {lq.width}x{lq.height}")
    for name, source in (("HQ_frames", pair.hq), ("LQ_frames", pair.lq)):
        link = out / name / pair.clip
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source.resolve(), target_is_directory=True)
    rows = [{"clip": pair.clip, "frame": k, "lq_source_frame": k, "hq_source_frame": k, "psnr_y_lq_size": np.nan,
             "hq_sha256": _sha256(read_rgb(pair.hq / frame_name(k))), "lq_sha256": _sha256(read_rgb(pair.lq / frame_name(k)))}
            for k in range(hq.n_frames)]
    report = {"platform": pair.platform, "clip": pair.clip, "hq_path": str(pair.hq), "lq_path": str(pair.lq),
              "scale": hq.width // lq.width, "n_frames": hq.n_frames, "hq_size": [hq.width, hq.height],
              "lq_size": [lq.width, lq.height], "indexed_only": True}
    atomic.write_text(out / ".parts" / f"{pair.clip}.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    frames = pd.DataFrame(rows)
    atomic.write_parquet(out / ".parts" / f"{pair.clip}.parquet", frames)
    return frames


def assign_splits(clips: list[str], platform: str, options: BuildOptions) -> tuple[dict[str, str], list[dict[str, str]], str]:
    """Split clips: the test clips named (`options.test_ids`), else the paper's WeChat test split when
    its ids are present, else seeded K-fold; beside a named or the paper's test split, a seeded
    `val_clips` of the rest are validation and the others training.

    Returns (the chosen split per clip, the split per clip of every fold, where the split came from).
    """
    clips = sorted(clips)
    rng = np.random.default_rng(options.seed)

    def around(test: set[str]) -> dict[str, str]:  # a given test split, seeded val from the rest, the others train
        val = set(rng.permutation([c for c in clips if c not in test])[:options.val_clips].tolist())
        return {c: "test" if c in test else "val" if c in val else "train" for c in clips}

    if options.test_ids:
        split = around(set(select_clips(clips, options.test_ids, f"the built {platform} pairs", "--test-clips")))
        return split, [split], f"test clips as named ({options.test_ids}), seeded val (seed {options.seed})"
    if platform in PAPER_TEST:
        cat = load_catalog()
        paper = set(cat[(cat["dataset"] == "UVSSM") & (cat["platform"] == platform) & (cat["split"] == "test")]["clip"])
        if paper and paper <= set(clips):
            split = around(paper)
            return split, [split], "paper WeChat test split (VOTES meta_info_UVSSMWeChat_test2.txt), seeded val"
    order = rng.permutation(clips).tolist()
    n_test = min(options.test_clips, max(1, len(clips) // max(options.folds, 1)))
    folds = []
    for k in range(options.folds):
        test = set(order[(k * n_test) % len(order):][:n_test])
        rest = [c for c in order if c not in test]
        val = set(rest[:min(options.val_clips, max(0, len(rest) - 1))])
        folds.append({c: "test" if c in test else "val" if c in val else "train" for c in clips})
    return folds[options.fold % len(folds)], folds, f"seeded {options.folds}-fold (seed {options.seed}, fold {options.fold})"


def build(src: str | Path, out: str | Path, ffmpeg: FFmpeg, options: BuildOptions = BuildOptions(),
          platform: str | None = None, progress: Progress | None = None) -> list[PlatformReport]:
    """Build every platform found under `src` into `out/<Platform>/...`.

    Progress events (`uvssm.base.progress`): BuildPlan per platform, then BuildPair per pair (built, or left
    out with the reason).
    """
    src, out = Path(src), Path(out)
    progress = progress or quiet
    layout, found = discover_pairs(src, platform)
    everywhere = sorted({p.clip for pairs in found.values() for p in pairs})
    chosen = set(select_clips(everywhere, options.clips, str(src)))
    select_clips(everywhere, options.test_ids, str(src), "--test-clips")  # a typo fails now, not after the work
    found = {name: [p for p in pairs if p.clip in chosen] for name, pairs in found.items()}
    reports = []
    for name, pairs in found.items():
        if not pairs:
            continue
        folder = out / platform_folder_name(name)
        report = PlatformReport(name, layout=layout)
        todo = [p for p in pairs if options.force or not (folder / ".parts" / f"{p.clip}.parquet").exists()]
        report.skipped = sorted(p.clip for p in pairs if p not in todo)
        progress(BuildPlan(name, len(pairs), len(todo)))

        def job(pair: Pair):
            if layout == "frames":
                return index_frame_pair(pair, folder)
            return build_pair(pair, folder, ffmpeg, options)

        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            futures = {pool.submit(job, p): p for p in todo}
            for future in as_completed(futures):
                pair = futures[future]
                try:
                    future.result()
                    report.built.append(pair.clip)
                    progress(BuildPair(name, pair.clip, "built"))
                except UvssmError as exc:
                    report.left_out[pair.clip] = str(exc)
                    progress(BuildPair(name, pair.clip, "left out", str(exc)))
        if not options.clips:  # a job of an array (--clips) leaves other jobs' work in progress alone
            shutil.rmtree(folder / ".tmp", ignore_errors=True)
        _finalise(folder, name, report, options, ffmpeg, layout)
        reports.append(report)
    return reports


def _finalise(folder: Path, platform: str, report: PlatformReport, options: BuildOptions, ffmpeg: FFmpeg,
              layout: str) -> None:
    parts = folder / ".parts"
    done = sorted(p.stem for p in parts.glob("*.parquet")) if parts.is_dir() else []
    done = [c for c in done if c not in report.left_out]
    if not done:
        return
    pairs = pd.DataFrame([json.loads((parts / f"{c}.json").read_text()) for c in done])
    frames = pd.concat([pd.read_parquet(parts / f"{c}.parquet") for c in done], ignore_index=True)
    split, folds, source = assign_splits(done, platform, options)
    pairs["split"] = pairs["clip"].map(split)
    frames["split"] = frames["clip"].map(split)
    atomic.write_parquet(folder / "pairs.parquet", pairs)
    atomic.write_text(folder / "pairs.csv", pairs.to_csv(index=False))
    atomic.write_parquet(folder / "frames.parquet", frames)
    entries = [ClipEntry(r.clip, int(r.n_frames), int(r.hq_size[1]), int(r.hq_size[0])) for r in pairs.itertuples()]
    report.splits = write_splits(folder, entries, split.get)
    for k, fold in enumerate(folds if len(folds) > 1 else []):
        for name in ("train", "val", "test"):
            members = sorted(c for c, s in fold.items() if s == name)
            atomic.write_text(folder / "splits" / "folds" / f"fold{k}_{name}.txt", "".join(c + "\n" for c in members))
    cat = load_catalog()
    known = set(cat[(cat["dataset"] == "UVSSM") & (cat["platform"] == platform)]["clip"])
    if known:
        unknown = sorted(set(done) - known)
        if unknown:
            report.notes.append(f"{len(unknown)} clip(s) not in the {platform} catalogue: {', '.join(unknown[:8])}")
    provenance = {"tool": "uvssm build", "layout": layout, "platform": platform, "options": {k: v for k, v in asdict(options).items() if k != "clips"},
                  "split_source": source, "tools": tool_versions(ffmpeg), "clips": done}
    atomic.write_text(folder / "provenance.json", json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
