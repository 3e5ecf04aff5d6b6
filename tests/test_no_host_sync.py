"""Every model's forward keeps to its device and never reads a tensor back to the host
(`.item()`, `float(t)`, `bool(t)`): on CUDA each such read stalls the stream, and it breaks
`torch.compile` graphs. Two checks that run on a CPU-only machine:
- a dispatch mode sees every aten call, including the one that every tensor-to-Python read goes
  through (`aten._local_scalar_dense`);
- the forward runs on PyTorch's `meta` device, where no value can be read at all, and where a
  tensor made on the CPU inside the forward meets the model's tensors with a device error in
  element-wise ops and concatenation (not in every op: conv2d lets it pass).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from models.registry import create_model, get_spec, list_models


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if "_local_scalar_dense" in name:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_a_host_read():
    with HostReads() as mode:
        float(torch.ones(2).sum())
    assert mode.reads


TINY = [n for n in list_models() if n.endswith("-tiny")] + ["stdf", "stdf-y"]


@pytest.mark.parametrize("name", TINY)
def test_forward_performs_no_host_read(name):
    spec = get_spec(name)
    scale = spec.scales[0]
    torch.manual_seed(0)
    model = create_model(name, scale).eval()
    frames = spec.num_frame if spec.kind == "window" else 3
    channels = getattr(model, "in_nc", 3)
    x = torch.rand(1, frames, channels, 32, 32)
    with torch.no_grad(), HostReads() as mode:
        model(x)
    assert not mode.reads, f"{name}: {sorted(set(mode.reads))}"


def test_the_meta_device_catches_a_tensor_left_on_the_cpu_and_a_host_read():
    with pytest.raises(RuntimeError):
        torch.ones(2, device="meta") + torch.ones(2)
    with pytest.raises(RuntimeError):
        float(torch.ones(2, device="meta").sum())


@pytest.mark.parametrize("name", TINY)
def test_forward_follows_the_models_device(name):
    spec = get_spec(name)
    model = create_model(name, spec.scales[0]).eval().to("meta")
    frames = spec.num_frame if spec.kind == "window" else 3
    x = torch.rand(1, frames, getattr(model, "in_nc", 3), 32, 32, device="meta")
    with torch.no_grad():
        out = model(x)
    assert out.device.type == "meta"


class _Probe(torch.nn.Module):
    """Records the device and dtype its input arrives on."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.seen = []

    def forward(self, x):
        self.seen.append((x.device.type, x.dtype))
        return self.conv(x[:, x.shape[1] // 2].to(self.conv.weight))


def test_mac_counting_follows_the_models_device_and_dtype():
    """The bench harness counts MACs with a probe input made on the model's device and in its
    dtype (it was made on the CPU in float32: a device mismatch on CUDA)."""
    from benchmarks.harness import count_macs
    from models.inference import Stage
    from models.trained import TrainedModel

    probe = _Probe().to(device="meta", dtype=torch.bfloat16)
    count_macs(TrainedModel("probe", [Stage(probe, 5, 1)], [], None), (64, 64))
    assert probe.seen == [("meta", torch.bfloat16)]
