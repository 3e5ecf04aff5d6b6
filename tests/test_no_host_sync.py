"""Every model's forward, the metrics, a training step and a bench shard keep to their device and read
nothing back to the host but what they must (`.item()`, `float(t)`, `bool(t)`, `.tolist()`, `.cpu()`): on CUDA
each such read stalls the stream, and it breaks `torch.compile` graphs. Checks that run on a CPU-only machine
(tests/host_reads.py):
- a dispatch mode sees every aten call, including the one that every tensor-to-Python read goes
  through (`aten._local_scalar_dense`);
- the forward runs on PyTorch's `meta` device, where no value can be read at all, and where a
  tensor made on the CPU inside the forward meets the model's tensors with a device error in
  element-wise ops and concatenation (not in every op: conv2d lets it pass); there `DeviceReads` counts
  every read of a value (answered with zeros, so the code runs on as on a GPU).
"""

from __future__ import annotations

import pytest
import torch

from models.registry import create_model, get_spec, list_models
from tests.host_reads import DeviceReads, HostReads
from uvssm.base.progress import TrainIter


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
    from models.inference import count_macs
    from models.inference import Stage

    probe = _Probe().to(device="meta", dtype=torch.bfloat16)
    count_macs([Stage(probe, 5, 1)], (64, 64))
    assert probe.seen == [("meta", torch.bfloat16)]


def test_the_device_read_counter_sees_copies_and_scalar_reads_of_meta_tensors():
    x = torch.ones(3, device="meta")
    with DeviceReads() as mode:
        assert x.cpu().tolist() == [0.0, 0.0, 0.0]
        assert not bool(x.sum() > 0)
        float(torch.ones(2).sum())  # a CPU tensor: no device read
    assert mode.reads == ["copy (3,)", "scalar ()"]


def test_metrics_read_nothing_back():
    """PSNR and SSIM of a batch run on the device to the end (the SSIM window's taps were read back from the
    device on every call); on `meta` a read is an error, so the call itself is the check."""
    from uvssm.base.metrics import MetricConfig, psnr_ssim

    for device in ("cpu", "meta"):
        pred = torch.rand(2, 3, 40, 48, device=device)
        gt = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8, device=device)
        with HostReads() as scalar, DeviceReads() as reads:
            p, s = psnr_ssim(pred, gt, MetricConfig("y", 2))
        assert (p.device.type, s.device.type) == (device, device)
        assert not scalar.reads and not reads.reads, (device, scalar.reads, reads.reads)


@pytest.mark.parametrize("name", ["tga-tiny", "rsdn-tiny", "bicubic"])
def test_a_bench_shard_reads_its_scores_back_once(name, tiny_reds, tmp_path):
    """One shard of `uvssm bench` end to end (decode, upload, restore, score) on the `meta` device, for a window
    model, a recurrent one and bicubic: the only read is the shard's scores at its end (10 frames, 2 columns)."""
    from benchmarks.options import BenchOptions
    from models.inference import InferenceOptions
    from benchmarks.scoring import bench_clip
    from models.trained import TrainedModel, stage_for
    from uvssm.base.datasets import open_dataset
    from uvssm.base.metrics import MetricConfig

    ds = open_dataset(tiny_reds, split="test", scale=2, qp=28)
    meta = torch.device("meta")
    stages = [] if name == "bicubic" else [stage_for(name, create_model(name, 2).eval().to(meta), 2)]
    opts = BenchOptions([name], tiny_reds, tmp_path, qp=28, save_frames=0, inference=InferenceOptions(batch=2))
    with DeviceReads() as mode:
        rows = bench_clip(TrainedModel(name, stages, [], None), ds.clips[0], ds, opts, MetricConfig("y", 2), meta,
                          "key", None, start=0, end=10)
    assert len(rows) == 10
    assert mode.reads == ["copy (10, 2)"]


def _tiny_training(device):
    """TGA-tiny's restoration stage (no deformable convolution: quick on `meta`)."""
    from models.inference import Stage
    from models.training import loop
    from models.training.config import load_config

    cfg = load_config("tga-tiny-sample", ["batch_size=2", "gt_size=16", "periods=[6]", "log_every=3",
                                          "val_every=100", "save_every=100", "cache_mb=0", "warmup_iter=0"])
    torch.manual_seed(0)
    model = create_model("tga-tiny", 2).to(device)
    return cfg, model, loop.restoration_stage(model, cfg, Stage(model, 7, 2, 1), device)


def test_a_training_step_reads_nothing_back():
    from models.training import loop

    meta = torch.device("meta")
    cfg, model, parts = _tiny_training(meta)
    optimizer = torch.optim.Adam(parts.groups, lr=1e-4)
    batch = {"lq": torch.rand(2, 7, 3, 8, 8), "gt": torch.rand(2, 3, 16, 16)}
    with DeviceReads() as mode:
        for _ in range(2):
            loss = loop.train_step(model, parts, optimizer, batch)
    assert loss.device.type == "meta" and mode.reads == []


def test_the_training_loop_reads_the_loss_once_per_log_window(tmp_path):
    """Six iterations logged every three: two reads in all (the loop read the loss twice per iteration)."""
    from models.inference import Stage
    from models.training import loop
    from tests.test_training import _array_clip

    cfg, model, _ = _tiny_training("cpu")
    seen = []
    with DeviceReads() as mode:
        def progress(event):
            if isinstance(event, TrainIter):
                seen.append((event.iteration, len(mode.reads)))
        loop.train(model, cfg, [_array_clip("a", seed=1)], [], tmp_path, meta={"model": "tga-tiny"},
                   device=torch.device("meta"), progress=progress, runner=Stage(model, 7, 2, 1))
    assert seen == [(3, 1), (6, 2)]
