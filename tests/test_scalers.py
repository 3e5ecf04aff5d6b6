"""MATLAB-style bicubic against Pillow's float bicubic (same a = -0.5 kernel, same pixel-centre
convention, antialiased when shrinking). They differ only at borders (Pillow renormalises, MATLAB
mirrors), so interiors are compared, to float32 precision."""

import numpy as np
import pytest
import torch
from PIL import Image

from uvssm.base.scalers import imresize, resize_matrix


@pytest.mark.parametrize("scale", [2, 4, 0.5, 0.25])
def test_interior_matches_pillow(scale):
    img = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    ours = imresize(torch.from_numpy(img).double(), scale).numpy()
    pil = np.asarray(Image.fromarray(img, mode="F").resize((ours.shape[1], ours.shape[0]), Image.BICUBIC))
    m = 8 if scale >= 1 else 3
    assert np.abs(ours - pil)[m:-m, m:-m].max() < 2e-6


def test_rows_sum_to_one_and_constants_are_kept():
    for n_in, n_out, s in [(10, 20, 2), (20, 5, 0.25), (7, 21, 3)]:
        m = resize_matrix(n_in, n_out, s)
        assert torch.allclose(m.sum(1), torch.ones(n_out, dtype=torch.float64))
    x = torch.full((2, 3, 9, 11), 0.3)
    assert torch.allclose(imresize(x, 2), torch.full((2, 3, 18, 22), 0.3), atol=1e-6)


def test_upscale_by_two_keeps_linear_ramps():
    """A cubic-convolution kernel reproduces linear functions exactly away from borders."""
    ramp = torch.arange(16, dtype=torch.float64).repeat(16, 1)
    up = imresize(ramp, 2)
    expected = (torch.arange(32, dtype=torch.float64) + 0.5) / 2 - 0.5
    assert torch.allclose(up[4, 4:-4], expected[4:-4], atol=1e-12)


def test_each_size_builds_its_matrices_once_per_device(monkeypatch):
    """A frame loop builds (and on a GPU uploads) the two matrices once, not once per frame: three 20x30 frames
    and one 40x30 cost 2 + 1 matrices (the 30-wide one is shared), and a second device its own."""
    from uvssm.base import scalers

    scalers._MATRICES.clear()
    built = []
    real = scalers.resize_matrix
    monkeypatch.setattr(scalers, "resize_matrix", lambda *a, **k: built.append(a[:2]) or real(*a, **k))
    frames = [torch.rand(3, 20, 30, dtype=torch.float64) for _ in range(3)]
    outs = [imresize(f, 2) for f in frames]
    imresize(torch.rand(3, 40, 30, dtype=torch.float64), 2)
    assert built == [(20, 40), (30, 60), (40, 80)]
    for f, out in zip(frames, outs):  # the cached matrices give what freshly built ones give
        torch.testing.assert_close(out, real(20, 40, 2) @ f @ real(30, 60, 2).T, rtol=0, atol=0)
    imresize(torch.rand(3, 20, 30, dtype=torch.float64, device="meta"), 2)
    assert built[3:] == [(20, 40), (30, 60)]
