"""The GPU script's code paths, run on the CPU with tiny models (`--quick --device cpu`)."""

from __future__ import annotations

import math

from benchmarks import perf_gpu


def test_quick_gpu_script_measures_every_path_and_agrees_with_the_cpu():
    rows = perf_gpu.run("cpu", quick=True)
    checks = [r["check"] for r in rows]
    assert any("fp32" in c for c in checks) and any("bf16" in c for c in checks)
    assert any(c.startswith("bench end to end") for c in checks) and any(c.startswith("training step") for c in checks)
    for r in rows:
        if r["value"] is None:  # torchvision's DCN where torchvision does not import
            assert "torchvision" in r["check"]
            continue
        assert math.isfinite(r["value"]) and r["value"] >= 0, r
        if r["unit"].startswith("max"):
            assert r["value"] <= 1e-6, r  # same device here: the paths must agree exactly
        else:
            assert r["value"] > 0, r
