"""Results that must not depend on the machine's state (#41 items 4, 5, 8, 11), shown on the CPU:

- a recurrent chunk sized by the GPU's memory comes out the same whatever model ran before (a stand-in GPU
  accounts the CPU run as CUDA's caching allocator would, with cuDNN's autotune workspaces);
- under torchrun every rank runs rank 0's DCN backend, recorded in the run key, and torchvision's whole-map
  im2col buffer is weighed against the free memory;
- the DFM saved beside a frame is the one the bf16 forward used;
- a channels-last VOTES forward converts no feature map or weight at its deformable convolutions.

Run as a script (`python tests/test_gpu_state.py worker DATA WEIGHTS OUT`) it is one torchrun rank of the test below.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from models.inference import InferenceOptions, Stage, choose_dcn_backend, prepare, restore_stage
from models.ops import deform_conv
from models.registry import create_model, get_spec

aten = torch.ops.aten
CPU = torch.device("cpu")


def _stage(name: str, seed: int = 0, **kw) -> Stage:
    torch.manual_seed(seed)
    spec = get_spec(name)
    return Stage(create_model(name, 2).eval(), spec.num_frame, 2, spec.multiple, kind=spec.kind,
                 features=spec.features, **kw)


def _frames(n: int, size: tuple[int, int] = (24, 32), seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *size, generator=g) for _ in range(n)]


# ---- item 4: the recurrent chunk, whatever ran before

class FakeGpu(TorchDispatchMode):
    """A GPU's memory as `models.inference.DeviceMemory` reads it, for work that runs on the CPU inside this mode,
    accounted as CUDA's caching allocator does (PyTorch's documented behaviour, "CUDA semantics: memory
    management"): `allocated` is the bytes of live tensors made in the mode; the allocator keeps what it once
    reserved (`reserved`, the high-water mark since the last `empty_cache`), and the driver's free memory
    (`mem_get_info`) is what no process reserved. cuDNN: the first convolution of a shape and `deterministic`
    setting (its plan cache's key, whatever `benchmark` is) under `torch.backends.cudnn.benchmark` times candidate
    algorithms with workspaces of `tune_bytes` at once; a cached plan or a heuristic one needs none here."""

    def __init__(self, total: int, context: int = 0, tune_bytes: int = 0):
        super().__init__()
        self.device = CPU
        self.total, self.context, self.tune_bytes = total, context, tune_bytes
        self.live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors holding it]
        self.held: set[int] = set()  # ids of the tensors counted
        self.allocated_bytes = self.peak_bytes = self.reserved_bytes = 0
        self.plans: set[tuple] = set()
        self.tracking = True

    # DeviceMemory's methods
    def synchronize(self) -> None:
        pass

    def empty_cache(self) -> None:
        self.reserved_bytes = self.allocated_bytes

    def reset_peak(self) -> None:
        self.peak_bytes = self.allocated_bytes

    def allocated(self) -> int:
        return self.allocated_bytes

    def peak(self) -> int:
        return self.peak_bytes

    def mem_get_info(self) -> int:
        return self.total - self.context - self.reserved_bytes

    def available(self) -> int:
        return self.mem_get_info() + self.reserved_bytes - self.allocated_bytes

    # the accounting
    def _high(self, extra: int = 0) -> None:
        self.peak_bytes = max(self.peak_bytes, self.allocated_bytes + extra)
        self.reserved_bytes = max(self.reserved_bytes, self.allocated_bytes + extra)

    def _drop(self, key: int, tid: int) -> None:
        self.held.discard(tid)
        entry = self.live[key]
        entry[1] -= 1
        if not entry[1]:
            self.allocated_bytes -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args, kwargs=None):
        kwargs = kwargs or {}
        if self.tracking and func is aten.convolution.default:
            key = (tuple(args[0].shape), tuple(args[1].shape), torch.backends.cudnn.deterministic)
            if key not in self.plans:
                self.plans.add(key)
                if torch.backends.cudnn.benchmark:
                    self._high(self.tune_bytes)
        out = func(*args, **kwargs)
        if not self.tracking:
            return out
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in self.held:
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key not in self.live:
                if key in inputs or storage.nbytes() == 0:  # an alias of a tensor made outside the mode
                    continue
                self.live[key] = [-(-storage.nbytes() // 512) * 512, 0]  # the allocator's 512-byte rounding
                self.allocated_bytes += self.live[key][0]
            self.live[key][1] += 1
            self.held.add(id(t))
            weakref.finalize(t, self._drop, key, id(t))
        self._high()
        return out


class _Recurrent(torch.nn.Module):
    """A small recurrent ×2 model: a hidden state carried from frame to frame (so its outputs depend on where a
    chunk starts), convolutions of one shape whatever the seed."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.step = torch.nn.Conv2d(3 + 8, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = x.new_zeros(x.shape[0], 8, *x.shape[-2:])
        outs = []
        for i in range(x.shape[1]):
            state = torch.tanh(self.step(torch.cat([x[:, i], state], dim=1)))
            outs.append(torch.nn.functional.pixel_shuffle(self.head(state), 2))
        return torch.stack(outs, dim=1)


def _recurrent_stage(seed: int, **kw) -> Stage:
    return Stage(_Recurrent(seed).eval(), 3, 2, 1, kind="recurrent", **kw)


def _bench_like(names: list[int], gpu: FakeGpu, frames: list[torch.Tensor], overlap: int = 1) -> dict:
    """Each model in turn as `uvssm bench` runs it on a GPU: inside cuDNN autotuning (`cudnn_autotune`), set up by
    `prepare` (which sizes its chunk), run over the clip, its outputs taken to the host, then given back."""
    results = {}
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with gpu:
            for seed in names:
                loaded = _recurrent_stage(seed)
                options = InferenceOptions(device="cpu", chunk=100, chunk_overlap=overlap)
                [ready], _ = prepare([loaded], options, CPU, (frames[0].shape[-1], frames[0].shape[-2]), memory=gpu)
                outs = list(restore_stage(frames, ready))
                gpu.tracking = False
                results[seed] = (ready.chunk, torch.stack(outs).clone())  # on the host
                gpu.tracking = True
                del outs, ready, loaded
                gc.collect()  # the model is gone (on a GPU: moved to the host)
    finally:
        torch.backends.cudnn.benchmark = before
    return results


def _calibrated_gpu(frames: list[torch.Tensor], chunk: int, overlap: int) -> Callable[[], FakeGpu]:
    """Fresh stand-in GPUs whose free memory holds about `chunk` output frames of `_Recurrent` (and its context),
    by the stand-in's own count of a 2- and a 4-frame sequence; autotuning takes 3 frames' worth at once."""
    probe = FakeGpu(total=1 << 40)
    stage = _recurrent_stage(0)
    peaks = []
    with probe, torch.no_grad():
        for n in (2, 4):
            x = torch.stack(frames[:n]).unsqueeze(0).clone()
            probe.reset_peak()
            base = probe.allocated()
            stage.model(x)
            peaks.append(probe.peak() - base)
            del x
    per_frame = (peaks[1] - peaks[0]) / 2
    fixed = peaks[0] - 2 * per_frame
    context = 1 << 30
    return lambda: FakeGpu(total=int(context + (fixed + (chunk + 2 * overlap + 0.5) * per_frame) / 0.9),
                           context=context, tune_bytes=int(3 * per_frame))


def test_a_recurrent_chunk_is_the_same_whatever_ran_before():
    frames = _frames(12, (16, 24))
    a, b = 1, 2  # two models (seeds) with the same convolution shapes
    gpu = _calibrated_gpu(frames, 4, 1)
    alone_a = _bench_like([a], gpu(), frames)[a]
    alone_b = _bench_like([b], gpu(), frames)[b]
    both = _bench_like([a, b], gpu(), frames)
    assert 2 <= alone_b[0] < len(frames) - 2  # the memory shortens the chunk: the test can fail
    assert both[a][0] == alone_a[0] and both[b][0] == alone_b[0]
    assert torch.equal(both[a][1], alone_a[1]) and torch.equal(both[b][1], alone_b[1])
    # the outputs do depend on the chunk: a row made with another one would differ
    other = list(restore_stage(frames, _recurrent_stage(b, chunk=alone_b[0] - 1, chunk_overlap=1)))
    assert not torch.equal(torch.stack(other), alone_b[1])


def test_the_chunk_and_the_dcn_backend_are_in_the_run_key():
    from benchmarks.options import BenchOptions
    from benchmarks.shards import run_key
    from models.trained import TrainedModel
    from uvssm.base.metrics import MetricConfig

    opts = BenchOptions(["basicvsr-tiny"], Path("."), Path("."), inference=InferenceOptions(dcn_backend="auto"))
    config = MetricConfig("y", 2)
    stage = Stage(torch.nn.Identity(), 15, 2, kind="recurrent", chunk=6, chunk_overlap=2)

    def key(chunk, backend):
        model = TrainedModel("m", [dataclasses.replace(stage, chunk=chunk)], [], "sha", dcn_backend=backend)
        return run_key(model, config, opts)

    assert key(6, "torch") != key(5, "torch")
    assert key(6, "torch") != key(6, "torchvision") and key(6, "torch") != key(6, None)


# ---- item 5: one DCN backend for every rank, weighed against the memory

def _twin_op(*args, **kwargs):
    """A second backend standing in for torchvision's op (not installed here): the pure-torch DCN."""
    return deform_conv._deform_conv2d_torch(args[0], args[1], args[2], args[3], deform_conv._pair(kwargs["stride"]),
                                            deform_conv._pair(kwargs["padding"]),
                                            deform_conv._pair(kwargs["dilation"]), kwargs["mask"])


def test_torchvision_buffer_is_the_kernels_im2col_matrix_and_outputs():
    """torchvision's deform_conv2d_forward_kernel: columns (C_in·kh·kw, n·H_out·W_out), n the largest divisor of
    the batch up to 32, and out, out_buf (B, C_out, H_out, W_out), float32. By hand at 960×540, 128 channels."""
    from models.layers import DCNv2Pack

    m = DCNv2Pack(128, 128, 3, padding=1)
    pixels = 960 * 540
    assert deform_conv.torchvision_buffer_bytes(m, (960, 540)) == 4 * (1152 * pixels + 2 * 128 * pixels)
    assert 1152 * pixels * 4 == pytest.approx(2.39e9, rel=1e-3)  # the "about 2.4 GB per call"
    assert deform_conv.torchvision_buffer_bytes(m, (960, 540), batch=6) == 4 * (6 * 1152 * pixels + 12 * 128 * pixels)
    assert deform_conv.torchvision_buffer_bytes(m, (960, 540), batch=35) == 4 * (7 * 1152 * pixels + 70 * 128 * pixels)


def test_torchvision_is_left_out_where_its_buffer_exceeds_the_free_memory(monkeypatch):
    monkeypatch.setattr(deform_conv, "_torchvision_op", _twin_op)
    monkeypatch.setattr(deform_conv, "_looked", True)
    monkeypatch.setattr(deform_conv, "measure_backends", lambda *a, **k: {"torch": 2.0, "torchvision": 1.0})
    stage = _stage("votes-tiny")
    need = max(deform_conv.torchvision_buffer_bytes(m, (64, 36), 2) for m in stage.model.modules()
               if isinstance(m, deform_conv.DeformConvBackend))
    choose = lambda free, asked="auto": choose_dcn_backend([stage], CPU, True, (64, 36), asked, batch=2,  # noqa: E731
                                                           free_bytes=free)
    assert choose(None) == choose(need) == "torchvision"  # faster, and it fits
    assert choose(need - 1) == "torch"
    assert {m.dcn_backend for m in stage.model.modules() if isinstance(m, deform_conv.DeformConvBackend)} == {"torch"}
    with pytest.raises(ValueError, match=r"'torchvision' needs .* GiB for its im2col buffers at batch 2"):
        choose(need - 1, "torchvision")
    # prepare weighs it against the device's available memory
    gpu = FakeGpu(total=need // 2)
    [ready], backend = prepare([_stage("votes-tiny")], InferenceOptions(device="cpu", batch=2), CPU, (64, 36),
                               memory=gpu)
    assert backend == "torch"
    # ranks: rank 0's choice everywhere, but not torchvision where another rank's memory cannot hold it
    words = []
    ranks = lambda *others: lambda word: words.append(word) or [word, *others]  # noqa: E731
    assert choose_dcn_backend([stage], CPU, True, (64, 36), batch=2, free_bytes=need,
                              share=ranks("torch fits")) == "torchvision"
    assert words == ["torchvision fits"]
    assert choose_dcn_backend([stage], CPU, True, (64, 36), batch=2, free_bytes=need,
                              share=ranks("torchvision tight")) == "torch"


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, tested on Linux")
def test_every_torchrun_rank_runs_rank0s_dcn_backend_and_the_key_records_it(tmp_path, tiny_reds):
    """Rank 0 measures the pure-torch op faster, rank 1 the stand-in for torchvision's: both run rank 0's."""
    import pandas as pd

    from models import checkpoint
    from models.registry import model_kwargs

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    model = create_model("votes-tiny", 2)
    checkpoint.save(weights / "votes-tiny.pt", model, {"model": "votes-tiny", "scale": 2,
                                                        "model_kwargs": model_kwargs("votes-tiny", 2)})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29523",
           __file__, "worker", str(tiny_reds), str(weights), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert chosen == ["rank 0 measured torch faster", "rank 1 measured torchvision faster"]  # the test can fail
    rows = pd.read_parquet(tmp_path / "ddp" / "frames.parquet")
    assert sorted(rows["clip"].unique()) == ["240", "241"]  # one clip per rank
    assert set(rows["dcn_backend"]) == {"torch"} and rows["run_key"].nunique() == 1


def _worker(data: str, weights: str, out: str) -> None:
    """One torchrun rank: torchvision's stand-in installed, the backends' timings made to favour another backend on
    each rank, then `uvssm bench` of votes-tiny."""
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions

    rank = int(os.environ["RANK"])
    deform_conv._torchvision_op, deform_conv._looked = _twin_op, True
    faster = ("torch", "torchvision")[rank % 2]

    def measure(*args, **kwargs):
        print(f"rank {rank} measured {faster} faster", flush=True)
        return {faster: 1.0, ("torchvision" if faster == "torch" else "torch"): 2.0}

    deform_conv.measure_backends = measure
    run_bench(BenchOptions(["votes-tiny"], Path(data), Path(out), qp=28, weights=[weights], max_frames=2,
                           save_frames=0, inference=InferenceOptions(device="cpu")))


# ---- item 8: the DFM saved is the one the forward used

def test_the_saved_dfm_is_the_one_the_bf16_forward_used(tmp_path, monkeypatch):
    from benchmarks.options import BenchOptions
    from benchmarks.scoring import model_outputs, save_frame
    from models.inference import degradation_map
    from models.trained import TrainedModel
    from uvssm.base.frames import frames_to_tensor
    from uvssm.base.timing import SectionClock

    if not torch.backends.mkldnn.is_available():
        pytest.skip("bf16 on the CPU needs oneDNN")
    rng = np.random.default_rng(0)
    lq = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(6)]
    clip = type("Clip", (), {"name": "c", "n_frames": len(lq), "scale": 2, "lq": staticmethod(lambda i: lq[i])})()
    stage = _stage("votes-tiny")
    used = []
    estimate = stage.model.estimate_dfm
    monkeypatch.setattr(stage.model, "estimate_dfm", lambda x: used.append(estimate(x)) or used[-1])
    model = TrainedModel("votes-tiny", [stage], [], None, dcn_backend="torch")
    opts = BenchOptions(["votes-tiny"], tmp_path, tmp_path, inference=InferenceOptions(device="cpu", bf16=True))
    outs = list(model_outputs(model, clip, 0, len(lq), CPU, opts, SectionClock(CPU, ("load", "metric"))))
    assert len(outs) == len(used) == len(lq)  # one DFM per output frame, in order
    for index in (0, 3):
        save_frame(tmp_path, index, outs[index].cpu(), model, clip, CPU, opts.inference.bf16)
        saved = np.load(tmp_path / f"{index:08d}.dfm.npy")
        np.testing.assert_array_equal(saved, used[index][0, 0].float().numpy().astype(np.float16))
    # the map without autocast is another one: the test can fail
    window = lambda idx: frames_to_tensor(np.stack([lq[i] for i in idx]))  # noqa: E731
    assert not torch.equal(degradation_map(stage, window, len(lq), 3, CPU), used[3][0, 0].float())


# ---- item 11: --channels-last converts nothing at the deformable convolutions

def _layout(t: torch.Tensor) -> str:
    if t.dim() != 4:
        return "-"
    cl, nchw = t.is_contiguous(memory_format=torch.channels_last), t.is_contiguous()
    return "both" if cl and nchw else "channels_last" if cl else "contiguous" if nchw else "strided"


class _Conversions(TorchDispatchMode):
    """Copies of a 4-D tensor from one memory format to the other (`.contiguous(memory_format=...)`,
    `.to(memory_format=...)`, a `reshape` that cannot view): aten clone, _to_copy and copy_ whose source and result
    lie in different formats."""

    def __init__(self):
        super().__init__()
        self.seen: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args, kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (aten.clone.default, aten._to_copy.default, aten.copy_.default):
            src = args[1] if func is aten.copy_.default else args[0]
            a, b = _layout(src), _layout(out)
            if isinstance(src, torch.Tensor) and {a, b} <= {"channels_last", "contiguous", "strided"} and a != b:
                self.seen[(a, b, tuple(src.shape))] += 1
        return out


@pytest.mark.parametrize("grad", [False, True])
def test_the_dcn_takes_and_gives_channels_last_maps_with_the_contiguous_result(grad):
    """Two samples, 2 deformable groups, bias, offsets of a few pixels: values and gradients of the channels-last
    input equal the contiguous input's (the reference), and the output lies channels-last."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 8, 9, 11, generator=g)
    offset, mask = torch.randn(2, 36, 9, 11, generator=g) * 2, torch.rand(2, 18, 9, 11, generator=g)
    weight, bias = torch.randn(5, 8, 3, 3, generator=g), torch.randn(5, generator=g)

    def run(inp):
        inp = inp.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = deform_conv.deform_conv2d(inp, offset, weight, bias, padding=1, mask=mask, backend="torch")
        if grad:
            out.square().sum().backward()
        return out, inp.grad

    ref, ref_grad = run(x)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with _Conversions() as conversions:
        out, out_grad = run(x_cl)
    assert _layout(ref) == "contiguous" and _layout(out) == "channels_last"
    assert dict(conversions.seen) == {} or grad  # the backward may lay its gradients out as it likes
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    if grad:
        torch.testing.assert_close(out_grad, ref_grad, rtol=0, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 2])
def test_channels_last_votes_converts_nothing_at_its_dcns_and_gives_the_contiguous_output(batch):
    from models.layers import DCNv2Pack

    frames = _frames(5)
    stage = _stage("votes-tiny")
    plain = torch.stack(list(restore_stage(frames, stage, batch=batch)))  # the contiguous run: the reference
    [ready], _ = prepare([stage], InferenceOptions(device="cpu", channels_last=True), CPU, (32, 24))
    dcns = [m for m in ready.model.modules() if isinstance(m, DCNv2Pack)]
    assert len(dcns) == 4 and all(m.weight.is_contiguous() for m in dcns)  # read as the im2col matrix
    assert ready.model.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    layouts = collections.Counter()
    hooks = [m.register_forward_hook(lambda mod, args, out: layouts.update(
        [("in", _layout(args[0][:1])), ("out", _layout(out))])) for m in dcns]
    try:
        with _Conversions() as conversions:
            fast = torch.stack(list(restore_stage(frames, ready, batch=batch)))
    finally:
        for h in hooks:
            h.remove()
    assert dict(conversions.seen) == {}
    n = 20 * -(-len(frames) // batch)  # 4 DCNs for each of a window's 5 frames, per forward (of `batch` windows)
    assert layouts == {("in", "channels_last"): n, ("out", "channels_last"): n}
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(*sys.argv[2:5])
