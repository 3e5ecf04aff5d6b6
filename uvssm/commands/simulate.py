"""`uvssm simulate`: a shared-video look-alike of an original, made with a platform preset, plus the truth."""

from __future__ import annotations

from pathlib import Path

import click

from degrade.platforms import PRESETS
from uvssm.display import wide_console


def _crop(ctx, param, value: str | None):
    if value is None:
        return (0, 0, 0, 0)
    try:
        parts = tuple(int(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise click.BadParameter("expected LEFT,TOP,RIGHT,BOTTOM in pixels, e.g. 4,2,6,4")
    return parts


@click.command("simulate")
@click.argument("hq", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="The LQ video to write (.mp4).")
@click.option("--platform", type=click.Choice(list(PRESETS), case_sensitive=False), default="wechat",
              show_default=True, help="Preset of degrade/platforms.py (an approximation of the platform's processing).")
@click.option("--trim", "trim_start", type=click.IntRange(0), default=0, help="Original frames skipped at the start.")
@click.option("--fps", type=float, help="Output frame rate (default: the original's).")
@click.option("--drop", type=click.FloatRange(0, 0.49), default=0.0, help="Probability of dropping an output frame.")
@click.option("--duplicate", type=click.FloatRange(0, 0.49), default=0.0, help="Probability of repeating one.")
@click.option("--crop", callback=_crop, metavar="L,T,R,B", help="Original pixels cut before scaling.")
@click.option("--letterbox", type=click.IntRange(0), default=0, help="Black bars (LQ pixels) at top and bottom.")
@click.option("--rotate", type=click.Choice(["0", "90", "180", "270"]), default="0", help="Display-rotation flag.")
@click.option("--full-range", is_flag=True, help="Encode and tag full-range colour.")
@click.option("--frames", type=click.IntRange(1), help="At most this many output frames.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the drops and duplicates.")
@click.pass_context
def simulate(ctx, hq: Path, out: Path, platform: str, trim_start: int, fps: float | None, drop: float,
             duplicate: float, crop, letterbox: int, rotate: str, full_range: bool, frames: int | None,
             seed: int) -> None:
    """Make the video a platform would show for the original HQ, and write the true frame mapping
    (OUT.mapping.parquet) and geometry (OUT.json) beside it: the ground truth for `uvssm build`.

    Example: uvssm simulate original.mp4 -o shared/001.mp4 --platform wechat --trim 12 --fps 25 --drop 0.01 --crop 4,2,6,4
    """
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.simulate import SimulateOptions, simulate as run_simulate

    console = wide_console()
    options = SimulateOptions(platform=platform, trim_start=trim_start, fps=fps, drop=drop, duplicate=duplicate,
                              crop=crop, letterbox=letterbox, rotate=int(rotate), full_range=full_range,
                              frames=frames, seed=seed)
    with console.status(f"simulating {platform} on {hq}"):
        truth = run_simulate(hq, out, find_ffmpeg(ctx.obj["ffmpeg_path"]), options)
    w, h = truth["lq_size"]
    console.print(f"{truth['lq']}: {truth['n_lq_frames']} frames, {w}x{h} at {truth['lq_fps']:g} fps "
                  f"({platform} preset, an approximation)")
    console.print(f"truth: {Path(truth['lq']).with_suffix('.mapping.parquet')}, {Path(truth['lq']).with_suffix('.json')}")
