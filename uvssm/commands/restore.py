"""`uvssm restore`: restore your own shared video with a trained model."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.display import progress_display


@click.command("restore")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Restored video (.mp4, .mkv).")
@click.option("--model", required=True, help="Model name (votes, edvr-l, stdf+edvr-l, votes-tiny, ...).")
@click.option("--weights", multiple=True, required=True, metavar="CKPT|DIR|NAME=PATH",
              help="The trained checkpoint (a file), a weights folder, or NAME=PATH (repeat for two-stage models).")
@click.option("--scale", type=int, default=2, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast.")
@click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto", show_default=True,
              help="Deformable convolutions: auto times both where torchvision imports and keeps the faster.")
@click.option("--batch", type=int, default=1, show_default=True, help="Windows per model call.")
@click.option("--tile", type=int, default=0, show_default=True, help="Tiles of this many input pixels (0: whole frames).")
@click.option("--overlap", type=int, default=32, show_default=True, help="Context pixels around each tile.")
@click.option("--crf", type=click.IntRange(0, 51), default=16, show_default=True, help="libx264 CRF of the output.")
@click.option("--preset", default="medium", show_default=True,
              type=click.Choice(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                                 "veryslow"]), help="libx264 preset of the output.")
@click.option("--frames", "frames_dir", type=click.Path(path_type=Path), help="Also write every frame here as PNG.")
@click.option("--qp-map", is_flag=True,
              help="Also save the input's per-macroblock QP maps, frame types and sizes (H.264) as OUTPUT_STEM.src.qp.npz.")
@click.pass_context
def restore(ctx: click.Context, video: Path, output: Path, model: str, weights: tuple[str, ...], scale: int,
            device: str, bf16: bool, dcn_backend: str, batch: int, tile: int, overlap: int, crf: int, preset: str,
            frames_dir: Path | None, qp_map: bool) -> None:
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
    opts = RestoreOptions(model=model, weights=entries, scale=scale, device=device, bf16=bf16,
                          dcn_backend=dcn_backend, batch=batch, tile=tile, overlap=overlap, crf=crf, preset=preset,
                          frames_dir=frames_dir, qp_map=qp_map)
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn())
    task = progress.add_task("restoring", total=None)

    def on_event(event: str, info: dict) -> None:
        if event == "start":
            (w, h), (ow, oh) = info["size"], info["out_size"]
            progress.console.print(f"{video}: {w}x{h} → {ow}x{oh}, {info['frames']} frames at {info['fps']:.3f} fps, "
                                   f"{model} on {info['device']}")
            progress.update(task, total=info["frames"] or None)
        elif event == "frame":
            progress.update(task, completed=info["index"])

    with progress:
        result = restore_video(video, output, find_ffmpeg(ctx.obj["ffmpeg_path"]), opts, on_event)
    console.print(f"restored {result['frames']} frames in {result['seconds']:.1f} s: {output}"
                  + (f" (frames in {frames_dir})" if frames_dir else ""))
    if result["qp_map"] is not None:
        console.print(f"the input's QP maps: {result['qp_map']} (read with uvssm.base.qpmaps.load)")
