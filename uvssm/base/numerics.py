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
GPU's numbers still follow its model, not only the code). `train` and `bench` refuse `--portable-numerics` on a
CUDA device (`fix_threads_or_pin`): the numbers cannot be the same on another GPU, and the backward passes of
bilinear `interpolate`, `grid_sample` and reflection padding have no deterministic CUDA version
(`torch.use_deterministic_algorithms` lists them among the ops that raise), so the first training step would fail.
`uvssm demo`, whose GPU mode is documented as following the GPU, warns for them instead.

`device_record` is what a run records of the device beside `numerics_record`: the GPU, CUDA and cuDNN versions
and the float32 precision cuBLAS matrix products and cuDNN convolutions run at (cuDNN's default is TF32).
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


def runs_on_cuda(device: str | None) -> bool:
    """Whether `--device` (auto, cpu, cuda, cuda:N) runs on a CUDA GPU here: `auto` (or None) where CUDA is
    available, as `uvssm.base.devices.pick_device` chooses. A name that is not a device is left to pick_device."""
    import torch

    if device in (None, "auto"):
        return torch.cuda.is_available()
    try:
        return torch.device(device).type == "cuda"
    except (RuntimeError, TypeError):
        return False


def refuse_portable_on_cuda(device: str | None) -> None:
    """`--portable-numerics` with a CUDA device: a one-line UvssmError. The pins make CPU kernels the same on
    every x86-64 machine; on a GPU the numbers follow the GPU, and deterministic algorithms make the first
    backward pass raise (bilinear interpolate, grid_sample, reflection padding: no deterministic CUDA version)."""
    if runs_on_cuda(device):
        shown = device or "auto"
        raise UvssmError(
            f"--portable-numerics with --device {shown} (CUDA): the pins make the CPU's numbers the same on every "
            "x86-64 machine, a GPU's follow the GPU, and the backward passes of grid_sample, bilinear interpolate "
            "and reflection padding have no deterministic CUDA version; pass --device cpu, or leave out "
            "--portable-numerics")


def fix_threads_or_pin(portable: bool, threads: int | None, device: str | None = "auto") -> dict | None:
    """The `--portable-numerics` / `--threads` options of `train` and `bench`: pin (2 threads unless
    given), or only fix the thread count, or leave torch as it is. `device` is the command's `--device`:
    `--portable-numerics` on CUDA is refused (`refuse_portable_on_cuda`) before anything is set."""
    if portable:
        asked = {k: os.environ.get(k) for k in (*PINS, *THREAD_VARIABLES)}
        os.environ.update(PINS)  # before the check imports torch: what pin_numerics sets, threads included
        os.environ.update({name: str(threads or 2) for name in THREAD_VARIABLES})
        try:
            refuse_portable_on_cuda(device)
        except UvssmError:
            for k, v in asked.items():  # refused: the environment as it was
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            raise
        return pin_numerics(threads or 2)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return None


def new_precision_api() -> bool:
    """Whether this torch has the `fp32_precision` settings (torch ≥ 2.9), which replace `allow_tf32`."""
    import torch

    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def fp32_precision(backend: str, op: str) -> str:
    """The float32 precision `backend` ("cuda": cuBLAS, "cudnn", "mkldnn") uses for `op` ("matmul", "conv") as
    torch resolves it (torch ≥ 2.9's API, read without the legacy `allow_tf32` flags, whose getters raise once
    the new API has set a different value): the op's setting, else its backend's ("none" inherits), else the
    generic `torch.backends.fp32_precision`, else "ieee". CUDA has no "bf16": it counts as "ieee" there."""
    import torch

    b = torch.backends
    if not new_precision_api():  # torch < 2.9: the legacy flags are the only ones
        legacy = {("cuda", "matmul"): lambda: b.cuda.matmul.allow_tf32, ("cudnn", "conv"): lambda: b.cudnn.allow_tf32}
        read = legacy.get((backend, op))
        return "tf32" if read is not None and read() else "ieee"
    chains = {("cuda", "matmul"): (b.cuda.matmul, b.cudnn, b),  # cuBLAS and cuDNN share the ("cuda", "all") node
              ("cudnn", "conv"): (b.cudnn.conv, b.cudnn, b),
              ("mkldnn", "matmul"): (b.mkldnn.matmul, b.mkldnn, b),
              ("mkldnn", "conv"): (b.mkldnn.conv, b.mkldnn, b)}
    value = next((v for v in (node.fp32_precision for node in chains[backend, op]) if v != "none"), "ieee")
    return "ieee" if backend in ("cuda", "cudnn") and value == "bf16" else value


def device_record(device) -> dict:
    """What decides a run's numbers on `device` besides the code and torch's CPU kernels (`numerics_record`):
    the GPU (name, compute capability: TF32 needs 8.0 or more), the CUDA version torch was built with, cuDNN's,
    and the float32 precision of cuBLAS matrix products and cuDNN convolutions ("tf32" or "ieee"; cuDNN
    convolutions default to TF32), with $NVIDIA_TF32_OVERRIDE (0 turns TF32 off below torch). On the CPU the GPU
    fields are None and the CUDA precisions "n/a"."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return {"device": str(device), "gpu": None, "gpu_capability": None, "cuda": None, "cudnn": None,
                "matmul_fp32_precision": "n/a", "cudnn_conv_fp32_precision": "n/a", "nvidia_tf32_override": None}
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"device": f"cuda:{index}", "gpu": torch.cuda.get_device_name(index), "gpu_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "matmul_fp32_precision": fp32_precision("cuda", "matmul"),
            "cudnn_conv_fp32_precision": fp32_precision("cudnn", "conv") if torch.backends.cudnn.enabled else "n/a",
            "nvidia_tf32_override": os.environ.get("NVIDIA_TF32_OVERRIDE")}
