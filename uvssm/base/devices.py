"""Devices and processes: which torch device to run on, and joining a torchrun process group.

Training, `bench` and `restore` all start here, so `--device auto|cpu|cuda[:N]` means the same in each.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import time
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


def current() -> Distributed:
    """This process's place in the process group it has joined (rank 0 of 1 when it has joined none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


POLL_S = 0.5  # how often a waiting rank looks for the others and for a failure: far inside the one minute a failure may take
_FAILED = "uvssm/failed"
_rounds = itertools.count()  # every rank waits in the same order, so round n is the same wait on all


class RankFailed(UvssmError):
    """Another rank failed: this one stops at its next wait, with that rank's error."""


def _store() -> dist.Store:
    """The process group's key-value store (torchrun's agent holds it: it outlives a rank that dies)."""
    return dist.distributed_c10d._get_default_store()


def _raise_if_failed(store: dist.Store) -> None:
    if store.check([_FAILED]):
        raise RankFailed(store.get(_FAILED).decode())


def exchange(dist_info: Distributed, value: str = "") -> list[str]:
    """Every rank's `value`, in rank order, once every rank has given its own: a barrier that carries a word.
    It waits on the process group's store, not in a collective, so a rank that failed (`ranks_fail_together`)
    ends the others' wait within POLL_S with its error, where a barrier would wait out UVSSM_DIST_TIMEOUT."""
    if dist_info.world_size <= 1:
        return [value]
    store, n = _store(), next(_rounds)
    keys = [f"uvssm/wait{n}/rank{r}" for r in range(dist_info.world_size)]
    store.set(keys[dist_info.rank], value)
    limit, start = collective_timeout().total_seconds(), time.monotonic()
    while not store.check(keys):
        _raise_if_failed(store)
        if time.monotonic() - start > limit:
            late = [r for r, key in enumerate(keys) if not store.check([key])]
            raise UvssmError(f"rank {dist_info.rank}: rank(s) {', '.join(map(str, late))} did not arrive within "
                             f"{limit:.0f} s (UVSSM_DIST_TIMEOUT)")
        time.sleep(POLL_S)
    return [store.get(key).decode() for key in keys]


def barrier(dist_info: Distributed) -> None:
    """Wait until every rank is here; a rank that failed meanwhile stops this one with its error (`exchange`)."""
    exchange(dist_info)


def _failure(rank: int, exc: BaseException) -> str:
    what = str(exc) if isinstance(exc, UvssmError) else f"{type(exc).__name__}: {exc}" if str(exc) else \
        type(exc).__name__
    return f"rank {rank} failed: {what}"


@contextlib.contextmanager
def ranks_fail_together(dist_info: Distributed):
    """An error raised in the block on one rank stops the others too: it is left in the store, where every rank's
    next `barrier`/`exchange` finds it and raises RankFailed "rank R failed: <R's error>"; rank R raises its own.
    The failure stays in the store for the process group's life: a process that catches it and goes on has
    lost its group (start a new torchrun job), as a collective's failure would leave it."""
    try:
        yield
    except BaseException as exc:
        if dist_info.world_size > 1 and not isinstance(exc, RankFailed):
            with contextlib.suppress(Exception):  # the store gone too: nothing to tell
                _store().compare_set(_FAILED, "", _failure(dist_info.rank, exc))  # the first failure stays
        raise


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
