"""Benchmark: the bench harness's own overhead (PNG decoding, metrics) against model time.

Runs `uvssm bench` (the library call) with full-size VOTES (config L, ×2, random weights: timing
only) and with bicubic on the first frames of one test clip of the built-in sample, synthesised at
QP 28 ×2 into a temporary folder. The harness records, per frame, the seconds spent loading LQ
frames, computing PSNR/SSIM (with the HQ frame's decoding), and in the model; the overhead is
(load + metric) / model. Target: under 10% for full-size VOTES.

    python -m benchmarks harness [--frames 2] [--size 640x360]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def run(frames: int = 2, size: tuple[int, int] = (640, 360)) -> list[dict]:
    import pandas as pd
    import torch

    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from models.inference import InferenceOptions
    from models import checkpoint
    from models.registry import create_model, model_kwargs
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.sample import make_sample
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    ffmpeg = find_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_sample(tmp / "src", ffmpeg, size=size, frames_per_clip=max(frames, 5) + 2)
        synth_reds(src, tmp / "data", ffmpeg, SynthOptions(qps=(28,), scales=(2,)))
        torch.manual_seed(0)
        checkpoint.save(tmp / "w" / "votes.pt", create_model("votes", 2),
                        {"model": "votes", "scale": 2, "model_kwargs": model_kwargs("votes", 2)})
        run_bench(BenchOptions(["bicubic", "votes"], tmp / "data", tmp / "res", qp=28, weights=[str(tmp / "w")],
                               max_frames=frames, save_frames=0, inference=InferenceOptions(device="cpu")))
        rows = pd.read_parquet(tmp / "res" / "frames.parquet")
    out = []
    for model, g in rows.groupby("model", sort=False):
        model_ms, load_ms, metric_ms = (1000 * g[c].mean() for c in ("seconds", "load_seconds", "metric_seconds"))
        out.append({"model": model, "frames": len(g), "lq": f"{size[0] // 2}x{size[1] // 2}", "model_ms": model_ms,
                    "load_ms": load_ms, "metric_ms": metric_ms, "overhead": (load_ms + metric_ms) / model_ms,
                    "peak_mib": g["peak_mem_mb"].max()})
    return out


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"bench harness overhead on CPU ({os.cpu_count()} cores): (load + metric) / model time",
                  title_justify="left")
    for col in ("model", "LQ size", "frames", "model ms/frame", "load ms/frame", "metric ms/frame", "overhead",
                "peak extra MiB"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], r["lq"], str(r["frames"]), f"{r['model_ms']:.1f}", f"{r['load_ms']:.1f}",
                      f"{r['metric_ms']:.1f}", f"{100 * r['overhead']:.2f}%", f"{r['peak_mib']:.0f}")
    console.print(table)
    console.print("target: overhead under 10% for full-size VOTES (bicubic shows the harness cost itself)")
