"""Devices and processes: which torch device to run on, and joining a torchrun process group.

Training, `bench` and `restore` all start here, so `--device auto|cpu|cuda[:N]` means the same in each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from uvssm.base.errors import UvssmError


@dataclass
class Distributed:
    """This process's place among torchrun's processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def pick_device(name: str | None, local_rank: int = 0) -> torch.device:
    """`auto` (or None) is CUDA when available, else CPU; a bare `cuda` is this process's local GPU."""
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UvssmError("--device cuda: no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def setup_device(name: str | None) -> tuple[Distributed, torch.device]:
    """Join torchrun's group (if launched by it) with the backend `name` implies, then pick the device."""
    wants_cuda = name in (None, "auto", "cuda") and torch.cuda.is_available()
    info = init_distributed(torch.device("cuda" if wants_cuda else "cpu"))
    return info, pick_device(name, info.local_rank)
