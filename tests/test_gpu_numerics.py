"""Numerics on a GPU, checked on the CPU: the DCN's TF32 switch under torch's new precision API, the device and
precision record of runs.json and of each checkpoint, and `--portable-numerics` refused on a CUDA device.

CUDA-only queries (`torch.cuda.get_device_name` and the like) are patched: on a CPU they are the only way to show
what a CUDA run records. Expected values come from PyTorch's documented behaviour: the float32 precision settings
("none" inherits from the parent: cuda.matmul from cuDNN's "all" from the generic one; cuDNN convolutions default
to TF32, cuBLAS matrix products to IEEE; `allow_tf32 = True` and `set_float32_matmul_precision("high")` mean
TF32), the legacy getter raising once the new API set another value, and `torch.use_deterministic_algorithms`'s
list of ops that raise on CUDA (the backward of bilinear interpolate, grid_sample and reflection padding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from models import checkpoint
from models.ops import deform_conv
from models.registry import create_model, model_kwargs
from models.training import loop
from uvssm.base.errors import UvssmError

CPU_RECORD = {"device": "cpu", "gpu": None, "gpu_capability": None, "cuda": None, "cudnn": None,
              "matmul_fp32_precision": "n/a", "cudnn_conv_fp32_precision": "n/a", "nvidia_tf32_override": None}


@pytest.fixture(autouse=True)
def fresh_precision():
    """Every test starts from torch's defaults and leaves them: the legacy and the new flags agree again."""
    b = torch.backends

    def reset():
        torch.set_float32_matmul_precision("highest")  # legacy HIGHEST, new cuda/mkldnn matmul "ieee"
        b.cudnn.allow_tf32 = True
        for node, value in ((b.cuda.matmul, "none"), (b.mkldnn.matmul, "none"), (b.cudnn.conv, "tf32"),
                            (b.cudnn, "none"), (b.mkldnn, "none"), (b, "none")):
            node.fp32_precision = value

    reset()
    yield
    reset()


# --- item 3: the DCN's TF32 switch ------------------------------------------------------------------------------

def test_the_dcn_tf32_switch_works_after_a_caller_set_the_new_api():
    """torch ≥ 2.9: once `fp32_precision = "tf32"` is set, reading the legacy `allow_tf32` raises (the old switch
    read it on entry). The switch must run and leave the caller's setting."""
    matmul = torch.backends.cuda.matmul
    matmul.fp32_precision = "tf32"
    with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
        matmul.allow_tf32  # noqa: B018 -- PyTorch's documented refusal, which the old switch hit
    with deform_conv._tf32_matmul(True):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == "tf32"


@pytest.mark.parametrize("before", ["ieee", "none"])
def test_the_dcn_tf32_switch_turns_tf32_on_and_restores_the_new_setting(before):
    matmul = torch.backends.cuda.matmul
    matmul.fp32_precision = before
    with deform_conv._tf32_matmul(True):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    with deform_conv._tf32_matmul(False):
        assert matmul.fp32_precision == before


def test_a_caller_of_the_legacy_api_still_reads_its_flag_after_the_switch():
    matmul = torch.backends.cuda.matmul
    matmul.allow_tf32 = False
    with deform_conv._tf32_matmul(True):
        assert matmul.fp32_precision == "tf32"
    assert matmul.allow_tf32 is False and matmul.fp32_precision == "ieee"


def test_the_switch_restores_the_setting_when_the_call_raises():
    matmul = torch.backends.cuda.matmul
    matmul.fp32_precision = "ieee"
    with pytest.raises(ValueError), deform_conv._tf32_matmul(True):
        raise ValueError
    assert matmul.fp32_precision == "ieee"


def test_before_torch_2_9_the_switch_and_the_record_use_the_legacy_flags(monkeypatch):
    """torch < 2.9 (`torch>=2.3` is allowed) has only `allow_tf32`: the switch and the record fall back to it."""
    from uvssm.base import numerics

    monkeypatch.setattr(deform_conv, "_NEW_PRECISION_API", False)
    monkeypatch.setattr(numerics, "new_precision_api", lambda: False)
    matmul = torch.backends.cuda.matmul
    with deform_conv._tf32_matmul(True):
        assert matmul.allow_tf32 is True
    assert matmul.allow_tf32 is False
    assert (numerics.fp32_precision("cuda", "matmul"), numerics.fp32_precision("cudnn", "conv")) == ("ieee", "tf32")
    torch.backends.cudnn.allow_tf32 = False
    assert numerics.fp32_precision("cudnn", "conv") == "ieee"


