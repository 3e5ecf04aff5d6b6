"""Seeing host reads without a GPU.

On CUDA, reading a tensor's values on the host (`.item()`, `float(t)`, `bool(t)`, `.tolist()`, `.cpu()`) waits
for all queued work: a sync. Two dispatch modes see such reads on a CPU-only machine:

- `HostReads` records every scalar read (`aten._local_scalar_dense`, which `.item()`, `float(t)` and `bool(t)`
  go through), on any device;
- `DeviceReads` is for code run on PyTorch's `meta` device, which holds shapes but no values: it records every
  read of a meta tensor's values (a scalar read, or a copy to the CPU) and answers it with zeros, so the code goes
  on as it would on a GPU, and the test counts its syncs.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "_local_scalar_dense" in name:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def _is_meta(x) -> bool:
    return isinstance(x, torch.Tensor) and x.device.type == "meta"


class DeviceReads(TorchDispatchMode):
    """Reads of `meta` tensors' values on the host, each as "op shape"; they return zeros."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default and _is_meta(args[0]):
            self.reads.append(f"scalar {tuple(args[0].shape)}")
            return False if args[0].dtype == torch.bool else 0
        if func is aten._to_copy.default and _is_meta(args[0]) and torch.device(
                kwargs.get("device") or "meta").type == "cpu":
            self.reads.append(f"copy {tuple(args[0].shape)}")
            return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        if func is aten.copy_.default and _is_meta(args[1]) and not _is_meta(args[0]):
            self.reads.append(f"copy_ {tuple(args[1].shape)}")
            return args[0].zero_()
        return func(*args, **kwargs)
