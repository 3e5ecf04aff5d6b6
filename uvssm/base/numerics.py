"""CPU numerics that are the same on every x86-64 machine.

torch picks its CPU kernels by what the processor offers: oneDNN (convolutions) and ATen (element-
wise and reduction kernels) use AVX-512 where it exists and AVX2 otherwise, and MKL chooses its own
code path. The kernels sum in different orders, so a training run's weights, and every number after
them, differ in the last bits between machines, and a few hundred steps later in the tables.
`pin_numerics` asks all three for AVX2 code, which every x86-64 machine of the last decade runs,
fixes the thread counts, and, when called before torch has run a kernel, makes one machine's numbers
every machine's. The variables are read when torch first uses each library, so it refuses when
torch already chose otherwise (`torch.backends.cpu.get_cpu_capability()` is not AVX2).

On GPUs, `CUBLAS_WORKSPACE_CONFIG` is what cuBLAS needs for deterministic algorithms (set too; a
GPU's numbers still follow its model, not only the code).
"""

from __future__ import annotations

import os

from uvssm.base.errors import UvssmError

PINS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: no AVX-512 / AMX convolution kernels
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen: the AVX2 builds of its vectorised kernels
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: its AVX2 code path
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # cuBLAS: deterministic on GPUs
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_numerics(threads: int) -> dict:
    """Set `PINS` and the thread counts in this process's environment, overriding what it asked for,
    then fix torch's threads and its deterministic algorithms (errors, not warnings, for an op that
    has none). Call it before torch runs anything; raises UvssmError where torch already chose AVX-512
    kernels. Returns what is in effect, for a run's record."""
    os.environ.update(PINS)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "DEFAULT"):  # DEFAULT: a machine without AVX2 (not x86-64, or very old)
        raise UvssmError(
            f"torch already runs {capability} kernels in this process, so its numbers would follow this machine: "
            f"start Python with {' '.join(f'{k}={v}' for k, v in PINS.items())} set, or pin before torch runs")
    deterministic(threads)
    return numerics_record()


def deterministic(threads: int) -> None:
    """Fix torch's CPU threads and make an op without a deterministic implementation an error (not
    a warning): the same numbers run after run on one machine (`pin_numerics`: on every machine)."""
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def numerics_record() -> dict:
    """What decides this process's numbers: torch's CPU kernels, the pins as set, threads, determinism."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "pins": {k: os.environ.get(k) for k in (*PINS, *THREAD_VARIABLES)},
            "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled()}


def fix_threads_or_pin(portable: bool, threads: int | None) -> dict | None:
    """The `--portable-numerics` / `--threads` options of `train` and `bench`: pin (2 threads unless
    given), or only fix the thread count, or leave torch as it is."""
    if portable:
        return pin_numerics(threads or 2)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return None
