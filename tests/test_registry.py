"""Every registered model, from the registry itself: the parameter count its entry records (official where
the paper's code exists, see models/registry.py), a forward and a backward pass with finite gradients in every
trainable parameter, and a strict state-dict round trip that computes the same output."""

from __future__ import annotations

import pytest
import torch

from models import checkpoint
from models.registry import MODELS, create_model, list_models


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input(name: str) -> torch.Tensor:
    """One sample: a window (1, num_frame, C, 16, 16) or a sequence of 3 frames (recurrent)."""
    spec = MODELS[name]
    channels = spec.defaults.get("in_nc", 3)  # STDF on the Y channel takes one
    frames = 3 if spec.kind == "recurrent" else spec.num_frame
    return torch.rand(1, frames, channels, 16, 16)


def test_every_entry_records_its_counts_at_every_scale():
    assert len(list_models()) >= 17
    for name, spec in MODELS.items():
        assert set(spec.params) == set(spec.scales), name


@pytest.mark.parametrize("name, scale", [(n, s) for n in list_models() for s in MODELS[n].scales])
def test_parameter_count_is_the_registered_one(name, scale):
    assert _count(create_model(name, scale)) == MODELS[name].params[scale]


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_strict_round_trip(name, tmp_path):
    spec = MODELS[name]
    scale = spec.scales[0]
    torch.manual_seed(0)
    model = create_model(name, scale).train()
    x = _input(name)
    out = model(x)
    expected = (x.shape[-2] * scale, x.shape[-1] * scale)
    assert out.shape[-2:] == expected and torch.isfinite(out).all()
    out.square().mean().backward()
    trainable = {k: p for k, p in model.named_parameters() if p.requires_grad}
    assert trainable
    no_grad = sorted(k for k, p in trainable.items() if p.grad is None)
    assert not no_grad, f"{name}: parameters outside the graph: {no_grad[:5]}"
    bad = sorted(k for k, p in trainable.items() if not torch.isfinite(p.grad).all())
    assert not bad, f"{name}: non-finite gradients in {bad[:5]}"

    model.eval()
    path = checkpoint.save(tmp_path / f"{name}.pth", model, {"model": name})
    torch.manual_seed(1)  # other initial weights, so only the loaded ones can make the outputs equal
    other = create_model(name, scale).eval()
    report = checkpoint.load_weights(other, path, strict=True)
    assert report.ok and report.loaded == len(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))


def test_every_built_in_spec_declares_what_its_module_offers():
    """The features callers ask the spec for are the ones the module has (attributes read off the module)."""
    import torch

    from models.features import FEATURES
    from models.registry import MODELS, create_model

    for name, spec in MODELS.items():
        if spec.source != "uvssm":
            continue
        with torch.device("meta"):
            module = create_model(name, spec.scales[0])
        has = {feature for feature, (attr, _) in FEATURES.items() if hasattr(module, attr)}
        assert set(spec.features) == has, name
