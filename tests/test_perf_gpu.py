"""The GPU script's code paths, run on the CPU with tiny models (`--quick --device cpu`)."""

from __future__ import annotations

import math
import time

from benchmarks.perf import gpu as perf_gpu


def test_quick_gpu_script_measures_every_path_and_agrees_with_the_cpu(monkeypatch):
    import contextlib

    import benchmarks.harness  # noqa: F401 - imported before the patches below: bench keeps its own references
    import benchmarks.scoring  # noqa: F401
    import models.inference
    import uvssm.base.devices

    autotuned, restore_calls = [], []  # restore_range runs under cuDNN autotuning, as bench does
    real_autotune, real_restore_range = uvssm.base.devices.cudnn_autotune, models.inference.restore_range

    @contextlib.contextmanager
    def autotune(device):
        autotuned.append(True)
        with real_autotune(device):
            yield
        autotuned.pop()

    def restore_range(*args, **kwargs):
        restore_calls.append(bool(autotuned))
        return real_restore_range(*args, **kwargs)

    monkeypatch.setattr(uvssm.base.devices, "cudnn_autotune", autotune)
    monkeypatch.setattr(models.inference, "restore_range", restore_range)
    rows = perf_gpu.run("cpu", quick=True)
    assert restore_calls and all(restore_calls)
    checks = [r["check"] for r in rows]
    assert any("fp32" in c for c in checks) and any("bf16" in c for c in checks)
    assert any(c.startswith("bench end to end") for c in checks) and any(c.startswith("training step") for c in checks)
    assert any(c.startswith("bench start-up") for c in checks)
    assert any(c.startswith("restore_range") and "10 frames already on the device" in c for c in checks)
    assert any(c.startswith("PSNR+SSIM by BasicSR's CPU code") and "CPU cores" in c for c in checks)
    for r in rows:
        if r["value"] is None:  # torchvision's DCN where torchvision does not import
            assert "torchvision" in r["check"]
            continue
        if r["check"].startswith("bench start-up"):
            assert r["value"] >= 0, r
            continue
        assert math.isfinite(r["value"]) and r["value"] >= 0, r
        if r["unit"].startswith("max"):
            assert r["value"] <= 1e-6, r  # same device here: the paths must agree exactly
        else:
            assert r["value"] > 0, r


def test_the_basicsr_baseline_scores_as_the_metric_tests_reference():
    """benchmarks.basicsr_cpu (the speed baseline) against the metric tests' own transcription of BasicSR."""
    import numpy as np

    from benchmarks import basicsr_cpu
    from tests.test_metrics import _basicsr_reference

    rng = np.random.default_rng(7)
    gt = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    got, want = basicsr_cpu.psnr_ssim_y(pred, gt, 2), _basicsr_reference(pred, gt, 2, y=True)
    assert abs(got[0] - want[0]) < 1e-9 and abs(got[1] - want[1]) < 1e-12


# --- steady states: warmed up, no synchronisation inside the timed calls (#41 item 12) ------------------------

def _cuda_recorder(monkeypatch, log):
    """torch.cuda.synchronize and torch.cuda.Event (CUDA-only calls) as recorders that run on the CPU build."""
    import torch

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            log.append("event")
            self.t = time.perf_counter()

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    monkeypatch.setattr(torch.cuda, "Event", Event)


def test_steady_seconds_synchronises_once_before_and_once_after_the_timed_calls(monkeypatch):
    import torch

    from uvssm.base.timing import steady_seconds

    log, calls = [], []

    def fn():
        calls.append(None)
        log.append("call")
        time.sleep(0.3 if len(calls) <= 2 else 0.01)  # the first calls are slow (kernels chosen, autotuned)

    _cuda_recorder(monkeypatch, log)
    seconds = steady_seconds(fn, torch.device("cuda"), iters=5, warmup=2)
    assert log == ["call"] * 2 + ["sync"] + ["call"] * 5 + ["sync"]
    assert 0.01 <= seconds < 0.1  # the warm-up calls are not in it


def test_the_votes_forward_stamps_dcns_with_events_and_synchronises_twice(monkeypatch):
    """benchmarks/perf/votes.py timed each DCN with a synchronisation before and after it (40 per VOTES
    forward, inside the timed forward); now events stamp them and the run synchronises once either side."""
    import torch

    from benchmarks.perf.votes import DcnClock, time_forward

    log = []
    _cuda_recorder(monkeypatch, log)

    class Slow(torch.nn.Module):
        def forward(self, x):
            time.sleep(0.02)
            return x

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Slow(), Slow()

        def forward(self, x):
            log.append("call")
            return self.b(self.a(x) + 1)

    net, clock = Net(), DcnClock("cuda")
    clock.hook(net.a)
    clock.hook(net.b)
    x = torch.zeros(1)
    seconds, dcn = time_forward(lambda: net(x), "cuda", repeat=3, clock=clock, warmup=1)
    timed = log[log.index("sync"):]
    assert log.count("sync") == 2 and timed[0] == "sync" and timed[-1] == "sync"
    assert timed[1:-1] == ["call", "event", "event", "event", "event"] * 3
    assert 0.04 <= dcn <= seconds < 0.2


def test_all_models_times_warm_calls(monkeypatch):
    """`python -m benchmarks models` timed one cold call: a model whose first call is slow (0.6 s: kernels
    chosen, caches filled) showed it in ms/frame. The warm-up call is not timed now."""
    import models.registry

    real = models.registry.create_model

    def create_model(*args, **kwargs):
        model = real(*args, **kwargs)
        first = []

        def slow_first_call(module, inputs):
            if not first:
                first.append(True)
                time.sleep(0.6)

        model.register_forward_pre_hook(slow_first_call)
        return model

    monkeypatch.setattr(models.registry, "create_model", create_model)
    from benchmarks.perf import all_models as perf_models

    rows = perf_models.run(size=(16, 16), frames=3, only=["tga-tiny"])
    assert rows[0]["ms_per_frame"] < 300, rows


def test_bench_per_frame_cost_and_start_up_from_two_runs():
    """A run costing 3 s of start-up and 0.1 s a frame, seen at 20 and 100 frames."""
    per_frame, start_up = perf_gpu.per_frame_and_start_up((20, 3 + 20 * 0.1), (100, 3 + 100 * 0.1))
    assert math.isclose(per_frame, 0.1) and math.isclose(start_up, 3.0)
    assert perf_gpu.per_frame_and_start_up((20, 5.0), (100, 4.9)) == (None, None)  # noise above the frames' cost
