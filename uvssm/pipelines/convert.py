"""`uvssm convert`: a foreign checkpoint → a uvssm checkpoint of a registered model, checked by a strict load;
and back out (`export_weights`): a uvssm checkpoint → the file BasicSR, mmagic or the official VOTES code loads.

The output is what `uvssm train` writes (`{"params": ..., "uvssm": {"model", "scale", "model_kwargs",
"converted_from"}}`), so `bench --weights` and `restore` take it as they take our own.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models import checkpoint
from models.convert import basicsr_key, from_comisr_tf, from_mmagic, mmagic_generator, mmagic_key
from models.export import TARGETS, layout, network_options
from models.tf_bundle import BundleError, bundle_prefix, read_bundle
from models.registry import Fit, compare, create_model, get_spec, model_fits, model_kwargs, nearest_model
from uvssm.base import atomic
from uvssm.base.errors import UvssmError

FORMATS = ("mmagic", "basicsr", "comisr-tf", "basicsr-state")


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


def _read_pickle(src: Path, unsafe_pickle: bool) -> dict:
    try:
        return _read(src, unsafe_pickle)
    except UvssmError as exc:
        if "weights_only" in str(exc) or "WeightsUnpickler" in str(exc):
            raise UvssmError(f"{exc}; if you trust this file, pass --unsafe-pickle") from None
        raise


def _mmagic(src: Path, unsafe_pickle: bool) -> tuple[str, dict, str, dict]:
    """(architecture, weights under BasicSR's names, the copy taken, BasicSR's name → the file's name)."""
    data = _read_pickle(src, unsafe_pickle)
    try:
        generator, copy = mmagic_generator(data)
        arch, sd = from_mmagic(generator)
    except ValueError as exc:
        raise UvssmError(f"{src}: {exc}") from None
    return arch, sd, copy, {basicsr_key(k, arch): f"{copy}.{k}" for k in generator}


def _basicsr(src: Path, unsafe_pickle: bool) -> tuple[dict, str]:
    """BasicSR's (and the official VOTES code's) `{"params": ..., "params_ema": ...}`: the EMA copy where present."""
    data = _read_pickle(src, unsafe_pickle)
    sd, key = checkpoint.state_dict_of(data)
    if key not in ("params", "params_ema"):
        raise UvssmError(f"{src}: no 'params' or 'params_ema' entry (not a BasicSR network file; has: "
                         f"{', '.join(map(str, list(data)[:5]))})")
    if not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UvssmError(f"{src}: its '{key}' holds no tensors")
    return sd, key


def _keys(label: str, keys: list[str]) -> str:
    more = f" … (+{len(keys) - 3})" if len(keys) > 3 else ""
    return f"{len(keys)} {label}: {', '.join(keys[:3])}{more}"


def describe_fit(fit: Fit, name_of=lambda key: key) -> str:
    """"edvr-m x4: 1 missing: conv_last.weight; …": what keeps weights from `fit.model`, named by `name_of`."""
    parts = []
    if fit.missing:
        parts.append(_keys("missing", [name_of(k) for k in fit.missing]))
    if fit.unexpected:
        parts.append(_keys("unexpected", [name_of(k) for k in fit.unexpected]))
    if fit.mismatched:
        parts.append(_keys("shape mismatch", [f"{name_of(k)} {list(got)} (model {list(own)})"
                                              for k, got, own in fit.mismatched]))
    return f"{fit.model}: {'; '.join(parts)}"


def _no_fit(src: Path, what: str, fits: list[Fit], scale: int | None, name_of) -> UvssmError:
    at = "" if scale is None else f" at x{scale}"
    near = nearest_model(fits)
    if near is None:
        return UvssmError(f"{src}: {what} weights that fit no registered model{at}")
    return UvssmError(f"{src}: {what} weights that fit no registered model{at}; nearest {describe_fit(near, name_of)}")


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
    origin, arch = {}, None  # origin: uvssm's name → the file's, where they differ (mmagic)
    if fmt == "comisr-tf":
        arch, sd, copy, src = _comisr_tf(src)
    elif fmt == "basicsr":
        sd, copy = _basicsr(src, unsafe_pickle)
    else:
        arch, sd, copy, origin = _mmagic(src, unsafe_pickle)

    def name_of(key: str) -> str:  # messages name layers as the file does
        return origin.get(key) or (f"{copy}.{_mmagic_name(key, arch)}" if fmt == "mmagic" else key)

    if model is None:
        fits = [f for f in model_fits(sd) if (arch is None or f.model.startswith(arch))
                and (scale is None or f.model.endswith(f" x{scale}"))]
        wanted = [f.model for f in fits if f.distance == 0]
        if not wanted:
            raise _no_fit(src, f"{fmt} {arch or 'network'}", fits, scale, name_of)
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


def _mmagic_name(key: str, arch: str) -> str:
    try:
        return mmagic_key(key, arch)
    except ValueError:
        return key


def export_weights(target: str, src: str | Path, dst: str | Path, model: str | None = None,
                   scale: int | None = None) -> dict:
    """A uvssm checkpoint (`src`, or a BasicSR-style file of `model` at `scale`) → `dst` as `target`
    ("basicsr", "mmagic", "votes-official") saves it; returns what was done, with the target's network options."""
    src, dst = Path(src), Path(dst)
    if target not in TARGETS:
        raise UvssmError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    data = checkpoint.read(src)
    meta = data.get("uvssm") or {}
    name = meta.get("model") or model
    if name is None:
        raise UvssmError(f"{src}: records no model (not a uvssm checkpoint); name it with --model and --scale")
    if model is not None and model != name:
        raise UvssmError(f"{src}: holds a {name} checkpoint, not {model}")
    try:
        spec = get_spec(name)
    except ValueError as exc:
        raise UvssmError(f"{src}: {exc}") from None
    kwargs = dict(meta.get("model_kwargs") or {})
    scale_of = meta.get("scale") or kwargs.get("scale") or scale
    if scale_of is None:
        raise UvssmError(f"{src}: records no scale; name it with --scale")
    if scale is not None and scale != scale_of:
        raise UvssmError(f"{src}: a x{scale_of} {name} checkpoint, not x{scale}")
    kwargs = kwargs or model_kwargs(name, scale_of)
    try:
        arch, options = network_options(target, spec.cls, kwargs)
    except ValueError as exc:
        raise UvssmError(f"{src}: {name} x{scale_of}: {exc}") from None
    copies = {key: data[key] for key in ("params", "params_ema") if isinstance(data.get(key), dict)}
    if not copies:
        raise UvssmError(f"{src}: no 'params' entry (has: {', '.join(map(str, list(data)[:5]))})")
    with torch.device("meta"):
        net = spec.cls(**kwargs)
    order = list(net.state_dict())
    for key, sd in copies.items():  # every tensor of the model, named and shaped as it is: checked, not trusted
        fit = compare(sd, net, f"{name} x{scale_of}")
        if fit.distance:
            raise UvssmError(f"{src}: its '{key}' does not fit {describe_fit(fit)}")
    ordered = [{k: sd[k] for k in order} for sd in copies.values()]  # params first, then params_ema
    params, ema = ordered[0], (ordered[1] if len(ordered) > 1 else None)
    provenance = {"model": name, "scale": scale_of, "from": str(src.resolve()), "sha256": checkpoint.file_sha256(src)}
    try:
        payload = layout(target, arch, params, ema, meta={"converted_by": "uvssm", "uvssm": provenance},
                         iteration=int(meta.get("iteration") or 0))
    except ValueError as exc:
        raise UvssmError(f"{src}: {exc}") from None
    with atomic.replacing(dst) as tmp:
        torch.save(payload, tmp)
    copy = "params and params_ema" if ema is not None else "params"
    return {"model": name, "scale": scale_of, "tensors": len(params), "copy": copy, "out": dst,
            "target": target, "options": options}


def export_basicsr_state(src: str | Path, experiment: str | Path) -> dict:
    """A training checkpoint of `uvssm train` (`src`) out as BasicSR's experiment folder: `models/net_g_<n>.pth`
    and `training_states/<n>.state`, which the official train.py resumes (`path: resume_state:`)."""
    from models.training.state import to_basicsr

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
