"""Benchmark: forward time per output frame of every full-size registered model at one LQ size.

Random weights (timing only), ×2 (STDF at ×1: it restores at LQ size), batch 1, no gradients,
the same runner as `uvssm bench` (sliding windows; recurrent models on a whole `--frames`-frame
sequence, time divided by its length), on frames already on the device. Also parameters and MACs per
frame (FlopCounterMode). Steady state: one untimed call first (kernels chosen, caches filled), then `repeat`
calls back to back between one synchronisation before and one after (`uvssm.base.timing.steady_seconds`).

    python -m benchmarks models [--device cpu|cuda] [--models a,b]
"""

from __future__ import annotations

import os


def run(size: tuple[int, int] = (180, 320), device: str = "cpu", frames: int = 10, bf16: bool = False,
        only: list[str] | None = None, repeat: int = 2) -> list[dict]:
    import torch

    from uvssm.base.timing import steady_seconds

    from models.inference import count_macs
    from models.inference import restore_stream
    from models.registry import MODELS, create_model, get_spec
    from models.trained import stage_for

    for name in only or []:
        get_spec(name)  # ValueError naming the unknown model and the known ones

    rows = []
    for name, spec in MODELS.items():
        if ("tiny" in name and not only) or (only and name not in only):
            continue
        scale = 1 if spec.scales == (1,) else 2
        torch.manual_seed(0)
        model = create_model(name, scale).to(device).eval()
        stage = stage_for(name, model, scale, chunk=frames)
        h, w = size
        channels = getattr(model, "in_nc", 3)
        clip = [torch.rand(channels, h, w).to(device)
                for _ in range(frames if spec.kind == "recurrent" else spec.num_frame)]
        n_out = len(clip) if spec.kind == "recurrent" else 1

        def call() -> None:  # recurrent: the whole sequence; window: one output frame (the first window only)
            for _ in restore_stream(clip, [stage], device=device, bf16=bf16, on_device=True):
                if spec.kind == "window":
                    break

        seconds = steady_seconds(call, device, iters=repeat, warmup=1) / n_out
        stage.model = model.cpu()
        macs = count_macs([stage], size)
        rows.append({"model": name, "scale": scale, "kind": spec.kind, "params": sum(p.numel() for p in model.parameters()),
                     "gmacs": macs / 1e9, "ms_per_frame": 1000 * seconds, "device": device,
                     "precision": "bf16" if bf16 else "fp32"})
        del model
    return rows


def print_table(rows: list[dict], size: tuple[int, int] = (180, 320), console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"forward time per output frame, LQ {size[1]}x{size[0]} ({os.cpu_count()} CPU cores; "
                        "random weights)", title_justify="left")
    for col in ("model", "scale", "kind", "params", "GMACs/frame", "ms/frame", "device"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], f"x{r['scale']}", r["kind"], f"{r['params']:,}", f"{r['gmacs']:.1f}",
                      f"{r['ms_per_frame']:.0f}", f"{r['device']} {r['precision']}")
    console.print(table)
