"""`uvssm bench`: score models on a dataset's test clips; Table 2 as parquet and on screen."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
@click.option("--platform", help="Platform folder of a UVSSM/build dataset (e.g. WeChat).")
@click.option("--split", default="test", show_default=True,
              help="test, val, train, all, or reds4 (the REDS4 clips: the val split of synth-reds).")
@click.option("--weights", multiple=True, metavar="DIR|NAME=PATH",
              help="Checkpoints: a folder with NAME.pt or NAME/checkpoints/latest.pt, or NAME=PATH (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results folder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast for the models.")
@click.option("--batch", type=int, default=1, show_default=True, help="Windows per model call.")
@click.option("--tile", type=int, default=0, show_default=True, help="Run in tiles of this many LQ pixels (0: whole frames).")
@click.option("--overlap", type=int, default=32, show_default=True, help="Context pixels around each tile.")
@click.option("--chunk", type=int, default=100, show_default=True,
              help="Recurrent models: frames per chunk (each with --chunk-overlap frames of context per side); "
                   "shortened on a GPU whose free memory would not hold it (recorded per row).")
@click.option("--chunk-overlap", type=int, default=8, show_default=True)
@click.option("--shard-frames", type=int, default=25, show_default=True,
              help="Frames per shard of a clip (the unit of resume and of torchrun's work; results do not depend on it).")
@click.option("--channels-last", is_flag=True, help="Convolution weights in channels-last memory format.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each model (inductor; slow to start; one compile per frame size).")
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto", show_default=True,
              help="Deformable convolutions: auto times both where torchvision imports and keeps the faster "
                   "(recorded per row).")
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
                   "make non-deterministic ops errors, so any x86-64 machine gives the same numbers (as `uvssm demo`).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 2 with "
              "--portable-numerics).")
@click.pass_context
def bench(ctx: click.Context, model_names: str, outputs: tuple[str, ...], data: Path, qp: int | None, scale: int, platform: str | None, split: str,
          weights: tuple[str, ...], out: Path, device: str, bf16: bool, batch: int, tile: int, overlap: int,
          chunk: int, chunk_overlap: int, shard_frames: int,
          channels_last: bool, compile_: bool, dcn_backend: str, color_space: str, crop_border: int | None, max_frames: int,
          save_frames: int, clips: str | None, num_shards: int, shard_index: int, gather: bool, metrics: str,
          portable_numerics: bool, threads: int | None) -> None:
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

    fix_threads_or_pin(portable_numerics, threads)  # before torch runs anything
    from benchmarks.harness import BenchOptions, run_bench
    from benchmarks.metrics import parse_metrics
    from benchmarks.outputs import parse_outputs

    console = wide_console()
    names = [m.strip() for m in model_names.split(",") if m.strip()]
    if not names and not outputs:
        raise click.UsageError("give --models, --outputs NAME=DIR, or both")
    opts = BenchOptions(models=names, data=data, out=out, scale=scale, qp=qp, platform=platform, split=split,
                        weights=list(weights), device=device, bf16=bf16, batch=batch, tile=tile, overlap=overlap,
                        color_space=color_space, crop_border=crop_border, max_frames=max_frames,
                        save_frames=save_frames, chunk=chunk, chunk_overlap=chunk_overlap,
                        shard_frames=shard_frames, channels_last=channels_last,
                        compile="inductor" if compile_ else "", dcn_backend=dcn_backend, metrics=parse_metrics(metrics),
                        ffmpeg=ctx.obj["ffmpeg_path"], outputs=parse_outputs(outputs), clips=clips,
                        num_shards=num_shards, shard_index=shard_index, gather=gather)
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn())
    tasks: dict[str, int] = {}

    def on_event(event: str, info: dict) -> None:
        if event == "data":
            where = f" (rank {info['rank']} of {info['world']})" if info["world"] > 1 else ""
            progress.console.print(f"{info['text']}; device {info['device']}{where}")
        elif event == "model":
            tasks[info["model"]] = progress.add_task(info["model"], total=info["frames"])
        elif event == "skip":
            progress.advance(tasks[info["model"]], info["frames"])
        elif event == "frame":
            progress.advance(tasks[info["model"]])
        elif event == "clip":
            progress.console.print(f"{info['model']} {info['clip']}: {info['psnr']:.2f} dB / {info['ssim']:.4f}")

    with progress:
        result = run_bench(opts, on_event)
    if not result:
        if num_shards > 1 and not gather:
            console.print(f"job {shard_index} of {num_shards} done; when every job is, run the same command with "
                          "--gather (no --shard-index) to check the parts and write the tables")
        return
    print_table2(console, result["table2"], result["models"])
    paths = result["paths"]
    console.print(f"results: {paths['frames']} (per frame), {paths['clips'].name}, {paths['table2'].name}, "
                  f"{paths['models'].name} in {out}")
