"""One script for a GPU machine: is every GPU path correct, and how fast is it?

    python -m benchmarks gpu                # on CUDA; a few minutes on one H100/H200
    python -m benchmarks gpu --quick --device cpu   # the same code on tiny inputs (what the tests run)

One table, each row a measurement and, where the project set one, its goal:
- full-size VOTES x2, one window at LQ 960x540, pure forward in fp32 and bf16: frames/s and peak
  memory (goal: bf16 >= 10 frames/s on one H100/H200);
- `bench` end to end (the library call) on a synthesised clip at that LQ size: frames/s, and its
  ratio to the bf16 pure forward (goal: within 10%);
- PSNR/SSIM pairs/s at 720p on the device and on the CPU (goal: >= 50x the CPU's float64 path,
  which is as fast as BasicSR's);
- training iterations/s of full-size VOTES at batch 16 of GT-128 patches (bf16 autocast);
- agreement with the CPU: the deformable conv (pure torch and, where it imports, torchvision's)
  and the metrics, as the largest absolute difference.
Weights are random: only speed and agreement are measured. With --quick the sizes are tiny and
the models are votes-tiny, so the whole script runs anywhere in seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeat: int) -> float:
    """Best wall time of `repeat` calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _forward(model_name: str, lq: tuple[int, int], device, bf16: bool, repeat: int) -> dict:
    import torch

    from models.registry import create_model

    torch.manual_seed(0)
    model = create_model(model_name, 2).eval().to(device)
    x = torch.rand(1, 5, 3, lq[1], lq[0], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with torch.no_grad(), autocast:
            model(x)

    seconds = _timed(step, device, repeat)
    return {"fps": 1 / seconds, "peak_mib": _peak_mib(device)}


def _bench_end_to_end(model_name: str, hq: tuple[int, int], frames: int, device, bf16: bool, work: Path) -> dict:
    import pandas as pd
    import torch

    from benchmarks.harness import BenchOptions, run_bench
    from models import checkpoint
    from models.registry import create_model, model_kwargs
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.sample import make_sample
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    ffmpeg = find_ffmpeg()
    src = make_sample(work / "src", ffmpeg, size=hq, frames_per_clip=frames)
    synth_reds(src, work / "data", ffmpeg, SynthOptions(qps=(28,), scales=(2,)))
    torch.manual_seed(0)
    checkpoint.save(work / "w" / f"{model_name}.pt", create_model(model_name, 2),
                    {"model": model_name, "scale": 2, "model_kwargs": model_kwargs(model_name, 2)})
    opts = BenchOptions([model_name], work / "data", work / "res", qp=28, weights=[str(work / "w")],
                        device=device.type, bf16=bf16, save_frames=0, split="test")
    t0 = time.perf_counter()
    result = run_bench(opts)
    seconds = time.perf_counter() - t0
    return {"fps": len(pd.read_parquet(result["paths"]["frames"])) / seconds}


def _metrics(size: tuple[int, int], device, pairs: int, repeat: int) -> dict:
    import torch

    from uvssm.base.metrics import MetricConfig, psnr_ssim

    g = torch.Generator().manual_seed(0)
    pred = torch.rand(pairs, 3, size[1], size[0], generator=g)
    gt = (torch.rand(pairs, 3, size[1], size[0], generator=g) * 255).round().to(torch.uint8)
    config = MetricConfig("y", 2)
    cpu = _timed(lambda: psnr_ssim(pred[:1], gt[:1], config), torch.device("cpu"), 1)
    p_dev, g_dev = pred.to(device), gt.to(device)
    dev = _timed(lambda: psnr_ssim(p_dev, g_dev, config), device, repeat) / pairs
    want = psnr_ssim(pred, gt, config)
    got = [v.cpu() for v in psnr_ssim(p_dev, g_dev, config)]
    diff = max(float((a - b).abs().max()) for a, b in zip(got, want))
    return {"device_pairs_s": 1 / dev, "cpu_pairs_s": 1 / cpu, "diff": diff}


def _train_step(model_name: str, batch: int, gt: int, device, repeat: int) -> dict:
    import torch

    from models.registry import create_model
    from models.training.losses import charbonnier

    torch.manual_seed(0)
    model = create_model(model_name, 2).train().to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4, betas=(0.9, 0.99))
    x = torch.rand(batch, 5, 3, gt // 2, gt // 2, device=device)
    target = torch.rand(batch, 3, gt, gt, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            loss = charbonnier(model(x).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"its": 1 / _timed(step, device, repeat)}


def _dcn_agreement(device) -> dict:
    import torch

    from models.ops.deform_conv import deform_conv2d, torchvision_deform_conv2d

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 16, 24, 40, generator=g)
    offset = torch.randn(2, 2 * 9, 24, 40, generator=g) * 2
    mask = torch.rand(2, 9, 24, 40, generator=g)
    weight = torch.randn(8, 16, 3, 3, generator=g) * 0.1
    want = deform_conv2d(x, offset, weight, None, padding=1, mask=mask, backend="torch")
    out = {}
    for backend in ("torch", "torchvision"):
        if backend == "torchvision" and torchvision_deform_conv2d() is None:
            out[backend] = None
            continue
        got = deform_conv2d(x.to(device), offset.to(device), weight.to(device), None, padding=1,
                            mask=mask.to(device), backend=backend).cpu()
        out[backend] = float((got - want).abs().max())
    return out


def run(device: str = "cuda", quick: bool = False) -> list[dict]:
    """Every measurement as a row {check, value, unit, goal}; `quick`: tiny sizes, tiny models."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python -m benchmarks gpu: no CUDA device here (use --device cpu --quick to try the script)")
    name = "votes-tiny" if quick else "votes"
    lq = (64, 36) if quick else (960, 540)
    repeat = 1 if quick else 3
    rows = []
    for bf16 in (False, True):
        r = _forward(name, lq, dev, bf16, repeat)
        rows.append({"check": f"{name} x2 forward, LQ {lq[0]}x{lq[1]}, {'bf16' if bf16 else 'fp32'}",
                     "value": r["fps"], "unit": "frames/s", "goal": ">= 10 (bf16, H100/H200)" if bf16 else "",
                     "peak_mib": r["peak_mib"]})
    forward_bf16 = rows[-1]["value"]
    with tempfile.TemporaryDirectory(prefix="uvssm-gpu-") as tmp:
        e2e = _bench_end_to_end(name, (2 * lq[0], 2 * lq[1]), 5 if quick else 12, dev, True, Path(tmp))
    rows.append({"check": f"bench end to end, {name}, bf16, LQ {lq[0]}x{lq[1]}", "value": e2e["fps"],
                 "unit": "frames/s", "goal": "within 10% of the bf16 forward"})
    rows.append({"check": "bench end to end / bf16 forward", "value": e2e["fps"] / forward_bf16, "unit": "ratio",
                 "goal": ">= 0.9"})
    size = (128, 72) if quick else (1280, 720)
    m = _metrics(size, dev, 2 if quick else 16, repeat)
    rows.append({"check": f"PSNR+SSIM (Y, crop 2) at {size[0]}x{size[1]} on the device", "value": m["device_pairs_s"],
                 "unit": "pairs/s", "goal": f">= 50x CPU ({50 * m['cpu_pairs_s']:.0f})"})
    rows.append({"check": "PSNR+SSIM on the CPU, float64 (BasicSR's speed)", "value": m["cpu_pairs_s"],
                 "unit": "pairs/s", "goal": ""})
    rows.append({"check": "metrics: device vs CPU", "value": m["diff"], "unit": "max |diff| (dB, SSIM)",
                 "goal": "<= 1e-6"})
    t = _train_step(name, 2 if quick else 16, 32 if quick else 128, dev, repeat)
    rows.append({"check": f"training step, {name}, batch {2 if quick else 16} of GT-{32 if quick else 128}",
                 "value": t["its"], "unit": "iterations/s", "goal": ""})
    for backend, diff in _dcn_agreement(dev).items():
        rows.append({"check": f"deformable conv ({'pure torch' if backend == 'torch' else 'torchvision'}) vs CPU",
                     "value": diff, "unit": "max |diff|", "goal": "<= 1e-4"})
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    for r in rows:
        r["device"] = device_name
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"GPU paths on {rows[0]['device'] if rows else '?'}", title_justify="left")
    for col in ("check", "value", "unit", "goal", "peak MiB"):
        table.add_column(col, justify="right" if col in ("value", "peak MiB") else "left")
    for r in rows:
        value = "n/a (torchvision does not import)" if r["value"] is None else (
            f"{r['value']:.2e}" if r["unit"].startswith("max") else f"{r['value']:.2f}")
        peak = r.get("peak_mib")
        table.add_row(r["check"], value, r["unit"], r["goal"], "-" if peak is None else f"{peak:.0f}")
    console.print(table)
