"""`uvssm build`: align original/shared video pairs and write aligned HQ/LQ frames, reports and splits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from uvssm.base.progress import BuildPair, BuildPlan, Event
from uvssm.display import progress_display, wide_console


@click.command("build")
@click.option("--src", type=click.Path(path_type=Path), required=True,
              help="RAW folder: <platform>/{HQ,LQ}/<id>.<ext>, a pairs.csv (platform,id,hq,lq), "
                   "or <Platform>/{HQ_frames,LQ_frames}/<clip>/ (checked and indexed only).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Dataset folder to write.")
@click.option("--platform", help="Only this platform, in any case (wechat or WeChat).")
@click.option("--frames", type=click.IntRange(0), default=100, show_default=True,
              help="Aligned frames per clip (0: all). UVSSM clips have 100.")
@click.option("--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default=True, help="Pairs in parallel.")
@click.option("--min-margin", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Leave a pair out when its start offset is less than this much (relative cost) better than "
                   "the next best on thumbnails (0: off; the weighing of whole accounts decides). Set on an "
                   "earlier corpus (0.10), kept for those who want it.")
@click.option("--max-offset", type=click.FloatRange(0), default=4.0, show_default=True,
              help="Seconds into the original the share may start (or of intro before the original's first frame).")
@click.option("--max-neighbour-better", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Self-check: leave a pair out when, at LQ size, a neighbouring HQ frame fits more than this share "
                   "of its LQ frames better than the chosen one.")
@click.option("--max-next-better", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Self-check: leave a pair out when, at LQ size, the next HQ frame fits more than this share (and at "
                   "least 3) of its LQ frames better than the chosen one (codecs lag, they do not lead); 1: off. "
                   "Set on an earlier corpus (0.15), kept for those who want it.")
@click.option("--max-residual", type=click.FloatRange(0, 2), default=0.5, show_default=True,
              help="Self-check: leave a pair out when its LQ pictures fit their HQ box worse than this "
                   "(1 - correlation, median over frames).")
@click.option("--min-distinct", type=float, default=0.0, show_default=True,
              help="Self-check: leave a pair out when, at LQ size, its chosen HQ frames fit less than this much "
                   "(relative error, median) better than their neighbours: frames that barely change cannot be paired.")
@click.option("--confirm-distinct", type=float, default=0.20, show_default=True,
              help="Keep a pair whose start offset is within --min-margin of the next best when, at LQ size, its "
                   "chosen HQ frames fit at least this much (relative error, median) better than their neighbours.")
@click.option("--confirm-next-distinct", type=float, default=0.05, show_default=True,
              help="Keep a pair whose next-frame share is above --max-next-better when, at LQ size, its chosen HQ "
                   "frames fit at least this much (relative error, median) better than their neighbours.")
@click.option("--allow-hdr", is_flag=True, help="Accept 10-bit and HDR sources.")
@click.option("--test-clips", metavar="IDS", help="The test split, as named (ids and ranges, e.g. 240-249,255); "
              "the rest are split into --val-clips validation clips (seeded) and training. Default: the paper's "
              "WeChat test split where its clips are there, else seeded K-fold.")
@click.option("--val-clips", type=click.IntRange(0), default=4, show_default=True,
              help="Validation clips drawn (seeded) from the clips outside the test split.")
@click.option("--folds", type=click.IntRange(1), default=5, show_default=True, help="K of the seeded K-fold splits.")
@click.option("--fold", type=click.IntRange(0), default=0, show_default=True, help="Fold written as splits/{train,val,test}.txt.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits.")
@click.option("--force", is_flag=True, help="Redo pairs that are already built.")
@click.option("--clips", metavar="IDS", help="Only these clips (ids and ranges, e.g. 001-020,031), for job arrays; "
              "the manifest gathers every pair built so far: run once without --clips at the end.")
@click.pass_context
def build(ctx, src: Path, out: Path, platform: str | None, frames: int, jobs: int, min_margin: float, max_offset: float,
          max_neighbour_better: float, max_next_better: float, max_residual: float, min_distinct: float, confirm_distinct: float,
          confirm_next_distinct: float,
          allow_hdr: bool, test_clips: str | None, val_clips: int,
          folds: int, fold: int, seed: int, force: bool, clips: str | None) -> None:
    """Align real original/shared pairs in time and space and extract HQ/LQ frames whose sizes are
    exactly scale × each other; write a report per pair, frame rows with pixel hashes, splits
    (the paper's WeChat test split when present, else seeded K-fold) and meta_info files.
    Resumable; pairs that cannot be aligned are left out with the reason (exit code 1).

    Example: uvssm build --src RAW --out DATASET --platform wechat --frames 100
    """
    from uvssm.pipelines.build import BuildOptions, build as run_build
    from uvssm.base.ffmpeg import find_ffmpeg

    console = wide_console()
    ffmpeg = find_ffmpeg(ctx.obj["ffmpeg_path"])
    options = BuildOptions(frames=frames or None, jobs=jobs, min_margin=min_margin, max_offset_s=max_offset,
                           max_neighbour_better=max_neighbour_better, max_next_better=max_next_better,
                           max_residual=max_residual,
                           min_distinct=min_distinct, confirm_distinct=confirm_distinct,
                           confirm_next_distinct=confirm_next_distinct, allow_hdr=allow_hdr, folds=folds,
                           test_ids=test_clips, val_clips=val_clips,
                           fold=fold, seed=seed, force=force, clips=clips)
    with progress_display(console, SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn()) as progress:
        tasks = {}

        def on_event(event: Event) -> None:
            match event:
                case BuildPlan():
                    tasks[event.platform] = progress.add_task(f"aligning {event.platform}", total=event.todo)
                case BuildPair():
                    progress.advance(tasks[event.platform])
                    if event.status != "built":
                        progress.console.print(f"[red]left out:[/red] {event.platform}/{event.clip}: {event.message}")

        reports = run_build(src, out, ffmpeg, options, platform, on_event)
    table = Table(title=f"build -> {out}", title_justify="left")
    for col in ("platform", "layout", "built", "already done", "left out", "splits"):
        table.add_column(col)
    for r in reports:
        table.add_row(r.platform, r.layout, str(len(r.built)), str(len(r.skipped)),
                      f"[red]{len(r.left_out)}[/red]" if r.left_out else "0",
                      ", ".join(f"{k} {v}" for k, v in r.splits.items()))
    console.print(table)
    for r in reports:
        for note in r.notes:
            console.print(f"[yellow]catalogue:[/yellow] {note}")
        for clip, reason in sorted(r.left_out.items()):
            console.print(f"[red]error:[/red] {r.platform}/{clip}: {reason}")
    console.print(f"outputs: {out} (per platform: HQ_frames/, LQ_frames/, pairs.parquet, frames.parquet, splits/)")
    if any(r.left_out for r in reports):
        sys.exit(1)
