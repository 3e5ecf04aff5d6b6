"""Scoring one shard: a model's outputs for frames start..end-1 of a clip against HQ, one row per frame (every
metric, the cost, the provenance), and the saved frames and degradation maps `uvssm report` shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from benchmarks import metrics, tables
from benchmarks.memory import PeakMemory
from benchmarks.options import BenchOptions
from benchmarks.prefetch import FramesAhead
from benchmarks.shards import setting_of
from models.inference import degradation_map, restore_range
from models.trained import TrainedModel
from models.windows import evenly_spaced
from uvssm.base import atomic
from uvssm.base.datasets import ClipPair, PairedDataset
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, frames_to_tensor, write_rgb
from uvssm.base.metrics import MetricConfig, quantize
from uvssm.base.timing import SectionClock


def precision(model: TrainedModel, opts: BenchOptions) -> str:
    if model.outputs is not None:
        return "external"  # made elsewhere: uvssm does not know
    return "bf16" if opts.inference.bf16 and model.stages else "fp32"


def model_outputs(model: TrainedModel, clip: ClipPair, start: int, end: int, device: torch.device,
                  opts: BenchOptions, clock: SectionClock) -> Iterator[torch.Tensor]:
    """Outputs start..end-1 on `device` (windows near the end see the frames after it, as without
    max_frames)."""
    if model.outputs is not None:  # made elsewhere: read, as float64 like bicubic's (exact once quantised)
        frames = FramesAhead(model.outputs.clips[clip.name].frame, clip.n_frames, device, clock, dtype=torch.float64)
        try:
            for i in range(start, end):
                yield frames(i)
        finally:
            frames.close()
        return
    frames = FramesAhead(clip.lq, clip.n_frames, device, clock,
                         dtype=torch.float64 if not model.stages else torch.float32)
    try:
        if not model.stages:
            from uvssm.base.scalers import imresize

            for i in range(start, end):  # float64 until quantised, as the metric's reference code
                yield imresize(frames(i), clip.scale).clamp_(0, 1)
            return
        yield from restore_range(frames, clip.n_frames, start, end, model.stages, device=device,
                                 **opts.inference.run_kwargs(), on_device=True)
    finally:
        frames.close()


def save_frame(folder: Path, index: int, out: torch.Tensor, model: TrainedModel, clip: ClipPair,
               device: torch.device, bf16: bool = False) -> None:
    """Output frame `index` as PNG, and for a model with a DFM the map it estimated (float16 .npy): under the
    autocast of the run (`bf16`), so the map saved is the one the forward used."""
    folder.mkdir(parents=True, exist_ok=True)
    write_rgb(folder / frame_name(index), quantize(out).permute(1, 2, 0).numpy())
    if model.stages and "dfm" in model.stages[0].features:
        # the window as one contiguous tensor, as the forward's windows are: its memory layout picks oneDNN's
        # kernels, and so the last bits (a channels-last window gave the first frame's map 0.14 off on 4% of it)
        window = lambda idx: frames_to_tensor(np.stack([clip.lq(i) for i in idx])).contiguous()  # noqa: E731
        dfm = degradation_map(model.stages[0], window, clip.n_frames, index, device, bf16)
        target = folder / f"{frame_name(index)[:-4]}.dfm.npy"
        with atomic.replacing(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, dfm.numpy().astype(np.float16))


def bench_clip(model: TrainedModel, clip: ClipPair, ds: PairedDataset, opts: BenchOptions, config: MetricConfig,
               device: torch.device, run_key: str, save_dir: Path | None,
               on_frame: Callable[[], None] | None = None, start: int = 0, end: int | None = None) -> pd.DataFrame:
    """Score frames start..end-1 (default: every frame, or the first max_frames) of one clip; returns their rows."""
    n = min(clip.n_frames, opts.max_frames) if opts.max_frames else clip.n_frames
    end = n if end is None else end
    need = max((st.num_frame if st.kind == "window" else 2 for st in model.stages), default=1)
    if clip.n_frames < need:
        raise UvssmError(f"{clip.lq_dir}: {clip.n_frames} frames, fewer than the {need}-frame window of {model.name}")
    keep = set(evenly_spaced(n, opts.save_frames)) if save_dir is not None and opts.save_frames > 0 else set()
    dcn_backend = model.dcn_backend
    recurrent_chunk = next((st.chunk for st in model.stages if st.kind == "recurrent"), None)
    clock = SectionClock(device, ("load", "metric"))  # the metric's device work timed by CUDA events on a GPU
    t_start = time.perf_counter()
    # HQ frames: waiting for one counts as metric time (the HQ decode belongs to scoring, as before)
    targets = FramesAhead(clip.hq, clip.n_frames, device, clock, dtype=torch.uint8, scale=False, clock_key="metric")
    active = metrics.resolve(opts.metrics)
    scorers = metrics.open_scorers(active, metrics.ScoreContext(clip, start, end, config, device, opts, clock))
    with PeakMemory(device) as mem:
        try:
            for i, out in zip(range(start, end), model_outputs(model, clip, start, end, device, opts, clock)):
                gt = targets(i)
                if out.shape[-2:] != gt.shape[-2:]:
                    raise UvssmError(f"{clip.hq_dir / frame_name(i)}: HQ is {tuple(gt.shape[-2:])}, "
                                     f"{model.name} gave {tuple(out.shape[-2:])}")
                for scorer in scorers:
                    scorer.add(i, out, gt)
                if i in keep:
                    save_frame(save_dir / clip.name, i, out.cpu(), model, clip, device, opts.inference.bf16)
                if on_frame:
                    on_frame()
            columns: dict[str, list[float]] = {}
            for scorer in scorers:  # the device scorer's one read back is here
                columns.update(scorer.finish())
        finally:
            targets.close()
            for scorer in scorers:
                scorer.close()
    total = time.perf_counter() - t_start  # the read back above waited for every queued kernel
    spent = clock.totals()
    computed = end - start  # outputs the model produced: a recurrent stage runs whole chunks even when fewer are scored
    for st in model.stages:
        if st.kind == "recurrent":
            computed = max(computed, min(clip.n_frames, start + -(-(end - start) // st.chunk) * st.chunk) - start)
    scored = end - start
    model_seconds = max(total - spent["load"] - spent["metric"], 0.0) / computed
    columns.update(metrics.nan_columns(active, scored))
    provenance = metrics.empty_provenance(active)
    for scorer in scorers:
        provenance.update(scorer.provenance())
    rows = {"dataset": ds.name, "split": opts.split, "setting": setting_of(ds), "scale": ds.scale, "qp": ds.qp,
            "platform": ds.platform, "model": model.name, "clip": clip.name, "frame": list(range(start, end)),
            **columns, **provenance, "checkpoint_sha256": model.checkpoint_sha256, "device": device.type,
            "precision": precision(model, opts), "dcn_backend": dcn_backend, "chunk": recurrent_chunk,
            "tile": opts.inference.tile, "seconds": model_seconds, "load_seconds": spent["load"] / scored,
            "metric_seconds": spent["metric"] / scored, "peak_mem_mb": mem.peak_mb, "run_key": run_key}
    frame = pd.DataFrame({k: rows[k] for k in tables.frame_schema()})
    frame["chunk"] = frame["chunk"].astype("Int64")  # none for window models and bicubic
    return frame
