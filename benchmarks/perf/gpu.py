"""One script for a GPU machine: is every GPU path correct, and how fast is it?

    python -m benchmarks gpu                # on CUDA; a few minutes on one H100/H200
    python -m benchmarks gpu --quick --device cpu   # the same code on tiny inputs (what the tests run)

One table, each row a measurement and, where the project set one, its goal. Every rate is a steady state
(`uvssm.base.timing.steady_seconds`): the path runs untimed first (kernels chosen, cuDNN autotuned, caches
filled), then N calls back to back between one synchronisation before and one after, none inside; start-up
costs are timed apart from per-frame costs. cuDNN autotuning is on wherever `uvssm bench` has it on.
- full-size VOTES x2 at LQ 960x540, one window, pure forward in fp32 and bf16: frames/s and peak memory
  (goal: bf16 >= 10 frames/s on one H100/H200);
- `restore_range` over >= 100 frames already on the device (bf16, cuDNN autotuned as bench): the model's own
  speed on a clip;
- `bench` end to end (the library call: PNG decode, upload, restore, metrics, parquet) on the same >= 100
  frames of a synthesised clip pair: its per-frame cost, from two runs of different lengths (the longer's
  extra frames over its extra seconds), as frames/s and as a ratio to `restore_range` (goal: >= 0.9); its
  start-up (model load, DCN choice, chunk sizing, files written), the rest of the shorter run's time;
- the deformable convolution at VOTES's L1 size under bf16 with each backend that runs, and the one bench picks;
- PSNR/SSIM pairs/s at 720p on the device against BasicSR's CPU code (numpy + cv2.filter2D, one pair at a time,
  `benchmarks.basicsr_cpu`), with the machine's core count (goal: >= 50x), and their largest difference;
- training iterations/s of full-size VOTES at batch 16 of GT-128 patches (bf16 autocast);
- agreement with the CPU of the deformable conv (pure torch and, where it imports, torchvision's).
Weights are random: only speed and agreement are measured. With --quick the sizes are tiny and
the models are votes-tiny, so the whole script runs anywhere in seconds.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path


def _sync(device) -> None:
    from uvssm.base.timing import synchronize

    synchronize(device)


def _timed(fn, device, repeat: int) -> float:
    """Seconds per call in the steady state: 2 untimed calls, then `repeat` calls between two synchronisations."""
    from uvssm.base.timing import steady_seconds

    return steady_seconds(fn, device, iters=repeat, warmup=2)


def per_frame_and_start_up(short: tuple[int, float], long: tuple[int, float]) -> tuple[float | None, float | None]:
    """(seconds per frame, start-up seconds) of a run from two runs of it, (frames, seconds) each: the longer
    run's extra seconds over its extra frames, and what the shorter run spent beyond its frames. None, None
    when the longer run was not slower (noise larger than the extra frames' cost)."""
    (n_short, t_short), (n_long, t_long) = short, long
    if n_long <= n_short or t_long <= t_short:
        return None, None
    per_frame = (t_long - t_short) / (n_long - n_short)
    return per_frame, max(t_short - n_short * per_frame, 0.0)


def _peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _forward(model_name: str, lq: tuple[int, int], device, bf16: bool, repeat: int) -> dict:
    import torch

    from models.inference import Stage, choose_dcn_backend
    from models.registry import create_model

    torch.manual_seed(0)
    model = create_model(model_name, 2).eval().to(device)
    backend = choose_dcn_backend([Stage(model, 5, 2)], device, bf16, lq)  # as bench picks it
    x = torch.rand(1, 5, 3, lq[1], lq[0], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with torch.no_grad(), autocast:
            model(x)

    seconds = _timed(step, device, repeat)
    return {"fps": 1 / seconds, "peak_mib": _peak_mib(device), "dcn_backend": backend}


def _bench_and_restore(model_name: str, hq: tuple[int, int], frames_per_clip: int, device, bf16: bool,
                       work: Path) -> dict:
    """`bench` end to end on the test clips of a synthesised sample: after a warm-up bench of a few frames, a
    short bench (the first `short` frames of each clip) and a whole one, whose difference is bench's per-frame
    cost and the rest its start-up; and `restore_range` over the same clips' LQ frames, uploaded to the
    device beforehand, under cuDNN autotuning as bench runs, warmed up, timed between two synchronisations."""
    import pandas as pd
    import torch

    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from models import checkpoint
    from models.inference import InferenceOptions, choose_dcn_backend, restore_range
    from models.registry import create_model, model_kwargs
    from models.trained import load_trained
    from uvssm.base.datasets import open_dataset
    from uvssm.base.devices import cudnn_autotune
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.sample import make_sample
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    ffmpeg = find_ffmpeg()
    src = make_sample(work / "src", ffmpeg, size=hq, frames_per_clip=frames_per_clip)
    synth_reds(src, work / "data", ffmpeg, SynthOptions(qps=(28,), scales=(2,)))
    torch.manual_seed(0)
    checkpoint.save(work / "w" / f"{model_name}.pt", create_model(model_name, 2),
                    {"model": model_name, "scale": 2, "model_kwargs": model_kwargs(model_name, 2)})
    opts = BenchOptions([model_name], work / "data", work / "res", qp=28, weights=[str(work / "w")], save_frames=0,
                        split="test", inference=InferenceOptions(device=device.type, bf16=bf16))
    run_bench(dataclasses.replace(opts, out=work / "warm", max_frames=5))  # warm-up

    def timed_bench(o) -> tuple[pd.DataFrame, float]:
        t0 = time.perf_counter()
        result = run_bench(o)
        seconds = time.perf_counter() - t0
        return pd.read_parquet(result.tables.paths["frames"]), seconds

    short = max(1, frames_per_clip // 5)
    short_frames, short_s = timed_bench(dataclasses.replace(opts, out=work / "short", max_frames=short))
    frames, bench_s = timed_bench(opts)
    per_frame, start_up = per_frame_and_start_up((len(short_frames), short_s), (len(frames), bench_s))

    model = load_trained(model_name, 2, [str(work / "w")])
    for stage in model.stages:
        stage.model.to(device)
    ds = open_dataset(work / "data", split="test", scale=2, qp=28)
    h, w = ds.clips[0].lq_size
    backend = choose_dcn_backend(model.stages, device, bf16, (w, h))
    clips = [[torch.from_numpy(clip.lq(i).copy()).permute(2, 0, 1).to(device).float().div_(255)
              for i in range(clip.n_frames)] for clip in ds.clips]

    def restore(limit: int | None = None) -> int:
        count = 0
        for lq in clips:
            n = len(lq) if limit is None else min(limit, len(lq))
            for _ in restore_range(lq.__getitem__, len(lq), 0, n, model.stages, device=device, bf16=bf16,
                                   on_device=True):
                count += 1
        return count

    with cudnn_autotune(device):  # as bench (benchmarks.harness): the same kernels on both sides
        restore(5)  # warm-up: kernels chosen and autotuned at this size
        _sync(device)
        t0 = time.perf_counter()
        count = restore()
        _sync(device)
        restore_s = time.perf_counter() - t0
    return {"bench_fps": None if per_frame is None else 1 / per_frame, "bench_start_up_s": start_up,
            "bench_whole_fps": len(frames) / bench_s, "frames": len(frames), "short_frames": len(short_frames),
            "restore_fps": count / restore_s, "dcn_backend": backend or "none",
            "bench_dcn_backend": str(frames["dcn_backend"].iloc[0])}


def _metrics(size: tuple[int, int], device, pairs: int, repeat: int) -> dict:
    """uvssm's batched device metrics against BasicSR's CPU code, one pair at a time, on random 720p pairs."""
    import numpy as np
    import torch

    from benchmarks import basicsr_cpu
    from uvssm.base.metrics import MetricConfig, psnr_ssim

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (pairs, size[1], size[0], 3), dtype=np.uint8)
    pred = np.clip(gt.astype(np.int16) + rng.integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
    t0 = time.perf_counter()
    reference = [basicsr_cpu.psnr_ssim_y(pred[i], gt[i], 2) for i in range(min(pairs, 4))]
    cpu_s = (time.perf_counter() - t0) / len(reference)
    p_dev = torch.from_numpy(pred).permute(0, 3, 1, 2).contiguous().to(device)
    g_dev = torch.from_numpy(gt).permute(0, 3, 1, 2).contiguous().to(device)
    config = MetricConfig("y", 2)
    dev_s = _timed(lambda: psnr_ssim(p_dev, g_dev, config), device, repeat) / pairs
    p, s = (t.cpu() for t in psnr_ssim(p_dev, g_dev, config))
    diff = max(max(abs(float(p[i]) - r[0]), abs(float(s[i]) - r[1])) for i, r in enumerate(reference))
    return {"device_pairs_s": 1 / dev_s, "cpu_pairs_s": 1 / cpu_s, "diff": diff, "engine": basicsr_cpu.ENGINE}


def _dcn_backends(lq: tuple[int, int], device, quick: bool) -> dict:
    """ms per call of one DCN shaped as VOTES's L1 pack (128 channels, 8 groups; quick: 16) under bf16, per
    backend that runs here."""
    from models.layers import DCNv2Pack
    from models.ops.deform_conv import measure_backends

    channels = 16 if quick else 128
    pack = DCNv2Pack(channels, channels, 3, padding=1, deformable_groups=8)
    names = measure_backends(pack, lq, device, bf16=True, repeat=1 if quick else 5)
    if len(names) == 1:  # one backend: measure_backends did not time it
        import torch

        w, h = lq
        x = torch.rand(1, channels, h, w, device=device)
        pack = pack.to(device).eval()

        def call():
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                pack(x, x)
        names = {next(iter(names)): _timed(call, device, 1 if quick else 10)}
    return {"channels": channels, "ms": {k: 1e3 * v for k, v in names.items()}}


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


def host() -> str:
    """The CPU side of the machine, as the table states it."""
    import torch

    return f"{os.cpu_count()} CPU cores, torch {torch.get_num_threads()} threads"


def run(device: str = "cuda", quick: bool = False) -> list[dict]:
    """Every measurement as a row {check, value, unit, goal}; `quick`: tiny sizes, tiny models."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python -m benchmarks gpu: no CUDA device here (use --device cpu --quick to try the script)")
    name = "votes-tiny" if quick else "votes"
    lq = (64, 36) if quick else (960, 540)
    repeat = 1 if quick else 10  # timed calls back to back, after 2 untimed
    rows = []
    for bf16 in (False, True):
        r = _forward(name, lq, dev, bf16, repeat)
        rows.append({"check": f"{name} x2 forward, one window, LQ {lq[0]}x{lq[1]}, {'bf16' if bf16 else 'fp32'} "
                              f"(DCN: {r['dcn_backend']})",
                     "value": r["fps"], "unit": "frames/s", "goal": ">= 10 (bf16, H100/H200)" if bf16 else "",
                     "peak_mib": r["peak_mib"]})
    per_clip = 5 if quick else 50  # the sample's 2 test clips: >= 100 frames in the full run
    with tempfile.TemporaryDirectory(prefix="uvssm-gpu-") as tmp:
        e2e = _bench_and_restore(name, (2 * lq[0], 2 * lq[1]), per_clip, dev, True, Path(tmp))
    rows.append({"check": f"restore_range, {name}, bf16, {e2e['frames']} frames already on the device "
                          f"(DCN: {e2e['dcn_backend']})", "value": e2e["restore_fps"], "unit": "frames/s", "goal": ""})
    rows.append({"check": f"bench end to end, {name}, bf16, the same {e2e['frames']} frames, per frame: the extra "
                          f"frames over the extra seconds beyond a {e2e['short_frames']}-frame bench "
                          f"(DCN: {e2e['bench_dcn_backend']})", "value": e2e["bench_fps"], "unit": "frames/s",
                 "goal": "within 10% of restore_range"})
    rows.append({"check": f"bench start-up, {name}: the {e2e['short_frames']}-frame bench beyond its frames "
                          f"(whole bench with start-up: {e2e['bench_whole_fps']:.2f} frames/s)",
                 "value": e2e["bench_start_up_s"], "unit": "s", "goal": ""})
    rows.append({"check": "bench end to end / restore_range",
                 "value": None if e2e["bench_fps"] is None else e2e["bench_fps"] / e2e["restore_fps"],
                 "unit": "ratio", "goal": ">= 0.9"})
    dcn = _dcn_backends(lq, dev, quick)
    for backend, ms in dcn["ms"].items():
        rows.append({"check": f"one DCN, {dcn['channels']} ch, 8 groups, LQ {lq[0]}x{lq[1]}, bf16 autocast: {backend}",
                     "value": ms, "unit": "ms", "goal": ""})
    size = (128, 72) if quick else (1280, 720)
    m = _metrics(size, dev, 2 if quick else 16, repeat)
    rows.append({"check": f"PSNR+SSIM (Y, crop 2) at {size[0]}x{size[1]} on the device, batches of {2 if quick else 16}",
                 "value": m["device_pairs_s"], "unit": "pairs/s", "goal": f">= 50x BasicSR ({50 * m['cpu_pairs_s']:.0f})"})
    rows.append({"check": f"PSNR+SSIM by BasicSR's CPU code, one pair at a time ({m['engine']}; {host()})",
                 "value": m["cpu_pairs_s"], "unit": "pairs/s", "goal": ""})
    rows.append({"check": "device metrics / BasicSR's CPU code", "value": m["device_pairs_s"] / m["cpu_pairs_s"],
                 "unit": "ratio", "goal": ">= 50"})
    rows.append({"check": "metrics: device vs BasicSR's CPU code", "value": m["diff"], "unit": "max |diff| (dB, SSIM)",
                 "goal": "<= 1e-6"})
    t = _train_step(name, 2 if quick else 16, 32 if quick else 128, dev, repeat)
    rows.append({"check": f"training step, {name}, batch {2 if quick else 16} of GT-{32 if quick else 128}",
                 "value": t["its"], "unit": "iterations/s", "goal": ""})
    for backend, diff in _dcn_agreement(dev).items():
        rows.append({"check": f"deformable conv ({'pure torch' if backend == 'torch' else 'torchvision'}) vs CPU",
                     "value": diff, "unit": "max |diff|", "goal": "<= 1e-4"})
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    for r in rows:
        r["device"] = f"{device_name} ({host()})"
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"GPU paths on {rows[0]['device'] if rows else '?'}", title_justify="left")
    for col in ("check", "value", "unit", "goal", "peak MiB"):
        table.add_column(col, justify="right" if col in ("value", "peak MiB") else "left")
    for r in rows:
        na = "n/a (torchvision does not import)" if "torchvision" in r["check"] else "n/a (noise > the frames' cost)"
        value = na if r["value"] is None else (
            f"{r['value']:.2e}" if r["unit"].startswith("max") else f"{r['value']:.2f}")
        peak = r.get("peak_mib")
        table.add_row(r["check"], value, r["unit"], r["goal"], "-" if peak is None else f"{peak:.0f}")
    console.print(table)
