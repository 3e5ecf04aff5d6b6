"""Every baseline saves and loads strictly, and the loaded copy computes the same output."""

from __future__ import annotations

import pytest
import torch

from models import checkpoint
from models.registry import create_model


@pytest.mark.parametrize("name, scale, window", [("edvr-m", 2, (1, 5, 3, 8, 8)), ("stdf", 1, (1, 7, 3, 16, 16)),
                                                 ("stdf-y", 1, (1, 7, 1, 16, 16)), ("basicvsr", 4, (1, 3, 3, 16, 16)),
                                                 ("rsdn", 4, (1, 3, 3, 8, 8)),
                                                 ("tga", 2, (1, 7, 3, 8, 8)), ("comisr", 4, (1, 3, 3, 16, 16))])
def test_strict_round_trip(tmp_path, name, scale, window):
    torch.manual_seed(0)
    model = create_model(name, scale).eval()
    path = checkpoint.save(tmp_path / f"{name}.pth", model, {"model": name})
    other = create_model(name, scale).eval()
    report = checkpoint.load_weights(other, path)
    assert report.ok and report.loaded == len(model.state_dict())
    x = torch.rand(*window)
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x))
