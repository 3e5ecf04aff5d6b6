"""Timing work that may run asynchronously: CUDA events on a GPU, the host clock elsewhere.

On CUDA a kernel launch returns before the kernel has run, so a host clock around it measures the launch, not
the work. `SectionClock` adds up named sections of a loop (e.g. "metric") with a pair of CUDA events per section,
read once at the end (`totals`, one synchronisation); on the CPU the work is done when the call returns and the
host clock is right. `median_seconds` times a callable the same way, after a warm-up call; `steady_seconds` times
a run of calls back to back, after warm-up calls, with one synchronisation before and one after.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch


class SectionClock:
    """Seconds spent in named sections. `with clock.section("metric"): ...`; `clock.totals()` at the end."""

    def __init__(self, device: torch.device | str, names: tuple[str, ...] = ()):
        self.device = torch.device(device)
        self.events = self.device.type == "cuda"
        self.host: dict[str, float] = {name: 0.0 for name in names}
        self.pairs: dict[str, list] = {name: [] for name in names}

    @contextlib.contextmanager
    def section(self, name: str):
        if self.events:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self.pairs.setdefault(name, []).append((start, end))
        else:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self.host[name] = self.host.get(name, 0.0) + time.perf_counter() - t0

    def add_host(self, name: str, seconds: float) -> None:
        """Host time that is the section's whole cost (e.g. waiting for a decoded frame)."""
        self.host[name] = self.host.get(name, 0.0) + seconds

    def totals(self) -> dict[str, float]:
        """Seconds per section: host time plus, on CUDA, the events' elapsed time (waits for them once)."""
        out = dict(self.host)
        if self.events and any(self.pairs.values()):
            torch.cuda.synchronize(self.device)
        for name, pairs in self.pairs.items():
            out[name] = out.get(name, 0.0) + sum(a.elapsed_time(b) for a, b in pairs) / 1e3
        return out


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA); nothing elsewhere (the work is done when a call returns)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steady_seconds(fn: Callable[[], object], device: torch.device | str, iters: int = 10, warmup: int = 2) -> float:
    """Seconds per call of `fn` in the steady state, as a long run sees it.

    `warmup` calls first, untimed (kernels chosen, cuDNN autotuned where it is on, caches and the allocator
    filled); then one synchronisation, `iters` calls back to back, one synchronisation, and the host time
    between the two divided by `iters`. Nothing inside the timed calls waits for the device, so its queue
    stays full as in a real run (a synchronisation per call would add a launch gap per call)."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(max(1, iters)):
        fn()
    synchronize(device)
    return (time.perf_counter() - t0) / max(1, iters)


def median_seconds(fn: Callable[[], object], device: torch.device | str, repeat: int = 3) -> float:
    """The median time of `repeat` calls of `fn` after one warm-up call (CUDA events on a GPU)."""
    device = torch.device(device)
    fn()
    times = []
    for _ in range(max(1, repeat)):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
