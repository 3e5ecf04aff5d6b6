"""`uvssm synth-reds`: compressed low-resolution REDS with the VOTES recipe, pinned for determinism."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.base.progress import BenchFrame, BicubicSetting, Event, Note, SynthClip, SynthFrames, SynthPlan
from uvssm.pipelines.synth import SynthOptions, SynthReport, synth_reds as run_synth
from uvssm.display import progress_display, wide_console

_SAMPLE_SRC = "sample-src"


class FramesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} frames/s" if speed else "   ... frames/s", style="cyan")


def _progress(console: Console) -> Progress:
    return progress_display(console, SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            FramesPerSecond(), TimeElapsedColumn(), TimeRemainingColumn())


def _print_report(console: Console, report: SynthReport) -> None:
    table = Table(title=f"synth-reds -> {report.out}", title_justify="left")
    for col in ("output", "built", "already done", "failed", "manifest"):
        table.add_column(col)
    for unit in report.units:
        table.add_row(unit.name, str(len(unit.built)), str(len(unit.skipped)),
                      f"[red]{len(unit.failed)}[/red]" if unit.failed else "0",
                      str(unit.manifest.relative_to(report.out)) if unit.manifest else "-")
    console.print(table)
    console.print(f"source layout: {report.layout}; clips: {len(report.clips)}; "
                  f"splits: {', '.join(f'{k} {v}' for k, v in report.split_counts.items())}")
    for note in report.notes[:6]:
        console.print(f"[yellow]catalogue:[/yellow] {note}", highlight=False)
    if len(report.notes) > 6:
        console.print(f"[yellow]catalogue:[/yellow] ... and {len(report.notes) - 6} more notes", highlight=False)
    for reason in report.problems.values():
        console.print(f"[red]error:[/red] {reason}", highlight=False)
    for unit in report.units:
        for reason in unit.failed.values():
            console.print(f"[red]error:[/red] {unit.name}: {reason}", highlight=False)


def _bicubic(console: Console, report: SynthReport, split: str, jobs: int, metrics: tuple[str, ...],
             ffmpeg: str) -> None:
    """Score the bicubic reference row with a progress bar per setting, then print Table 2."""
    from uvssm.display import print_table2
    from uvssm.pipelines.bicubic import score_bicubic

    with _progress(console) as bars:
        tasks: list = []  # one bar per setting; frames advance the newest

        def on_event(event: Event) -> None:
            match event:
                case Note():
                    bars.console.print(f"[yellow]note:[/yellow] {event.text}")
                case BicubicSetting():
                    tasks.append(bars.add_task(f"bicubic {event.name}", total=event.frames))
                case BenchFrame():
                    bars.advance(tasks[-1])

        settings = [(u.recipe.qp, u.recipe.scale) for u in report.units if u.kind == "lq" and u.manifest is not None]
        result = score_bicubic(report.out, settings, split, jobs, metrics, ffmpeg, on_event)
    if result is not None and result.tables is not None:
        print_table2(console, result.tables.table2)
        paths = result.tables.paths
        console.print(f"results: {paths['frames']} (per frame), {paths['table2']} (Table 2 rows)")


@click.command("synth-reds")
@click.option("--src", type=click.Path(path_type=Path), default=None,
              help="REDS root (train_sharp/ + val_sharp/) or a folder of <clip>/%08d.png folders. "
                   "Default: the built-in sample, made under OUT/sample-src.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--qp", "qps", type=click.IntRange(0, 51), multiple=True, default=(28,), show_default=True,
              help="x264 QP; repeat for several (e.g. --qp 28 --qp 33).")
@click.option("--scale", "scales", type=click.IntRange(1, 8), multiple=True, default=(2,), show_default=True,
              help="Downscale factor; repeat for several (e.g. --scale 2 --scale 4).")
@click.option("--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default=True,
              help="Clips encoded side by side (each libx264 runs with its pinned thread count).")
@click.option("--force", is_flag=True, help="Redo clips that are already finished.")
@click.option("--clips", metavar="IDS", help="Encode only these clips (ids and ranges, e.g. 240-269), for job "
              "arrays; the manifests gather every clip finished so far: run once without --clips at the end.")
@click.option("--clean-lr", is_flag=True, help="Also write LR_clean_x<s>/: the encoder's input frames as RGB.")
@click.option("--hq", "hq_mode", type=click.Choice(["link", "copy"]), default="link", show_default=True,
              help="OUT/HQ/<clip>: a symlink to the source clip (copy where links fail), or a copy.")
@click.option("--bicubic", is_flag=True, help="Score bicubic-upsampled LQ against HQ (a reference row of uvssm's: "
              "the paper's Table 2 has no bicubic column).")
@click.option("--eval-split", type=click.Choice(["test", "val", "train", "all"]), default="test",
              show_default=True, help="Clips scored by --bicubic (all clips if the split is empty).")
@click.option("--metrics", default="psnr,ssim", show_default=True, metavar="psnr,ssim[,vmaf]",
              help="Metrics of --bicubic; vmaf adds libvmaf's score (vmaf_v0.6.1) beside PSNR/SSIM.")
@click.pass_context
def synth_reds(ctx: click.Context, src: Path | None, out: Path, qps: tuple[int, ...], scales: tuple[int, ...],
               jobs: int, force: bool, clips: str | None, clean_lr: bool, hq_mode: str, bicubic: bool,
               eval_split: str, metrics: str) -> None:
    """Synthesise compressed low-resolution REDS: encode every clip with libx264 at fixed QP after
    downscaling (the VOTES recipe, threads pinned), decode back to PNG, and write manifests,
    provenance, splits and meta_info files. Resumable: re-running redoes only unfinished clips.

    Example: uvssm synth-reds --src /data/REDS --out /data/REDS_LQ --qp 28 --qp 33 --scale 2 --scale 4
    """
    console = wide_console()
    ffmpeg = find_ffmpeg(ctx.obj["ffmpeg_path"])
    console.print(f"ffmpeg {ffmpeg.version} ({ffmpeg.source}: {ffmpeg.path}), libx264 {ffmpeg.x264}")
    if src is None:
        from uvssm.pipelines.sample import make_sample

        src = make_sample(out / _SAMPLE_SRC, ffmpeg)
        console.print(f"no --src given: using the built-in sample in {src}")
    options = SynthOptions(qps=tuple(dict.fromkeys(qps)), scales=tuple(dict.fromkeys(scales)), jobs=jobs,
                           force=force, clean_lr=clean_lr, hq_mode=hq_mode, clips=clips)
    with _progress(console) as progress:
        task = progress.add_task("encoding", total=None)

        def on_event(event: Event) -> None:
            match event:
                case SynthPlan():
                    progress.update(task, total=event.total, description=f"encoding {', '.join(event.units)}")
                case SynthFrames():
                    progress.advance(task, event.n)
                case SynthClip(status="failed"):
                    progress.console.print(f"[red]failed:[/red] {event.unit}: {event.message}")

        report = run_synth(src, out, ffmpeg, options, on_event)
    _print_report(console, report)
    if bicubic:
        from benchmarks.metrics import parse_metrics

        _bicubic(console, report, eval_split, jobs, parse_metrics(metrics), ffmpeg.path)
    console.print(f"outputs: {out.resolve()}")
    if not report.ok:
        sys.exit(1)
