"""Device choice as `--device` means it in train, bench and restore."""

from __future__ import annotations

import pytest
import torch

from uvssm.base.devices import setup_device
from uvssm.base.errors import UvssmError


def test_auto_and_cpu_run_on_the_cpu_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for name in ("cpu", *(() if torch.cuda.is_available() else ("auto", None))):
        info, device = setup_device(name)
        assert device == torch.device("cpu") and (info.rank, info.world_size, info.main) == (0, 1, True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UvssmError, match=r"^--device cuda: no CUDA device is available$"):
        setup_device("cuda")


class _FakeCuda:
    """What only a CUDA machine has, patched in: two GPUs, `set_device`, and a process group that records how it
    was started (and when, against set_device)."""

    def __init__(self, monkeypatch, rank: int, world: int):
        import torch.distributed as dist

        self.calls: list[tuple] = []
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "set_device", lambda d: self.calls.append(("set_device", torch.device(d))))
        monkeypatch.setattr(dist, "is_initialized", lambda: False)
        monkeypatch.setattr(dist, "init_process_group",
                            lambda backend, **kw: self.calls.append(("init", backend, kw)))
        monkeypatch.setattr(dist, "get_rank", lambda: rank)
        monkeypatch.setattr(dist, "get_world_size", lambda: world)


@pytest.mark.parametrize("name", ["cuda", "auto", None])
def test_torchrun_ranks_take_their_local_gpu_set_before_nccl(monkeypatch, name):
    fake = _FakeCuda(monkeypatch, rank=1, world=2)
    info, device = setup_device(name)
    assert device == torch.device("cuda", 1) and (info.rank, info.local_rank, info.world_size) == (1, 1, 2)
    (first, cuda1), (init, backend, kw) = fake.calls
    assert (first, cuda1, init, backend) == ("set_device", torch.device("cuda", 1), "init", "nccl")
    assert kw["device_id"] == torch.device("cuda", 1)
    assert kw["timeout"].total_seconds() >= 3600  # rank 0 validates or gathers while the others wait


def test_torchrun_refuses_one_gpu_index_for_every_rank(monkeypatch):
    fake = _FakeCuda(monkeypatch, rank=1, world=2)
    with pytest.raises(UvssmError, match=r"^--device cuda:0 under torchrun: each of the 2 processes takes the GPU"):
        setup_device("cuda:0")
    assert fake.calls == []  # refused before any group is joined


def test_torchrun_on_the_cpu_joins_gloo_without_a_device(monkeypatch):
    fake = _FakeCuda(monkeypatch, rank=0, world=2)
    monkeypatch.setenv("UVSSM_DIST_TIMEOUT", "90")
    info, device = setup_device("cpu")
    assert device == torch.device("cpu") and info.main
    [(init, backend, kw)] = fake.calls
    assert (init, backend, kw["timeout"].total_seconds()) == ("init", "gloo", 90) and "device_id" not in kw


def test_a_device_name_that_is_none_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UvssmError, match=r"^--device gpu0: not a device"):
        setup_device("gpu0")


def test_cudnn_autotune_is_on_while_the_block_runs_then_as_before():
    from uvssm.base.devices import cudnn_autotune

    before = torch.backends.cudnn.benchmark
    try:
        for start in (False, True):
            torch.backends.cudnn.benchmark = start
            with cudnn_autotune(torch.device("cuda", 0)):
                assert torch.backends.cudnn.benchmark is True
            assert torch.backends.cudnn.benchmark is start
            with cudnn_autotune(torch.device("cpu")):
                assert torch.backends.cudnn.benchmark is start
    finally:
        torch.backends.cudnn.benchmark = before


# ---- on a GPU only (the device check runs this file): what the CPU tests above could only patch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_cuda_section_clock_times_the_kernels_not_their_launch():
    """A queued 4096² matmul chain: the host returns at once, the events see the work (as a synced host clock)."""
    import time

    from uvssm.base.timing import SectionClock

    a = torch.rand(4096, 4096, device="cuda")
    (a @ a).sum().item()
    clock = SectionClock("cuda", ("metric",))
    t0 = time.perf_counter()
    with clock.section("metric"):
        for _ in range(20):
            a = (a @ a).clamp_(0, 1)
    launched = time.perf_counter() - t0
    torch.cuda.synchronize()
    synced = time.perf_counter() - t0
    spent = clock.totals()["metric"]
    assert 0.5 * synced <= spent <= 1.1 * synced and spent > launched


@cuda
def test_cuda_dcn_backend_choice_runs_and_tf32_is_restored():
    from models.inference import Stage, choose_dcn_backend
    from models.ops.deform_conv import available_backends, deform_conv2d
    from models.registry import create_model

    model = create_model("votes-tiny", 2).eval().cuda()
    chosen = choose_dcn_backend([Stage(model, 5, 2)], torch.device("cuda"), True, (128, 72))
    assert chosen in available_backends("cuda")
    before = torch.backends.cuda.matmul.allow_tf32
    x = torch.rand(1, 16, 24, 32, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = deform_conv2d(x, torch.zeros(1, 18, 24, 32, device="cuda"), torch.rand(16, 16, 3, 3, device="cuda"),
                            padding=1)
    assert torch.isfinite(out).all() and torch.backends.cuda.matmul.allow_tf32 == before


@cuda
def test_cuda_recurrent_chunk_fits_the_free_memory():
    from models.inference import Stage, fit_chunk
    from models.registry import create_model

    stage = Stage(create_model("basicvsr-tiny", 2).eval().cuda(), 3, 2, kind="recurrent", chunk=100)
    assert fit_chunk(stage, (96, 64), torch.device("cuda"), True) == 100  # a tiny model: the whole clip fits
