"""The GPU script's code paths, run on the CPU with tiny models (`--quick --device cpu`)."""

from __future__ import annotations

import math

from benchmarks.perf import gpu as perf_gpu


def test_quick_gpu_script_measures_every_path_and_agrees_with_the_cpu():
    rows = perf_gpu.run("cpu", quick=True)
    checks = [r["check"] for r in rows]
    assert any("fp32" in c for c in checks) and any("bf16" in c for c in checks)
    assert any(c.startswith("bench end to end") for c in checks) and any(c.startswith("training step") for c in checks)
    assert any(c.startswith("restore_range") and "10 frames already on the device" in c for c in checks)
    assert any(c.startswith("PSNR+SSIM by BasicSR's CPU code") and "CPU cores" in c for c in checks)
    for r in rows:
        if r["value"] is None:  # torchvision's DCN where torchvision does not import
            assert "torchvision" in r["check"]
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
