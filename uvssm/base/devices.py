"""Devices and processes: which torch device to run on, and joining a torchrun process group.

Training, `bench` and `restore` all start here, so `--device auto|cpu|cuda[:N]` means the same in each.
"""

from __future__ import annotations

import contextlib
import datetime
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


DEFAULT_TIMEOUT_S = 4 * 3600  # collectives and barriers: rank 0 validates or gathers while the others wait


def collective_timeout() -> datetime.timedelta:
    """How long a barrier waits for the slowest rank: $UVSSM_DIST_TIMEOUT seconds, default 4 hours (NCCL's own
    default, 10 minutes, is shorter than a full validation or a bench rank's last shard)."""
    return datetime.timedelta(seconds=float(os.environ.get("UVSSM_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1: NCCL bound to `device` (already set as this process's
    GPU) on CUDA, Gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device, timeout=collective_timeout())
        else:
            dist.init_process_group("gloo", timeout=collective_timeout())
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def pick_device(name: str | None, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """`auto` (or None) is CUDA when available, else CPU; a bare `cuda` is this process's local GPU (LOCAL_RANK
    under torchrun), which becomes the current CUDA device. Under torchrun an explicit `cuda:N` is refused: every
    process would take that one GPU."""
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UvssmError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UvssmError(f"--device {name}: no CUDA device is available")
        if device.index is not None and world_size > 1:
            raise UvssmError(f"--device {name} under torchrun: each of the {world_size} processes takes the GPU of "
                             "its LOCAL_RANK; pass --device cuda (choose GPUs with CUDA_VISIBLE_DEVICES)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def setup_device(name: str | None) -> tuple[Distributed, torch.device]:
    """Pick this process's device (under torchrun: the GPU of its LOCAL_RANK, set as current first), then join
    torchrun's group with the backend that device needs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(name, int(os.environ.get("LOCAL_RANK", "0")), world)
    return init_distributed(device), device


@contextlib.contextmanager
def cudnn_autotune(device: torch.device):
    """cuDNN's algorithm search (`cudnn.benchmark`) on while the block runs on a GPU (a run whose inputs keep one
    size gains), then the caller's setting again."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
