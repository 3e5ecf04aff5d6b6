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
