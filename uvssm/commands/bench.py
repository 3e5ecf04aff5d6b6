"""`uvssm bench`: score models on a dataset's test clips; Table 2 as parquet and on screen."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from uvssm.base.progress import BenchClip, BenchData, BenchFrame, BenchModel, BenchSkip, Event
from uvssm.commands.inference import inference_from, inference_options
from uvssm.display import print_table2, progress_display, wide_console


@click.command("bench")
@click.option("--models", "model_names", default="", metavar="A,B,...",
              help="Comma-separated: bicubic, registered models (votes, edvr-l, ...), two-stage a+b (stdf+edvr-l).")
@click.option("--outputs", multiple=True, metavar="NAME=DIR",
              help="Score outputs made elsewhere (BasicSR, mmagic, official code) beside the models: DIR/<clip>/"
                   "%08d.png or DIR/<clip>.mp4, at HQ size, every frame (repeatable).")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="A `uvssm synth-reds` output (with --qp) or a `uvssm build` / UVSSM folder.")
@click.option("--qp", type=int, help="QP of a synth-reds dataset (LQ_qp<QP>_x<scale>).")
@click.option("--scale", type=int, default=2, show_default=True)
@click.option("--platform", help="Platform folder of a UVSSM/build dataset, in any case (wechat or WeChat).")
@click.option("--split", default="test", show_default=True,
              help="test, val, train, all, or reds4 (the REDS4 clips: the val split of synth-reds).")
@click.option("--weights", multiple=True, metavar="DIR|NAME=PATH",
              help="Checkpoints: a folder with NAME.pt or NAME/checkpoints/latest.pt, or NAME=PATH (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results folder.")
@click.option("--shard-frames", type=int, default=25, show_default=True,
              help="Frames per shard of a clip (the unit of resume and of torchrun's work; results do not depend on it).")
@click.option("--color-space", type=click.Choice(["y", "rgb"]), default="y", show_default=True)
@click.option("--crop-border", type=int, help="Pixels cropped before scoring (default: the scale, as VOTES).")
@click.option("--max-frames", type=int, default=0, help="Score only the first N frames of each clip (0: all).")
@click.option("--save-frames", type=int, default=1, show_default=True,
              help="Output frames per clip kept as PNG for `uvssm report`.")
@click.option("--clips", metavar="IDS", help="Only these clips of the split: ids and ranges, e.g. 240-249,255.")
@click.option("--num-shards", type=click.IntRange(1), default=1, show_default=True,
              help="A job array without torchrun: the work is cut in this many jobs ...")
@click.option("--shard-index", type=click.IntRange(0), default=0, show_default=True,
              help="... and this job does part I (0-based); recurrent chunks are --chunk as given in every job.")
@click.option("--gather", is_flag=True,
              help="After the array's jobs: check every part is there (made with these options), write the tables.")
@click.option("--metrics", default="psnr,ssim", show_default=True, metavar="psnr,ssim[,vmaf]",
              help="vmaf adds libvmaf's per-frame score (model vmaf_v0.6.1, at HQ size) beside PSNR/SSIM.")
@click.option("--portable-numerics", is_flag=True,
              help="Pin torch's CPU kernels to AVX2 (oneDNN, ATen, MKL), fix the threads (--threads, default 2) and "
                   "make non-deterministic ops errors, so any x86-64 machine gives the same numbers (as `uvssm demo`). "
                   "CPU only: refused with a CUDA device (a GPU's numbers follow the GPU).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 2 with "
              "--portable-numerics).")
@inference_options
@click.pass_context
def bench(ctx: click.Context, model_names: str, outputs: tuple[str, ...], data: Path, qp: int | None, scale: int, platform: str | None, split: str,
          weights: tuple[str, ...], out: Path, shard_frames: int, color_space: str, crop_border: int | None,
          max_frames: int, save_frames: int, clips: str | None, num_shards: int, shard_index: int, gather: bool,
          metrics: str, portable_numerics: bool, threads: int | None, **run_options) -> None:
    """Benchmark models on a dataset's clips: one parquet row per frame, Table 2 beside the paper.

    Resumable: rerun the same command after an interruption and finished (model, clip) parts are
    kept. For several GPUs: torchrun --nproc_per_node N -m uvssm bench ...  For a job array: the same
    command with --num-shards K --shard-index I in each job, then once with --gather.

    Example: uvssm bench --models votes,stdf+edvr-l,bicubic --data /data/REDS_LQ --qp 28 --scale 2
             --weights runs/ --out results/
             uvssm bench --models bicubic --outputs basicvsr-official=BasicVSR/results/REDS4 --data /data/REDS_LQ
             --qp 28 --split reds4 --out results/
    """
    from uvssm.base.numerics import fix_threads_or_pin

    fix_threads_or_pin(portable_numerics, threads, run_options["device"])  # before torch runs; refused on CUDA
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from benchmarks.metrics import parse_metrics
    from benchmarks.outputs import parse_outputs

    console = wide_console()
    names = [m.strip() for m in model_names.split(",") if m.strip()]
    if not names and not outputs:
        raise click.UsageError("give --models, --outputs NAME=DIR, or both")
    opts = BenchOptions(models=names, data=data, out=out, scale=scale, qp=qp, platform=platform, split=split,
                        weights=list(weights), inference=inference_from(run_options), color_space=color_space,
                        crop_border=crop_border, max_frames=max_frames, save_frames=save_frames,
                        shard_frames=shard_frames, metrics=parse_metrics(metrics),
                        ffmpeg=ctx.obj["ffmpeg_path"], outputs=parse_outputs(outputs), clips=clips,
                        num_shards=num_shards, shard_index=shard_index, gather=gather, argv=tuple(sys.argv[1:]))
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn())
    tasks: dict[str, int] = {}

    def on_event(event: Event) -> None:
        match event:
            case BenchData():
                where = f" (rank {event.rank} of {event.world})" if event.world > 1 else ""
                progress.console.print(f"{event.text}; device {event.device}{where}")
            case BenchModel():
                tasks[event.model] = progress.add_task(event.model, total=event.frames)
            case BenchSkip():
                progress.advance(tasks[event.model], event.frames)
            case BenchFrame():
                progress.advance(tasks[event.model])
            case BenchClip():
                progress.console.print(f"{event.model} {event.clip}: {event.psnr:.2f} dB / {event.ssim:.4f}")

    with progress:
        result = run_bench(opts, on_event)
    if result.tables is None:
        if num_shards > 1 and not gather:
            console.print(f"job {shard_index} of {num_shards} done; when every job is, run the same command with "
                          "--gather (no --shard-index) to check the parts and write the tables")
        return
    print_table2(console, result.tables.table2, result.tables.models)
    paths = result.tables.paths
    console.print(f"results: {paths['frames']} (per frame), {paths['clips'].name}, {paths['table2'].name}, "
                  f"{paths['models'].name} in {out}")