# --- item 7: the device and precision record ----------------------------------------------------------------------

def _pretend_h100(monkeypatch):
    """The CUDA-only queries answering as on one H100 with CUDA 12.8 and cuDNN 9.10.2 (device 0)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3" if d in (None, 0) else "?")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)


def test_the_cpu_record_says_there_is_no_gpu():
    from uvssm.base.numerics import device_record

    assert device_record("cpu") == CPU_RECORD
    assert device_record(torch.device("cpu")) == CPU_RECORD


def test_the_cuda_record_names_the_gpu_versions_and_torchs_default_precisions(monkeypatch):
    from uvssm.base.numerics import device_record

    _pretend_h100(monkeypatch)
    expected = {"device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3", "gpu_capability": "9.0", "cuda": "12.8",
                "cudnn": 91002, "matmul_fp32_precision": "ieee", "cudnn_conv_fp32_precision": "tf32",
                "nvidia_tf32_override": None}
    assert device_record("cuda") == expected
    assert device_record(torch.device("cuda", 0)) == expected


@pytest.mark.parametrize("set_it,matmul,conv", [
    (lambda b: setattr(b.cuda.matmul, "fp32_precision", "tf32"), "tf32", "tf32"),
    (lambda b: setattr(b.cuda.matmul, "allow_tf32", True), "tf32", "tf32"),  # the legacy API
    (lambda b: torch.set_float32_matmul_precision("high"), "tf32", "tf32"),
    (lambda b: setattr(b.cudnn.conv, "fp32_precision", "ieee"), "ieee", "ieee"),
    (lambda b: setattr(b.cudnn, "allow_tf32", False), "ieee", "ieee"),  # the legacy API
    # "none" inherits: the conv node from cuDNN's, and cuBLAS's from the same ("cuda", "all") node
    (lambda b: (setattr(b.cudnn.conv, "fp32_precision", "none"), setattr(b.cudnn, "fp32_precision", "tf32")),
     "tf32", "tf32"),
    (lambda b: setattr(b, "fp32_precision", "tf32"), "tf32", "tf32"),  # the generic root: matmul inherits it
], ids=["matmul-tf32", "legacy-matmul-allow-tf32", "matmul-precision-high", "conv-ieee", "legacy-cudnn-no-tf32",
        "conv-inherits-cudnn", "generic-tf32"])
def test_the_cuda_record_follows_the_precision_settings(monkeypatch, set_it, matmul, conv):
    from uvssm.base.numerics import device_record

    _pretend_h100(monkeypatch)
    set_it(torch.backends)
    record = device_record("cuda:0")
    assert (record["matmul_fp32_precision"], record["cudnn_conv_fp32_precision"]) == (matmul, conv)


def test_the_dcn_record_gives_backend_and_gemm_precision(monkeypatch):
    from models.ops.deform_conv import dcn_record

    assert dcn_record(None, "cpu", False) is None  # a model without a DCN
    # CPU, no torchvision needed: the pure-torch path, bf16 under autocast, else oneDNN's float32 setting
    monkeypatch.setattr(deform_conv, "torchvision_deform_conv2d", lambda: None)
    assert dcn_record("auto", "cpu", False) == {"backend": "torch", "gemm_forward": "ieee", "gemm_backward": "ieee"}
    assert dcn_record("auto", "cpu", True) == {"backend": "torch", "gemm_forward": "bf16", "gemm_backward": "bf16"}
    # CUDA with torchvision: eager bf16 forward in TF32 (the switch), backward and compiled at cuBLAS's setting
    monkeypatch.setattr(deform_conv, "torchvision_deform_conv2d", lambda: object())
    assert dcn_record("auto", "cuda", True) == {"backend": "torchvision", "gemm_forward": "tf32",
                                                "gemm_backward": "ieee"}
    assert dcn_record("auto", "cuda", True, compiled=True)["gemm_forward"] == "ieee"
    assert dcn_record("auto", "cuda", False)["gemm_forward"] == "ieee"
    assert dcn_record("torch", "cuda", True) == {"backend": "torch", "gemm_forward": "bf16", "gemm_backward": "bf16"}
    assert dcn_record("auto", "cpu", True)["backend"] == "torch"  # auto: torchvision on CUDA only
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    assert dcn_record("auto", "cuda", True, compiled=True) == {"backend": "torchvision", "gemm_forward": "tf32",
                                                               "gemm_backward": "tf32"}


def test_each_training_checkpoint_records_the_device_and_precision(tmp_path, monkeypatch):
    from tests.test_official_recipe import _recipe
    from tests.test_training import _array_clip

    torch.manual_seed(0)
    model = create_model("votes-tiny", 2)
    cfg = _recipe(32, total=2)
    loop.train(model, cfg, [_array_clip("a", n=9, h=40, w=48, seed=5)], [], tmp_path / "run",
               meta={"model": "votes-tiny"}, device=torch.device("cpu"))
    saved = checkpoint.read(tmp_path / "run" / "checkpoints" / "latest.pt")["uvssm"]["device_precision"]
    gemm = "bf16" if cfg.bf16 else "ieee"  # the pure-torch DCN: bf16 under autocast, else oneDNN's default
    assert saved == {**CPU_RECORD, "dcn": {"backend": "torch", "gemm_forward": gemm, "gemm_backward": gemm}}
    # on CUDA (patched queries), with torchvision's op: what a GPU run's checkpoint says
    _pretend_h100(monkeypatch)
    monkeypatch.setattr(deform_conv, "torchvision_deform_conv2d", lambda: object())
    cuda = loop._device_precision("torchvision", torch.device("cuda", 0), True)
    assert cuda["gpu"] == "NVIDIA H100 80GB HBM3" and cuda["cudnn_conv_fp32_precision"] == "tf32"
    assert cuda["dcn"] == {"backend": "torchvision", "gemm_forward": "tf32", "gemm_backward": "ieee"}


def test_runs_json_records_the_device_and_each_models_dcn(tmp_path, tiny_reds):
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions

    weights = tmp_path / "w"
    weights.mkdir()
    torch.manual_seed(0)
    checkpoint.save(weights / "votes-tiny.pt", create_model("votes-tiny", 2),
                    {"model": "votes-tiny", "scale": 2, "model_kwargs": model_kwargs("votes-tiny", 2)})
    run_bench(BenchOptions(["votes-tiny", "bicubic"], tiny_reds, tmp_path / "out", qp=28, weights=[str(weights)],
                           max_frames=2, save_frames=0, clips="240"))
    (record,) = json.loads((tmp_path / "out" / "runs.json").read_text()).values()
    assert record["device_precision"] == {**CPU_RECORD, "dcn": {
        "votes-tiny": {"backend": "torch", "gemm_forward": "ieee", "gemm_backward": "ieee"}, "bicubic": None}}


# --- item 2: --portable-numerics on a CUDA device -------------------------------------------------------------------

def test_portable_numerics_on_cuda_is_refused_before_anything_is_pinned(monkeypatch):
    from uvssm.base import numerics

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in numerics.PINS:
        monkeypatch.delenv(name, raising=False)
    deterministic = torch.are_deterministic_algorithms_enabled()
    for device in ("auto", None, "cuda", "cuda:1"):
        with pytest.raises(UvssmError) as caught:
            numerics.fix_threads_or_pin(True, None, device)
        message = str(caught.value)
        assert "\n" not in message and "--device cpu" in message and "grid_sample" in message
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert not any(name in os.environ for name in numerics.PINS)
    # the CPU is what the option is for; without it, a GPU run is not refused
    assert not numerics.runs_on_cuda("cpu")
    numerics.refuse_portable_on_cuda("cpu")
    assert numerics.fix_threads_or_pin(False, None, "auto") is None


def test_auto_without_a_gpu_is_the_cpu(monkeypatch):
    from uvssm.base import numerics

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not numerics.runs_on_cuda("auto") and not numerics.runs_on_cuda(None)
    numerics.refuse_portable_on_cuda("auto")


PRETEND_CUDA = ("import sys, torch; torch.cuda.is_available = lambda: True; sys.argv = ['uvssm', *sys.argv[1:]]; "
                "from uvssm.cli import main; main()")


@pytest.mark.parametrize("command", ["train", "bench"])
def test_the_cli_refuses_portable_numerics_when_auto_picks_a_gpu(tmp_path, command):
    """`--device auto` (the default) on a machine with a GPU: one error line, nothing written."""
    out = tmp_path / "out"
    args = (["train", "votes-tiny-sample", "--data", str(tmp_path), "--out", str(out)] if command == "train" else
            ["bench", "--models", "bicubic", "--data", str(tmp_path), "--out", str(out)])
    done = subprocess.run([sys.executable, "-c", PRETEND_CUDA, *args, "--portable-numerics"], capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --portable-numerics with --device auto (CUDA)") and "--device cpu" in lines[0]
    assert not out.exists()
