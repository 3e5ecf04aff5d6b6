"""`uvssm qp-map`: the degradation an H.264 video's bitstream states, per frame and macroblock."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("qp-map")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Write the maps here (.qp.npz); "
              "default: VIDEO's name with .qp.npz beside it.")
@click.option("--frames", type=click.IntRange(1), help="Only the first N frames.")
def qp_map(video: Path, out: Path | None, frames: int | None) -> None:
    """Read every macroblock's QP, each frame's type and coded size from an H.264 video (a shared
    video, a synth-reds or build LQ clip, a video you will `restore`), print a summary and save
    the maps as one compressed .npz (qp: frames x rows x cols uint8, pict_type, packet_bytes, keyframe).

    Example: uvssm qp-map shared.mp4 -o shared.qp.npz
    """
    import numpy as np
    from rich.table import Table

    from uvssm.display import wide_console

    from uvssm.base import qpmaps

    maps = qpmaps.read_qp_maps(video, frames)
    out = out or video.with_name(video.stem + qpmaps.QP_MAP_SUFFIX)
    qpmaps.save(maps, out)
    console = wide_console()
    rows, cols = maps.qp.shape[1:]
    console.print(f"{video}: {len(maps)} frames, {rows}x{cols} macroblocks of {qpmaps.MB}x{qpmaps.MB}")
    table = Table(title="per picture type", title_justify="left")
    for col in ("type", "frames", "mean QP", "QP range", "mean bytes"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for kind in sorted(set(maps.pict_type.tolist())):
        sel = maps.pict_type == kind
        q = maps.qp[sel]
        table.add_row(kind, str(int(sel.sum())), f"{maps.mean_qp[sel].mean():.2f}", f"{q.min()}-{q.max()}",
                      f"{maps.packet_bytes[sel].mean():.0f}")
    console.print(table)
    console.print(f"mean QP {maps.mean_qp.mean():.2f}, {int(np.sum(maps.packet_bytes))} bytes of video; maps: {out}")
