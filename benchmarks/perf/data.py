"""Benchmark: training batches per second from PNG folders against the decoded-frame store.

A REDS-sized dataset is made in a temporary folder: 720p clips cut from the sample footage,
`synth-reds` QP 28 x2 (LQ 640x360). Batches are the training recipe's: 16 samples, each a 5-frame
window of 64x64 LQ crops plus its 128x128 GT crop (GT-128), with flips and transpose, through
`torch.utils.data.DataLoader` exactly as `uvssm train` builds it. Cases:
- "PNG": every sample decodes its 6 PNGs (what a REDS-sized run gets once the in-memory cache is
  too small to hold the dataset);
- "decoded arrays": `uvssm.base.framestore` maps, built once before the clock starts (the build time
  is reported separately, per frame).
Each with 0 loader workers (the main process) and with one worker per core. The first 2 batches
(worker start-up) are not timed. Target: <= 30 ms per batch on 2 cores.

    python -m benchmarks data [--batches 20]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def _time_batches(clips, workers: int, batches: int) -> float:
    import torch

    from models.training.data import WindowPatches

    dataset = WindowPatches(clips, num_frame=5, lq_patch=64)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, sampler=range((batches + 2) * 16),
                                         num_workers=workers)
    it = iter(loader)
    for _ in range(2):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    assert batch["gt"].shape == (16, 3, 128, 128) and batch["lq"].shape == (16, 5, 3, 64, 64)
    return (time.perf_counter() - t0) / batches


def run(batches: int = 20, n_clips: int = 4, frames: int = 30) -> list[dict]:
    from benchmarks.perf.synth import make_bench_clips
    from uvssm.base.datasets import open_dataset, use_frame_store
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="uvssm-bench-data-") as tmp:
        tmp = Path(tmp)
        src = make_bench_clips(tmp / "src", n_clips, frames)
        synth_reds(src, tmp / "data", find_ffmpeg(), SynthOptions(qps=(28,), scales=(2,)))
        plain = open_dataset(tmp / "data", split="all", scale=2, qp=28, cache_mb=0)
        stored = open_dataset(tmp / "data", split="all", scale=2, qp=28, cache_mb=0)
        t0 = time.perf_counter()
        use_frame_store(stored, tmp / "store")
        build = (time.perf_counter() - t0) / (n_clips * frames)
        for name, ds in (("PNG", plain), ("decoded arrays", stored)):
            for workers in (0, cores):
                seconds = _time_batches(ds.clips, workers, batches)
                rows.append({"source": name, "workers": workers, "ms_per_batch": 1000 * seconds,
                             "patches_per_s": 16 / seconds,
                             "build_ms_per_frame": 1000 * build if name != "PNG" else None})
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=120)
    table = Table(title=f"training batches (16 x GT-128, 5-frame windows, 720p clips) on {os.cpu_count()} cores; "
                        "target <= 30 ms/batch", title_justify="left")
    for col in ("frames from", "loader workers", "ms per batch", "patches/s", "one-off build, ms per frame"):
        table.add_column(col, justify="right")
    for r in rows:
        build = "-" if r["build_ms_per_frame"] is None else f"{r['build_ms_per_frame']:.0f}"
        table.add_row(r["source"], str(r["workers"]), f"{r['ms_per_batch']:.1f}", f"{r['patches_per_s']:.0f}", build)
    console.print(table)
