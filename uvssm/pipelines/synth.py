"""`uvssm synth-reds`: compressed low-resolution REDS (or any PNG clips), resumable and exact.

Output layout under OUT:

    HQ/<clip>/                      link to (or copy of) the source clip folder
    LQ_qp28_x2/<clip>/%08d.png      decoded frames of the encoded clip
    LQ_qp28_x2/<clip>.mp4           the encoded clip, kept beside its frames
    LQ_qp28_x2/<clip>.qp.npz        every frame's macroblock QP map, type and size (uvssm.base.qpmaps)
    LQ_qp28_x2/manifest.parquet     one row per frame (type, size, pixel hash, paths, split)
    LQ_qp28_x2/clips.parquet        one row per clip (bitrate, sizes, x264 version)
    LQ_qp28_x2/provenance.json      tool versions, recipe, exact commands
    LR_clean_x2/...                 with --clean-lr: the frames the encoder received, as RGB
    splits/{train,val,test}.txt     REDS4 = val, REDSOfficial (240..269) = test, the rest train
    meta_info/{basicsr,mmagic,votes}_{all,train,val,test}.txt

Resuming: a clip of one setting is done when `<setting>/.parts/<clip>.parquet` exists. That file is
written (atomically) after the frames and the .mp4 have been renamed into place, so a killed run
leaves either a finished clip or one that the next run redoes from scratch. Work happens in
`<setting>/.tmp/<clip>/`, which a new run clears.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from degrade.recipe import CleanTarget, Downscale, LqTarget, X264Recipe, synth_command
from degrade.reds import CleanClip, EncodedClip, synthesise_clip
from uvssm.base import atomic, qpmaps
from uvssm.base.catalog import check_reds
from uvssm.base.clipsel import select_clips
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import FFmpeg
from uvssm.base.frames import FRAME_PATTERN, ClipFrames, ClipProblem, check_clip, frame_name
from uvssm.base.manifests import ClipEntry, write_splits
from uvssm.base.reds import RedsSource, discover, reds_split
from uvssm.base.progress import Progress, SynthClip, SynthFrames, SynthPlan, quiet
from uvssm.base.provenance import machine, tool_versions
from uvssm.base.settings import clean_lr_folder, lq_folder



@dataclass(frozen=True)
class SynthOptions:
    qps: tuple[int, ...] = (28,)
    scales: tuple[int, ...] = (2,)
    jobs: int = os.cpu_count() or 1  # clips encoded side by side
    force: bool = False  # redo finished clips
    clean_lr: bool = False  # also write the encoder's input frames as RGB
    hq_mode: str = "link"  # "link" (symlink, falls back to copy) or "copy"
    clips: str | None = None  # encode only these clips ("240-249,255"); the manifest gathers every finished clip


@dataclass
class UnitReport:
    """What happened to one output folder (a QP/scale setting, or clean LR at a scale)."""

    name: str  # folder name, e.g. "LQ_qp28_x2"
    kind: str  # "lq" (a QP x scale setting) or "clean_lr"
    recipe: Downscale  # its settings: an X264Recipe, or for clean_lr the Downscale alone
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done
    failed: dict[str, str] = field(default_factory=dict)  # clip -> one-line reason
    manifest: Path | None = None


@dataclass
class SynthReport:
    out: Path
    layout: str
    clips: list[str]  # clips that passed the checks
    problems: dict[str, str]  # clip -> reason, for clips that failed the checks
    notes: list[str]  # catalogue findings
    units: list[UnitReport]
    split_counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems and not any(u.failed for u in self.units)


def recipes_for(options: SynthOptions) -> list[X264Recipe]:
    return [X264Recipe(qp=q, scale=s) for s in options.scales for q in options.qps]


def _unit_done(unit_dir: Path, clip: str) -> bool:
    return (unit_dir / ".parts" / f"{clip}.parquet").exists() and (unit_dir / clip).is_dir()


def _link_hq(out: Path, clip: ClipFrames, mode: str) -> None:
    """OUT/HQ/<clip>: a symlink to the source folder, or a copy made under a temporary name."""
    target = out / "HQ" / clip.name
    source = clip.folder.resolve()
    if target.is_symlink() and Path(os.readlink(target)) == source:
        return
    if target.is_dir() and not target.is_symlink() and mode == "copy":
        return  # a finished copy (copies are renamed into place only when complete)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{clip.name}"
    atomic.remove(tmp)
    if mode == "link":
        try:
            os.symlink(source, tmp, target_is_directory=True)
        except OSError:
            mode = "copy"
    if mode == "copy":
        shutil.copytree(source, tmp)
    atomic.remove(target)
    os.replace(tmp, target)


def _check_all(source: RedsSource) -> tuple[dict[str, ClipFrames], dict[str, str]]:
    good, problems = {}, {}
    for sc in source.clips:
        try:
            good[sc.clip] = check_clip(sc.clip, sc.folder)
        except ClipProblem as exc:
            problems[sc.clip] = str(exc)
    return good, problems


def _scale_problem(clip: ClipFrames, scale: int) -> str | None:
    if clip.width % scale or clip.height % scale:
        return f"clip {clip.name}: {clip.width}x{clip.height} is not divisible by scale {scale}"
    w, h = clip.width // scale, clip.height // scale
    if w % 2 or h % 2:
        return f"clip {clip.name}: LQ size {w}x{h} is odd; yuv420p needs even dimensions"
    return None


def _commit_lq(unit_dir: Path, clip: ClipFrames, recipe: X264Recipe, enc: EncodedClip) -> None:
    final, mp4 = unit_dir / clip.name, unit_dir / f"{clip.name}.mp4"
    atomic.remove(final)
    atomic.remove(mp4)
    qpmaps.save(enc.qp_maps, unit_dir / f"{clip.name}{qpmaps.QP_MAP_SUFFIX}")
    os.replace(enc.mp4, mp4)
    os.replace(enc.frames_dir, final)
    w, h = recipe.lq_size(clip.width, clip.height)
    rows = enc.rows.assign(
        clip=clip.name,
        lq_path=[f"{unit_dir.name}/{clip.name}/{frame_name(i)}" for i in enc.rows["frame"]],
        hq_path=[f"HQ/{clip.name}/{frame_name(i)}" for i in enc.rows["frame"]],
    )
    info = {"clip": clip.name, "n_frames": clip.n_frames, "hq_width": clip.width, "hq_height": clip.height,
            "lq_width": w, "lq_height": h, "bitrate_kbps": round(enc.bitrate_kbps, 3),
            "mp4_bytes": enc.mp4_bytes, "mp4_path": f"{unit_dir.name}/{clip.name}.mp4",
            "qp_map_path": f"{unit_dir.name}/{clip.name}{qpmaps.QP_MAP_SUFFIX}",
            "mean_qp": round(float(enc.qp_maps.mean_qp.mean()), 4),
            "x264_version": enc.x264_version, "x264_options": enc.x264_options}
    atomic.write_text(unit_dir / ".parts" / f"{clip.name}.json", json.dumps(info, sort_keys=True))
    atomic.write_parquet(unit_dir / ".parts" / f"{clip.name}.parquet", rows)  # the completion marker


def _commit_clean(unit_dir: Path, clip: ClipFrames, clean: CleanClip) -> None:
    final, hashes = unit_dir / clip.name, clean.hashes
    atomic.remove(final)
    os.replace(clean.frames_dir, final)
    rows = pd.DataFrame({"frame": range(len(hashes)), "sha256": hashes, "clip": clip.name,
                         "lq_path": [f"{unit_dir.name}/{clip.name}/{frame_name(i)}" for i in range(len(hashes))],
                         "hq_path": [f"HQ/{clip.name}/{frame_name(i)}" for i in range(len(hashes))]})
    atomic.write_parquet(unit_dir / ".parts" / f"{clip.name}.parquet", rows)


def _command_text(args: list[str]) -> str:
    return " ".join(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", *args])


def _finalise_unit(unit_dir: Path, kind: str, recipe: Downscale, source: RedsSource,
                   ffmpeg: FFmpeg) -> Path | None:
    """Gather the finished clips' parts into manifest.parquet, clips.parquet and provenance.json."""
    parts = sorted((unit_dir / ".parts").glob("*.parquet")) if (unit_dir / ".parts").is_dir() else []
    if not parts:
        return None
    frames = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    frames["split"] = frames["clip"].map(reds_split)
    if kind == "lq":
        frames["qp"] = recipe.qp
    frames["scale"] = recipe.scale
    frames = frames.sort_values(["clip", "frame"], kind="stable").reset_index(drop=True)
    lead = ["clip", "frame", "split"]
    frames = frames[lead + [c for c in frames.columns if c not in lead]]
    manifest = atomic.write_parquet(unit_dir / "manifest.parquet", frames)
    src_pattern = f"$SRC/<clip>/{FRAME_PATTERN}"
    provenance = {"kind": kind, "tools": tool_versions(ffmpeg), "machine": machine(),
                  "source": {"root": str(source.root.resolve()), "layout": source.layout, "dataset": source.dataset},
                  "clips": sorted(frames["clip"].unique().tolist()), "frames": int(len(frames))}
    if kind == "lq":
        infos = [json.loads(p.with_suffix(".json").read_text()) for p in parts]
        clips = pd.DataFrame(infos).sort_values("clip").reset_index(drop=True)
        clips["split"] = clips["clip"].map(reds_split)
        atomic.write_parquet(unit_dir / "clips.parquet", clips)
        mp4 = f"$OUT/{unit_dir.name}/<clip>.mp4"
        alone = synth_command(src_pattern, [LqTarget(recipe, mp4, f"$OUT/{unit_dir.name}/<clip>/{FRAME_PATTERN}",
                                                     "<rgb pipe>")])
        provenance.update({
            "recipe": recipe.as_dict(),
            "x264": {"version": sorted(set(clips["x264_version"])), "options": sorted(set(clips["x264_options"]))},
            "commands": {
                # one ffmpeg per clip makes all the settings of a run; this is that command for this
                # setting alone (the chain of each setting is the same whichever others run with it)
                "per_clip": _command_text(alone),
                "official_pinned_equivalent": [" ".join(["ffmpeg", *c]) for c in recipe.official_commands(
                    src_pattern, f"<W/{recipe.scale}>x<H/{recipe.scale}>", "<clip>.mp4", f"<clip>/{FRAME_PATTERN}")],
            },
            "bitrate_kbps": {r.clip: r.bitrate_kbps for r in clips.itertuples()},
        })
    else:
        alone = synth_command(src_pattern, [], [CleanTarget(recipe, f"$OUT/{unit_dir.name}/<clip>/{FRAME_PATTERN}",
                                                            "<rgb pipe>")])
        provenance.update({
            "recipe": recipe.as_dict(),
            "commands": {"per_clip": _command_text(alone)}})
    atomic.write_text(unit_dir / "provenance.json", json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return manifest


def synth_reds(src: str | Path, out: str | Path, ffmpeg: FFmpeg, options: SynthOptions = SynthOptions(),
               progress: Progress | None = None) -> SynthReport:
    """Build every requested QP x scale setting for the clips under `src`.

    Progress events (`uvssm.base.progress`): SynthPlan, then SynthFrames as frames are written and SynthClip
    for every clip of every setting (done, failed with the reason, or skipped as already done).
    """
    report_progress = progress or quiet
    out = Path(out)
    source = discover(src)
    recipes = recipes_for(options)
    good, problems = _check_all(source)
    if source.dataset == "sample":
        notes = ["built-in sample: not checked against the REDS catalogue"]
    else:
        notes = check_reds({c.name: c.n_frames for c in good.values()}, source.layout == "reds-release")
    out.mkdir(parents=True, exist_ok=True)
    for clip in good.values():
        _link_hq(out, clip, options.hq_mode)
    split_counts = write_splits(out, [ClipEntry(c.name, c.n_frames, c.height, c.width) for c in good.values()],
                                reds_split)

    # Plan: one job per clip, making every unit of that clip that is not already done.
    units: list[tuple[str, str, Downscale]] = [(lq_folder(r.qp, r.scale), "lq", r) for r in recipes]
    if options.clean_lr:
        units += [(clean_lr_folder(s), "clean_lr", Downscale(scale=s)) for s in options.scales]
    reports = {name: UnitReport(name, kind, recipe) for name, kind, recipe in units}
    todo: dict[str, list[tuple[str, str, Downscale]]] = {}
    chosen = set(select_clips(sorted([*good, *problems]), options.clips, str(src)))
    for name, kind, recipe in units:
        unit_dir = out / name
        if not options.clips:  # a job of an array (--clips) leaves other jobs' work in progress alone
            atomic.remove(unit_dir / ".tmp")  # leftovers of a killed run
        for clip in good.values():
            if clip.name not in chosen:
                continue
            why = _scale_problem(clip, recipe.scale)
            if why:
                reports[name].failed[clip.name] = why
            elif _unit_done(unit_dir, clip.name) and not options.force:
                reports[name].skipped.append(clip.name)
            else:
                todo.setdefault(clip.name, []).append((name, kind, recipe))
    report_progress(SynthPlan(sum(good[c].n_frames * len(u) for c, u in todo.items()), [u[0] for u in units]))
    for name, report in reports.items():
        for clip in report.skipped:
            report_progress(SynthClip(name, clip, "skipped"))

    jobs_n = max(1, min(options.jobs, len(todo)))
    decoder_threads = max(1, (os.cpu_count() or 1) // jobs_n)
    lock = threading.Lock()
    committed: set[tuple[str, str]] = set()  # (unit, clip) renamed into place in this run

    def on_frames(n: int) -> None:
        with lock:
            report_progress(SynthFrames(n))

    def run_job(clip: ClipFrames, clip_units: list[tuple[str, str, Downscale]]) -> None:
        works = {name: out / name / ".tmp" / clip.name for name, _, _ in clip_units}
        for work in works.values():
            atomic.remove(work)
            work.mkdir(parents=True)
        try:
            lq = {recipe: works[name] for name, kind, recipe in clip_units if kind == "lq"}
            clean = {recipe.scale: works[name] for name, kind, recipe in clip_units if kind == "clean_lr"}
            encoded, cleaned = synthesise_clip(ffmpeg, clip, lq, clean, decoder_threads, on_frames)
            for name, kind, recipe in clip_units:
                if kind == "lq":
                    _commit_lq(out / name, clip, recipe, encoded[recipe])
                else:
                    _commit_clean(out / name, clip, cleaned[recipe.scale])
                committed.add((name, clip.name))
        except OSError as exc:
            raise UvssmError(f"clip {clip.name}: {exc.filename or out}: {exc.strerror}") from None
        finally:
            for work in works.values():
                atomic.remove(work)

    with ThreadPoolExecutor(max_workers=jobs_n) as pool:
        futures = {pool.submit(run_job, good[c], u): (c, u) for c, u in todo.items()}
        for future in as_completed(futures):
            clip, clip_units = futures[future]
            try:
                future.result()
            except UvssmError as exc:
                for name, _, _ in clip_units:
                    if (name, clip) in committed:  # renamed into place before a later unit failed
                        reports[name].built.append(clip)
                        report_progress(SynthClip(name, clip, "done"))
                    else:
                        reports[name].failed[clip] = str(exc)
                        report_progress(SynthClip(name, clip, "failed", str(exc)))
            else:
                for name, _, _ in clip_units:
                    reports[name].built.append(clip)
                    report_progress(SynthClip(name, clip, "done"))

    for name, kind, recipe in units:
        unit_dir = out / name
        if not options.clips:
            atomic.remove(unit_dir / ".tmp")
        reports[name].manifest = _finalise_unit(unit_dir, kind, recipe, source, ffmpeg)
        reports[name].built.sort()
    return SynthReport(out, source.layout, sorted(good), problems, notes, [reports[u[0]] for u in units],
                       split_counts)
