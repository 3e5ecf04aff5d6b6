"""Frames decoded ahead of the model on a thread pool and uploaded once each to the device (bench's input and
target frames)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from uvssm.base.timing import SectionClock


class FramesAhead:
    """Frames of a clip by index, decoded by a thread pool `depth` frames ahead of the caller and
    uploaded once each to `device` (from pinned memory, without blocking, on CUDA). Indices are
    asked in mostly increasing order; the last `keep` frames served are kept for re-reads (a
    recurrent chunk's context)."""

    def __init__(self, load: Callable[[int], np.ndarray], n: int, device: torch.device, clock: SectionClock,
                 dtype: torch.dtype = torch.float32, scale: bool = True, depth: int = 8, keep: int = 24,
                 clock_key: str = "load"):
        from concurrent.futures import ThreadPoolExecutor

        self.load, self.n, self.device, self.clock, self.dtype, self.scale = load, n, device, clock, dtype, scale
        self.clock_key = clock_key  # where the time spent waiting for a frame is added
        self.depth, self.keep = depth, keep
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uvssm-decode")
        self.pending: dict = {}
        self.served: dict[int, torch.Tensor] = {}

    def _decode(self, i: int) -> torch.Tensor:
        a = np.ascontiguousarray(self.load(i))
        x = torch.from_numpy(a if a.flags.writeable else a.copy()).permute(2, 0, 1)
        return x.pin_memory() if self.device.type == "cuda" else x

    def __call__(self, i: int) -> torch.Tensor:
        if i in self.served:
            return self.served[i]
        for j in range(i, min(self.n, i + self.depth)):
            if j not in self.pending and j not in self.served:
                self.pending[j] = self.pool.submit(self._decode, j)
        t0 = time.perf_counter()
        x = self.pending.pop(i).result().to(self.device, non_blocking=True).to(self.dtype)
        if self.scale:
            x = x.div_(255.0)
        self.clock.add_host(self.clock_key, time.perf_counter() - t0)  # the host waited: its clock is right
        self.served[i] = x
        for old in [k for k in self.served if k < i - self.keep]:
            del self.served[old]
        return x

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True)
