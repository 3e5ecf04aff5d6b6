"""`python -m benchmarks models`: the rows it measures, and a clear error for an unknown model."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.perf import all_models as perf_models
from models.registry import create_model


def test_rows_for_chosen_models():
    rows = perf_models.run(size=(16, 16), frames=3, only=["comisr-tiny", "tga-tiny"])
    assert sorted(r["model"] for r in rows) == ["comisr-tiny", "tga-tiny"]
    for r in rows:
        assert r["params"] == sum(p.numel() for p in create_model(r["model"], 2).parameters())
        assert r["gmacs"] > 0 and r["ms_per_frame"] > 0 and r["scale"] == 2


def test_unknown_model_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "models", "--models", "tga,nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "unknown model 'nosuch'" in done.stderr.strip().splitlines()[-1]
