"""Benchmark: full-size VOTES over a stream, with and without shared frame features.

In the EDVR family (VOTES, EDVR) the first conv, the feature extractor and the pyramid of each
frame do not depend on the window; the inference runner computes them once per frame and reuses
them in the 5 windows that hold the frame (`models.inference._shared_feature_windows`). This runs
full-size VOTES (config L, x2, random weights: timing only) over the same stream of LQ frames
both ways, on the CPU, and reports seconds per output frame, the speed-up and the largest output
difference. Target: >= 1.15x at LQ 320x180.

    python -m benchmarks reuse [--frames 7] [--size 320x180]
"""

from __future__ import annotations

import os
import time


def run(frames: int = 7, size: tuple[int, int] = (320, 180), device: str = "cpu") -> list[dict]:
    import torch

    from models.inference import Stage, restore_stream
    from models.registry import create_model

    torch.manual_seed(0)
    model = create_model("votes", 2).eval().to(device)
    g = torch.Generator().manual_seed(1)
    stream = [torch.rand(3, size[1], size[0], generator=g) for _ in range(frames)]
    rows, outputs = [], {}
    for share in (False, True):
        stage = Stage(model, 5, 2, 4, share_features=share)
        t0 = time.perf_counter()
        outputs[share] = list(restore_stream(stream, [stage], device=device))
        seconds = (time.perf_counter() - t0) / frames
        rows.append({"shared_features": share, "frames": frames, "lq": f"{size[0]}x{size[1]}",
                     "seconds_per_frame": seconds})
    base = rows[0]["seconds_per_frame"]
    diff = max(float((a - b).abs().max()) for a, b in zip(outputs[False], outputs[True]))
    for r in rows:
        r["speedup"] = base / r["seconds_per_frame"]
        r["max_abs_diff"] = diff
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=120)
    table = Table(title=f"full-size VOTES x2 over a stream, CPU ({os.cpu_count()} cores): shared frame features "
                        "(target >= 1.15x)", title_justify="left")
    for col in ("frame features", "LQ", "frames", "s per output frame", "speed-up", "max |difference|"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row("shared" if r["shared_features"] else "per window", r["lq"], str(r["frames"]),
                      f"{r['seconds_per_frame']:.2f}", f"{r['speedup']:.2f}x", f"{r['max_abs_diff']:.1e}")
    console.print(table)
