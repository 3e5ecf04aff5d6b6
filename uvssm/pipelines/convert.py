"""`uvssm convert`: a foreign checkpoint → a uvssm checkpoint of a registered model, checked by a strict load.

The output is what `uvssm train` writes (`{"params": ..., "uvssm": {"model", "scale", "model_kwargs",
"converted_from"}}`), so `bench --weights` and `restore` take it as they take our own.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models import checkpoint
from models.convert import from_comisr_tf, from_mmagic, mmagic_generator
from models.tf_bundle import BundleError, bundle_prefix, read_bundle
from models.registry import create_model, fitting_models, get_spec, model_kwargs
from uvssm.base.errors import UvssmError

FORMATS = ("mmagic", "comisr-tf", "basicsr-state")


def _read(path: Path, unsafe: bool) -> dict:
    if not unsafe:
        return checkpoint.read(path)
    if not path.is_file():
        raise UvssmError(f"{path}: checkpoint not found")
    try:  # the caller trusts this file: mmagic's "meta" may hold objects that weights_only refuses
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UvssmError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise UvssmError(f"{path}: expected a dict, got {type(data).__name__}")
    return data


def _mmagic(src: Path, unsafe_pickle: bool) -> tuple[str, dict, str]:
    try:
        data = _read(src, unsafe_pickle)
    except UvssmError as exc:
        if "weights_only" in str(exc) or "WeightsUnpickler" in str(exc):
            raise UvssmError(f"{exc}; if you trust this file, pass --unsafe-pickle") from None
        raise
    try:
        generator, copy = mmagic_generator(data)
        arch, sd = from_mmagic(generator)
    except ValueError as exc:
        raise UvssmError(f"{src}: {exc}") from None
    return arch, sd, copy


def _comisr_tf(src: Path) -> tuple[str, dict, str, Path]:
    """COMISR's TensorFlow checkpoint (PREFIX, PREFIX.index or its folder), read without TensorFlow."""
    try:
        prefix = bundle_prefix(src)
        sd, copy = from_comisr_tf(read_bundle(prefix))
    except (BundleError, ValueError, OSError) as exc:
        raise UvssmError(f"{src}: {exc}") from None
    return "comisr", sd, copy, Path(f"{prefix}.index")


def convert(fmt: str, src: str | Path, dst: str | Path, model: str | None = None, scale: int | None = None,
            unsafe_pickle: bool = False) -> dict:
    """Convert `src` (format `fmt`) into a uvssm checkpoint at `dst`; returns what was done.

    `model` and `scale` default to the registered model (and scale) whose every layer the weights fit."""
    src, dst = Path(src), Path(dst)
    if fmt not in FORMATS:
        raise UvssmError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "basicsr-state":
        return export_basicsr_state(src, dst)
    if fmt == "comisr-tf":
        arch, sd, copy, src = _comisr_tf(src)
    else:
        arch, sd, copy = _mmagic(src, unsafe_pickle)
    fits = [f for f in fitting_models(sd) if f.startswith(arch)]
    if model is None:
        wanted = [f for f in fits if scale is None or f.endswith(f" x{scale}")]
        if not wanted:
            raise UvssmError(f"{src}: {fmt} {arch} weights that fit no registered model"
                             f"{'' if scale is None else f' at x{scale}'}; name one with --model (and --scale)")
        model, at = wanted[0].rsplit(" x", 1)
        scale = int(at)
    else:
        get_spec(model)
        scale = scale or 4
    net = create_model(model, scale)
    checkpoint.load_weights(net, {"params": sd}, key="params", strict=True, name=str(src))
    meta = {"model": model, "scale": scale, "model_kwargs": model_kwargs(model, scale),
            "converted_from": {"format": fmt, "path": str(src.resolve()), "sha256": checkpoint.file_sha256(src),
                               "copy": copy, "architecture": arch}}
    checkpoint.save(dst, net, meta)
    return {"model": model, "scale": scale, "tensors": len(sd), "copy": copy, "out": dst}


def export_basicsr_state(src: str | Path, experiment: str | Path) -> dict:
    """A training checkpoint of `uvssm train` (`src`) out as BasicSR's experiment folder: `models/net_g_<n>.pth`
    and `training_states/<n>.state`, which the official train.py resumes (`path: resume_state:`)."""
    from models.training.state import to_basicsr
    from uvssm.base import atomic

    src, experiment = Path(src), Path(experiment)
    net, state = to_basicsr(checkpoint.read(src), str(src))
    n = state["iter"]
    written = []
    for path, payload in ((experiment / "models" / f"net_g_{n}.pth", net),
                          (experiment / "training_states" / f"{n}.state", state)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp:
            torch.save(payload, tmp)
        written.append(path)
    meta = checkpoint.read(src)["uvssm"]
    return {"model": meta.get("model"), "scale": meta.get("scale"), "tensors": len(net["params"]),
            "copy": f"iteration {n}", "out": experiment, "written": written}
