"""Benchmark: forward time of full-size VOTES (config L) on one LQ window.

Default: one 5×3×270×480 window at ×2 on the CPU (torch's threads = cores), with the pure-torch
DCN and, where torchvision imports, torchvision's op. On CUDA it also runs the 960×540 window
(the UVSSM WeChat LQ size) in fp32 and bf16, and a training step at batch 16 of 64×64 patches.
Each case runs in a fresh child process so its peak memory is its own: CPU peak is the process's
maximum RSS, CUDA peak is torch's max allocated memory. Weights are random (timing only).
Times are steady states: untimed calls at the timed size first, then `--repeat` calls back to back between
one synchronisation before and one after (none inside: the DCN calls are stamped with CUDA events).

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
    autocast = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast(device, enabled=False)
    if train_batch:
        from uvssm.base.timing import steady_seconds

        model.train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        x = torch.rand(train_batch, 5, 3, h, w, device=device)
        gt = torch.rand(train_batch, 3, 2 * h, 2 * w, device=device)

        def step():
            with autocast:
                loss = torch.sqrt((model(x).float() - gt) ** 2 + 1e-12).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        seconds = steady_seconds(step, device, iters=repeat, warmup=2)
        dcn = None
    else:
        model.eval()
        clock = DcnClock(device)
        for pack in [m for m in model.modules() if type(m).__name__ == "DCNv2Pack"]:
            clock.hook(pack)
        x = torch.rand(1, 5, 3, h, w, device=device)
        with torch.no_grad(), autocast:
            # 270 rows are padded to 272: VOTES needs multiples of 4
            seconds, dcn = time_forward(lambda: run_padded(model, x, 2), device, repeat, clock)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": seconds, "dcn_seconds": dcn, "peak_mib": peak, "threads": torch.get_num_threads(),
            "its": (1 / seconds) if train_batch else None}


class DcnClock:
    """Start and end of each call of the hooked modules, stamped without waiting for the device: CUDA events
    on a GPU (read after the run's last synchronisation), the host clock elsewhere."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")
        self.pairs: list[tuple] = []
        self._open: list = []

    def _stamp(self):
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def hook(self, module) -> None:
        module.register_forward_pre_hook(lambda m, a: self._open.append(self._stamp()))
        module.register_forward_hook(lambda m, a, o: self.pairs.append((self._open.pop(), self._stamp())))

    def clear(self) -> None:
        self.pairs.clear()

    def seconds(self) -> float:
        """Seconds inside the hooked modules since `clear` (after a synchronisation, on a GPU)."""
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in self.pairs) / 1e3
        return sum(b - a for a, b in self.pairs)


def time_forward(forward, device: str, repeat: int, clock: DcnClock, warmup: int = 1) -> tuple[float, float]:
    """(seconds, seconds inside the clock's modules) per call of `forward` in the steady state: `warmup` untimed
    calls (at the timed size), then `repeat` calls back to back between one synchronisation before and one
    after (`uvssm.base.timing.steady_seconds`); the clock's stamps wait for nothing."""
    from uvssm.base.timing import steady_seconds

    for _ in range(warmup):
        forward()
    clock.clear()
    seconds = steady_seconds(forward, device, iters=repeat, warmup=0)
    return seconds, clock.seconds() / max(1, repeat)


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
