"""`uvssm.base.numerics`: torch's CPU kernels pinned to AVX2 in a fresh process, whatever the
environment asked for, and a refusal where torch has already chosen wider kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASK_AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "MKL_CBWR": "AUTO"}


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)})


def _has_avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def test_pins_override_what_the_environment_asks_for():
    done = _python("import json; from uvssm.base.numerics import pin_numerics; print(json.dumps(pin_numerics(3)))",
                   ASK_AVX512)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["cpu_capability"] in ("AVX2", "DEFAULT")  # DEFAULT: a processor without AVX2
    assert record["pins"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                              "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert record["torch_threads"] == 3 and record["deterministic_algorithms"]
    assert not record["deterministic_warn_only"]


@pytest.mark.skipif(not _has_avx512(), reason="no AVX-512 here: torch cannot have chosen wider kernels")
def test_too_late_is_refused_in_one_line():
    """torch has already run an op with the machine's AVX-512 kernels: pinning now would change
    nothing, so it is refused, naming the kernels and what to set instead."""
    done = _python("import torch; torch.ones(8).sum(); from uvssm.base.numerics import pin_numerics; pin_numerics(2)",
                   {k: "" for k in ASK_AVX512} | {"ATEN_CPU_CAPABILITY": "avx512"})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "UvssmError: torch already runs AVX512 kernels in this process" in last
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in last
