"""What a model offers beyond restoring frames, by name: a `ModelSpec` declares its features and the runner,
the training stages and the harness ask for them by name instead of probing the module.

Each feature is the module attribute that provides it and what uses it.
"""

from __future__ import annotations

from torch import nn

FEATURES: dict[str, tuple[str, str]] = {
    "dfm": ("estimate_dfm", "the degradation feature map: estimated once per sample, saved beside bench's frames"),
    "bin": ("train_bin", "a degradation sensing module trained first (stage dsm), frozen after"),
    "frame_pyramid": ("frame_pyramid", "per-frame features that overlapping windows share (the EDVR family)"),
    "aux_targets": ("aux_targets", "extra supervision, weighted by training's aux_weight"),
    "spynet": ("spynet", "a flow network pre-trained by stage flow, trained at flow_lr_mul x the learning rate"),
}


def offered(model: nn.Module) -> frozenset[str]:
    """The features whose attribute `model` has (for a runner built by hand, without a spec)."""
    return frozenset(name for name, (attr, _) in FEATURES.items() if hasattr(model, attr))
