"""`uvssm restore`: restore your own shared video with a trained model."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.base.progress import Event, RestoreCheck, RestoreFrame, RestoreStart
from uvssm.commands.inference import inference_from, inference_options
from uvssm.display import progress_display


@click.command("restore")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Restored video (.mp4, .mkv).")
@click.option("--model", required=True, help="Model name (votes, edvr-l, stdf+edvr-l, votes-tiny, ...).")
@click.option("--weights", multiple=True, required=True, metavar="CKPT|DIR|NAME=PATH",
              help="The trained checkpoint (a file), a weights folder, or NAME=PATH (repeat for two-stage models).")
@click.option("--scale", type=int, default=2, show_default=True)
@click.option("--crf", type=click.IntRange(0, 51), default=16, show_default=True, help="libx264 CRF of the output.")
@click.option("--preset", default="medium", show_default=True,
              type=click.Choice(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                                 "veryslow"]), help="libx264 preset of the output.")
@click.option("--frames", "frames_dir", type=click.Path(path_type=Path), help="Also write every frame here as PNG.")
@click.option("--qp-map", is_flag=True,
              help="Also save the input's per-macroblock QP maps, frame types and sizes (H.264) as OUTPUT_STEM.src.qp.npz.")
@inference_options
@click.pass_context
def restore(ctx: click.Context, video: Path, output: Path, model: str, weights: tuple[str, ...], scale: int,
            crf: int, preset: str, frames_dir: Path | None, qp_map: bool, **run_options) -> None:
    """Restore VIDEO (a shared video, no ground truth needed) into --output, frame by frame.

    Example: uvssm restore shared.mp4 -o restored.mp4 --model votes --weights runs/votes/checkpoints/latest.pt
    """
    from uvssm.pipelines.restore import RestoreOptions, restore_video

    console = Console(highlight=False, soft_wrap=True)
    entries = []
    for w in weights:
        if "=" in w or Path(w).is_dir():
            entries.append(w)
        elif "+" in model:
            raise click.UsageError(f"--weights {w}: a two-stage model needs a weights folder or NAME=PATH per stage")
        else:
            entries.append(f"{model}={w}")
    opts = RestoreOptions(model=model, weights=entries, scale=scale, inference=inference_from(run_options), crf=crf,
                          preset=preset, frames_dir=frames_dir, qp_map=qp_map)
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn())
    task = progress.add_task("checking that the input decodes", total=None)

    def on_event(event: Event) -> None:
        match event:
            case RestoreCheck():
                progress.update(task, completed=event.frames, total=event.total or None)
            case RestoreStart():
                (w, h), (ow, oh) = event.size, event.out_size
                progress.console.print(f"{video}: {w}x{h} → {ow}x{oh}, {event.frames} frames at {event.fps:.3f} fps, "
                                       f"{model} on {event.device}")
                progress.reset(task, description="restoring", total=event.frames or None)
            case RestoreFrame():
                progress.update(task, completed=event.index)

    with progress:
        result = restore_video(video, output, find_ffmpeg(ctx.obj["ffmpeg_path"]), opts, on_event)
    console.print(f"restored {result['frames']} frames in {result['seconds']:.1f} s: {output}"
                  + (f" (frames in {frames_dir})" if frames_dir else ""))
    busy = result["stage_seconds"]
    console.print(f"busy: decode {busy['decode']:.1f} s, model {busy['model']:.1f} s, encode {busy['encode']:.1f} s "
                  "(on their own threads, overlapped)")
    if result["qp_map"] is not None:
        console.print(f"the input's QP maps: {result['qp_map']} (read with uvssm.base.qpmaps.load)")
