"""Trained models by name: find their checkpoints, build them as trained, ready to run.

`--weights DIR` finds `DIR/<model>.pt`, `DIR/<model>.pth` or `DIR/<model>/checkpoints/latest.pt` (a
`uvssm train --out DIR/<model>` run); `--weights NAME=PATH` names one file. A uvssm checkpoint
records its model name and constructor arguments (so `votes-tiny` rebuilds as trained); an
official checkpoint without them gets the registry's settings. Loading is strict.

For a two-stage model `a+b`, stage a loads the weights of `a` and stage b those of `a+b`: the SR
model trained on a's outputs, which is not the same network as b trained on raw LQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from models import checkpoint
from models.inference import Stage
from models.registry import chain_parts, fitting_models, get_spec, model_name
from uvssm.base.errors import UvssmError


@dataclass
class TrainedModel:
    """A model ready to run: its stages (none for bicubic) and what identifies its weights."""

    name: str
    stages: list[Stage]
    checkpoints: list[str]
    checkpoint_sha256: str | None
    dcn_backend: str | None = None  # what its deformable convolutions run on, once chosen (None: it has none)
    outputs: Any = None  # frames made elsewhere (benchmarks.outputs.ForeignOutputs): read and scored, not run

    @property
    def params(self) -> int:
        return sum(p.numel() for s in self.stages for p in s.model.parameters())


def find_checkpoint(name: str, weights: list[str]) -> Path:
    """The checkpoint of model `name` among `--weights` entries; UvssmError saying how to get one."""
    looked = []
    for entry in weights:
        if "=" in entry:
            key, path = entry.split("=", 1)
            if key == name:
                return Path(path)
            continue
        root = Path(entry)
        for cand in (root / f"{name}.pt", root / f"{name}.pth", root / name / "checkpoints" / "latest.pt"):
            if cand.is_file():
                return cand
            looked.append(str(cand))
    where = f" (looked for {', '.join(looked[:3])})" if looked else ""
    last = name.split("+")[-1]
    raise UvssmError(f"{name}: no checkpoint{where}; train one with `uvssm train <config> --set model={last} "
                     f"--data DATA --out WEIGHTS/{name}` and pass --weights WEIGHTS, or --weights {name}=PATH")


def stage_for(name: str, model: nn.Module, scale: int, **kwargs) -> Stage:
    """The runner of registered model `name` (its window, size multiple and kind) at `scale`."""
    spec = get_spec(name)
    return Stage(model, spec.num_frame, scale, spec.multiple, kind=spec.kind, features=spec.features, **kwargs)


def model_from_checkpoint(path: str | Path, scale: int, name: str | None = None) -> tuple[str, nn.Module, str]:
    """(model name, model with its trained weights, file sha256) of a checkpoint at `scale`. The name
    is the one the checkpoint records (`name`, when given, must match it; an official checkpoint
    without a record takes `name` and the registry's settings)."""
    path = Path(path)
    data = checkpoint.read(path)
    meta = data.get("uvssm") or {}
    stored = meta.get("model", name)
    if stored is None:
        raise UvssmError(f"{path}: records no model name; name the model it holds")
    if name is not None and stored != name:
        raise UvssmError(f"{path}: holds a {stored} checkpoint, not {name}")
    spec = get_spec(stored)
    kwargs = dict(meta.get("model_kwargs") or {**spec.defaults, "scale": scale})
    if kwargs.get("scale", scale) != scale:
        raise UvssmError(f"{path}: a x{kwargs['scale']} {stored} checkpoint, but x{scale} was asked for")
    kwargs["scale"] = scale
    model = spec.cls(**kwargs)
    try:
        checkpoint.load_weights(model, data, strict=True, name=str(path))
    except UvssmError as exc:
        fits = fitting_models(checkpoint.state_dict_of(data)[0])
        hint = f"; they fit {', '.join(fits)}" if fits else "; they fit no registered model"
        raise UvssmError(f"{exc} (as {stored} x{scale}){hint}") from None
    return stored, model, checkpoint.file_sha256(path)


def load_trained(name: str, scale: int, weights: list[str]) -> TrainedModel:
    """Build `name` ("bicubic", a registered model, or a chain "a+b") with its trained weights."""
    if name == "bicubic":
        return TrainedModel(name, [], [], None)
    try:
        name = model_name(name)  # a plugin's reference (pkg.module:attr) by its spec's name
        parts = chain_parts(name)
    except ValueError as exc:
        raise UvssmError(str(exc)) from None
    stages, paths, shas = [], [], []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key = name if (last and len(parts) > 1) else part
        path = find_checkpoint(key, weights)
        spec = get_spec(part)
        part_scale = scale if last else 1
        if part_scale not in spec.scales:
            raise UvssmError(f"{name}: {part} has no x{part_scale} variant (it has x{', x'.join(map(str, spec.scales))})")
        _, model, sha = model_from_checkpoint(path, part_scale, part)
        stages.append(stage_for(part, model, part_scale))
        paths.append(str(path))
        shas.append(sha)
    return TrainedModel(name, stages, paths, "+".join(shas))
