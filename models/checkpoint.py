"""Checkpoints: atomic saving, and loading our own or official (BasicSR-style) files with a report.

File layout (ours): a dict saved with `torch.save`
    {"params": state_dict, "uvssm": {"model": name, "scale": s, "model_kwargs": {...},
     "iteration": n, ...}, "optimizer": ..., }
Official releases (BasicSR, VOTES) save {"params": state_dict} and sometimes "params_ema"; both load
here. A "module." prefix (a DistributedDataParallel state dict) is removed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from uvssm.base.atomic import replacing
from uvssm.base.errors import UvssmError


@dataclass
class LoadReport:
    """What a load did: keys missing from the file, keys the model does not have, shape clashes."""

    source: str
    key: str | None
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "name: file (..) vs model (..)"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors loaded"]
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape mismatch", self.mismatched)):
            if keys:
                more = f" … (+{len(keys) - 3})" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
        return "; ".join(parts)


def save(path: str | os.PathLike, model: nn.Module, meta: dict, **extra) -> Path:
    """Write a checkpoint atomically (temp file + rename): a crash leaves the old file intact."""
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {"params": model.state_dict(), "uvssm": meta, **extra}
    try:
        with replacing(path) as tmp:
            torch.save(payload, tmp)
    except UvssmError:
        raise
    except RuntimeError as exc:  # torch reports write failures as RuntimeError
        raise UvssmError(f"{path}: cannot write checkpoint ({exc})") from None
    return path


def _not_torch_file(path: Path) -> str | None:
    """Why `path` cannot be a `torch.save` file, from its first bytes (None if it may be one)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip, or a legacy pickle
        return None
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras/TensorFlow checkpoint?), not a torch.save file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # a multi-byte character cut at 64 bytes is still text: check what decodes
        text = head.decode("utf-8", errors="ignore")
    if not text or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"unknown binary data (starts {head[:8].hex(' ')}), not a torch.save file"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file (starts {first!r}), not a torch.save file"


def read(path: str | os.PathLike) -> dict:
    """Load a checkpoint file onto the CPU. Raises UvssmError naming the file if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UvssmError(f"{path}: checkpoint not found")
    try:
        why = _not_torch_file(path)
    except OSError as exc:
        raise UvssmError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if why:
        raise UvssmError(f"{path}: not a PyTorch checkpoint: {why}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle error, not a torch file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UvssmError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(data, dict):
        raise UvssmError(f"{path}: expected a dict of tensors or a dict with 'params', got {type(data).__name__}")
    return data


def state_dict_of(data: dict, key: str | None = None) -> tuple[dict, str | None]:
    """The state dict inside a checkpoint dict: `key`, else "params_ema", "params", "state_dict", or the dict itself."""
    if key is not None:
        if key not in data:
            raise KeyError(key)
        sd = data[key]
    else:
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in data and isinstance(data[key], dict):
                sd = data[key]
                break
        else:
            key, sd = None, data
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, key


def load_weights(model: nn.Module, source: str | os.PathLike | dict, key: str | None = None,
                 strict: bool = True, prefix: str = "", name: str | None = None) -> LoadReport:
    """Load weights into `model` and report what matched.

    Args:
        source: a checkpoint path, or an already-read checkpoint dict.
        key: which entry holds the weights ("params", "params_ema"); default: "params_ema" if
            present, then "params" (BasicSR's order for testing), else the dict itself.
        strict: raise UvssmError unless every key matches in name and shape. When False, matching
            tensors are loaded and the report lists the rest; nothing is skipped silently.
        prefix: load into the sub-module of this name (e.g. "bin" for a DSM-only checkpoint).
        name: what messages call the weights (default: the path; give the file's name when `source`
            is a dict already read from it).
    """
    name = name or (str(source) if not isinstance(source, dict) else "<state dict>")
    data = read(source) if not isinstance(source, dict) else source
    try:
        sd, used_key = state_dict_of(data, key)
    except KeyError:
        raise UvssmError(f"{name}: no '{key}' entry (has: {', '.join(map(str, data))})") from None
    target = model.get_submodule(prefix) if prefix else model
    own = target.state_dict()
    report = LoadReport(source=name, key=used_key)
    report.missing = sorted(set(own) - set(sd))
    report.unexpected = sorted(set(sd) - set(own))
    usable = {}
    for k in sorted(set(own) & set(sd)):
        if not isinstance(sd[k], torch.Tensor) or sd[k].shape != own[k].shape:
            got = tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else type(sd[k]).__name__
            report.mismatched.append(f"{k}: file {got} vs model {tuple(own[k].shape)}")
        else:
            usable[k] = sd[k]
    if strict and not report.ok:
        raise UvssmError(f"{name}: weights do not fit {type(target).__name__} ({report.summary()})")
    target.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    return report


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a checkpoint file; results record it so numbers trace back to weights."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
