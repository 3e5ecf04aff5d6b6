"""Benchmark: forward time of full-size VOTES (config L) on one LQ window.

Default: one 5×3×270×480 window at ×2 on the CPU (torch's threads = cores), with the pure-torch
DCN and, where torchvision imports, torchvision's op. On CUDA it also runs the 960×540 window
(the UVSSM WeChat LQ size) in fp32 and bf16, and a training step at batch 16 of 64×64 patches.
Each case runs in a fresh child process so its peak memory is its own: CPU peak is the process's
maximum RSS, CUDA peak is torch's max allocated memory. Weights are random (timing only).

    python -m benchmarks votes [--device cpu|cuda] [--repeat 2]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def _case(device: str, h: int, w: int, dtype: str, backend: str, repeat: int, train_batch: int = 0) -> dict:
    import torch

    from models.ops import deform_conv
    from models.padding import run_padded
    from models.votes import VOTES

    if backend == "torchvision" and deform_conv.torchvision_deform_conv2d() is None:
        return {"skipped": "torchvision does not import"}
    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "no CUDA"}
    forced = backend

    def patched(*args, **kwargs):
        kwargs["backend"] = forced
        return original(*args, **kwargs)

    original = deform_conv.deform_conv2d
    import models.layers

    models.layers.deform_conv2d = patched
    torch.manual_seed(0)
    model = VOTES(scale=2).to(device)
    dcn_seconds = []
    for pack in [m for m in model.modules() if type(m).__name__ == "DCNv2Pack"]:
        pack.register_forward_pre_hook(lambda m, a: dcn_seconds.append(-_now(device)))
        pack.register_forward_hook(lambda m, a, o: dcn_seconds.append(_now(device)))
    autocast = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast(device, enabled=False)
    if train_batch:
        model.train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        x = torch.rand(train_batch, 5, 3, h, w, device=device)
        gt = torch.rand(train_batch, 3, 2 * h, 2 * w, device=device)
        times = []
        for i in range(repeat + 2):
            t0 = _now(device)
            with autocast:
                loss = torch.sqrt((model(x).float() - gt) ** 2 + 1e-12).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(_now(device) - t0)
        seconds = min(times[2:])
        dcn = None
    else:
        model.eval()
        x = torch.rand(1, 5, 3, h, w, device=device)
        with torch.no_grad(), autocast:
            model(x[..., :64, :64])  # warm-up
            times, dcn_share = [], []
            for _ in range(repeat):
                dcn_seconds.clear()
                t0 = _now(device)
                run_padded(model, x, 2)  # 270 rows are padded to 272: VOTES needs multiples of 4
                times.append(_now(device) - t0)
                dcn_share.append(sum(dcn_seconds))
        seconds = min(times)
        dcn = dcn_share[times.index(seconds)]
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": seconds, "dcn_seconds": dcn, "peak_mib": peak, "threads": torch.get_num_threads(),
            "its": (1 / seconds) if train_batch else None}


def _now(device: str) -> float:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


CASES = [  # (label, device, h, w, dtype, backend, train_batch)
    ("270x480 window, pure-torch DCN", "cpu", 270, 480, "fp32", "torch", 0),
    ("270x480 window, torchvision DCN", "cpu", 270, 480, "fp32", "torchvision", 0),
    ("540x960 window, pure-torch DCN", "cuda", 540, 960, "fp32", "torch", 0),
    ("540x960 window, torchvision DCN", "cuda", 540, 960, "fp32", "torchvision", 0),
    ("540x960 window, torchvision DCN", "cuda", 540, 960, "bf16", "torchvision", 0),
    ("540x960 window, pure-torch DCN", "cuda", 540, 960, "bf16", "torch", 0),
    ("training step, batch 16 of 64x64", "cuda", 64, 64, "fp32", "auto", 16),
    ("training step, batch 16 of 64x64", "cuda", 64, 64, "bf16", "auto", 16),
]


def run(device: str | None = None, repeat: int = 2) -> list[dict]:
    rows = []
    for label, dev, h, w, dtype, backend, batch in CASES:
        if device and dev != device:
            continue
        code = ("import json, sys; from benchmarks.perf.votes import _case; "
                f"print(json.dumps(_case({dev!r}, {h}, {w}, {dtype!r}, {backend!r}, {repeat}, {batch})))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            result = {"skipped": f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
        else:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"case": label, "device": dev, "dtype": dtype, **result})
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"VOTES config L x2, forward on one window ({os.cpu_count()} CPU cores; random weights)",
                  title_justify="left")
    for col in ("case", "device", "dtype", "seconds", "DCN share", "iterations/s", "peak memory (MiB)", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "skipped" in r:
            table.add_row(r["case"], r["device"], r["dtype"], "-", "-", "-", "-", r["skipped"])
            continue
        share = f"{100 * r['dcn_seconds'] / r['seconds']:.0f}%" if r.get("dcn_seconds") else "-"
        its = f"{r['its']:.2f}" if r.get("its") else "-"
        table.add_row(r["case"], r["device"], r["dtype"], f"{r['seconds']:.2f}", share, its, f"{r['peak_mib']:.0f}",
                      f"{r['threads']} threads" if r["device"] == "cpu" else "")
    console.print(table)
