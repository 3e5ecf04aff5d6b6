"""Benchmark: the deformable convolution's training pass with the kernel's position gradient, against plain
`grid_sample` autograd (the path it replaced).

uvssm's pure-torch DCNv2 samples with `grid_sample` and differentiates the sampling positions by the CUDA kernel's
rule in pixel coordinates (`models.ops.deform_conv.sample_pixels`); before, autograd took `grid_sample`'s own
position gradient, which differs from the kernel's at the border and at whole-pixel positions. This times the
same `deform_conv2d` both ways (the old way by swapping `sample_pixels` for plain `grid_sample` while it runs), on
the shapes training meets:
- recipe: VOTES's PCD L1 pack (128 channels, 8 deformable groups, 3x3) on 16 LQ patches of 64x64;
- tiny: votes-tiny's pack (16 channels, 2 groups) on 80 patches of 32x32 (16 windows x 5 frames, the demo's batch).
Forward alone (no gradients) runs the same code both ways; it is listed as a check. Medians of `repeat` runs
after a warm-up.

    python -m benchmarks dcn [--device cpu|cuda] [--repeat 3]
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def grid_sample_gradients():
    """While the block runs, `deform_conv2d`'s sampling takes plain `grid_sample` autograd (the previous path)."""
    import torch.nn.functional as F

    from models.ops import deform_conv

    def plain(input, y, x):
        grid = deform_conv._normalised_grid(y, x, input.shape[2:])
        return F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(2)

    original = deform_conv.sample_pixels
    deform_conv.sample_pixels = plain
    try:
        yield
    finally:
        deform_conv.sample_pixels = original


def _case(name: str, device: str, batch: int, c: int, dg: int, size: int, train: bool, repeat: int) -> dict:
    import torch

    from models.ops.deform_conv import deform_conv2d
    from uvssm.base.timing import median_seconds

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, c, size, size, generator=g).to(device)
    offset = (torch.randn(batch, 2 * dg * 9, size, size, generator=g) * 2).to(device)
    mask = torch.rand(batch, dg * 9, size, size, generator=g).to(device)
    weight = (torch.randn(c, c, 3, 3, generator=g) * 0.01).to(device)
    bias = torch.zeros(c, device=device)
    tensors = [x, offset, weight, bias, mask]
    if train:
        tensors = [t.requires_grad_() for t in tensors]

    def call():
        if not train:
            with torch.no_grad():
                return deform_conv2d(x, offset, weight, bias, padding=1, mask=mask, backend="torch")
        for t in tensors:
            t.grad = None
        deform_conv2d(x, offset, weight, bias, padding=1, mask=mask, backend="torch").square().mean().backward()

    new = median_seconds(call, device, repeat)
    with grid_sample_gradients():
        old = median_seconds(call, device, repeat)
    return {"case": name, "device": device, "shape": f"{batch}x{c}x{size}x{size}, {dg} groups",
            "pass": "fwd+bwd" if train else "fwd", "pixel_ms": new * 1e3, "grid_sample_ms": old * 1e3,
            "ratio": new / old}


def run(device: str | None = None, repeat: int = 3, quick: bool = False) -> list[dict]:
    import torch

    devices = [device] if device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cases = [("tiny", 80, 16, 2, 32), ("recipe", 16, 128, 8, 64)]
    if quick:
        cases = [("tiny", 8, 16, 2, 32), ("recipe", 2, 128, 8, 32)]
    rows = []
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            continue
        for name, batch, c, dg, size in cases:
            for train in (True, False):
                rows.append(_case(name, dev, batch, c, dg, size, train, repeat))
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=120)
    table = Table(title=f"DCNv2 3x3: the kernel's position gradient vs grid_sample autograd, {os.cpu_count()} CPU "
                        "cores; target ratio <= 1.2", title_justify="left")
    for col in ("case", "device", "input", "pass", "kernel rule ms", "grid_sample ms", "ratio"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["case"], r["device"], r["shape"], r["pass"], f"{r['pixel_ms']:.1f}",
                      f"{r['grid_sample_ms']:.1f}", f"{r['ratio']:.2f}")
    console.print(table)
