"""`uvssm info`: which ffmpeg and libx264 uvssm will use, and what the catalogue holds."""

from __future__ import annotations

import click


@click.command("info")
@click.pass_context
def info(ctx: click.Context) -> None:
    """Show the ffmpeg binary, its libx264 version and the clip catalogue (data_manifest.csv).

    Example: uvssm --ffmpeg /usr/bin/ffmpeg info
    """
    from rich.table import Table

    from uvssm.display import wide_console

    from uvssm.base.catalog import load_catalog
    from uvssm.base.ffmpeg import find_ffmpeg

    console = wide_console()
    ff = find_ffmpeg(ctx.obj["ffmpeg_path"])
    console.print(f"ffmpeg  {ff.version}\n  found via {ff.source}: {ff.path}\nlibx264 {ff.x264}")
    cat = load_catalog()
    table = Table(title="catalogue (data_manifest.csv)", title_justify="left")
    for col in ("dataset", "platform", "split", "clips"):
        table.add_column(col)
    for (dataset, platform, split), n in cat.groupby(["dataset", "platform", "split"]).size().items():
        table.add_row(dataset, platform or "-", split, str(n))
    console.print(table)
