"""`uvssm bench`: every model through one harness, one parquet row per frame, Table 2 from the rows.

For each model and each clip of the chosen split, the clip's LQ frames stream through
`models.inference` (reflection_circle windows; two-stage models chained; optional tiles), each
output is scored against HQ with `uvssm.base.metrics` (VOTES protocol by default: Y channel,
`scale` pixels cropped, clip mean then mean), and the clip's rows are written to
`OUT/.parts/<dataset>/<setting>/<split>/<model>/<clip>.parquet` atomically. A part is the unit of
resume: a rerun skips parts made with the same weights and settings and redoes the others. At the
end every part is gathered into `frames.parquet`, `clips.parquet`, `table2.parquet` and
`models.parquet` (params, MACs, ms per frame, peak memory).

Clips longer than `shard_frames` are cut into shards of frames (`<clip>@<start>.parquet`), each
computed exactly as in the whole-clip run (`models.inference.restore_range`: window models and
bicubic at any frame, recurrent models at their chunks, chains whole). Shards do not depend on the
number of processes, so under torchrun every rank takes every world-size-th shard (REDS4's 4 clips
keep 8 GPUs busy) and results are the same for any number of GPUs. After all ranks finish, rank 0
checks that every shard's part is there, made with this run's settings, before it writes tables.

Weights are found and loaded by `models.trained.load_trained` (`--weights DIR` or `NAME=PATH`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from benchmarks import metrics, tables
from benchmarks.memory import PeakMemory
from uvssm.base.metrics import MetricConfig, quantize
from uvssm.base.numerics import numerics_record
from models.inference import choose_dcn_backend, fit_chunk, restore_range, shard_unit
from models.layers import warn_large_offsets
from models.ops.deform_conv import backend_for
from models.padding import pad_to_multiple
from models.trained import TrainedModel, load_trained
from models.training.data import frames_to_tensor
from models.windows import evenly_spaced, reflection_circle
from uvssm import __version__
from uvssm.base import atomic
from uvssm.base.clipsel import select_clips
from uvssm.base.datasets import ClipPair, PairedDataset, open_dataset
from uvssm.base.devices import cudnn_autotune, setup_device
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, write_rgb
from uvssm.base.progress import Progress, quiet
from uvssm.base.settings import setting_name
from uvssm.base.timing import SectionClock

SAVED_FRAMES = "frames"  # OUT/frames/<setting>/<model>/<clip>/%08d.png (+ .dfm.npy) for `uvssm report`


@dataclass
class BenchOptions:
    models: list[str]
    data: Path
    out: Path
    scale: int = 2
    qp: int | None = None
    platform: str | None = None
    split: str = "test"  # train, val, test, all; "reds4" = the val split of a synth-reds folder
    weights: list[str] = field(default_factory=list)  # DIRs and NAME=PATH entries
    device: str = "auto"
    bf16: bool = False
    batch: int = 1
    tile: int = 0
    overlap: int = 32
    color_space: str = "y"
    crop_border: int | None = None  # default: the scale (VOTES)
    max_frames: int = 0  # per clip, from its start; 0 = every frame
    save_frames: int = 1  # frames per clip kept as PNG for `uvssm report`
    chunk: int = 100  # recurrent models: output frames per chunk (100: a whole REDS clip; shortened on a GPU
    # whose free memory would not hold it, see models.inference.fit_chunk)
    chunk_overlap: int = 8  # recurrent models: context frames on each side of a chunk
    shard_frames: int = 25  # frames per shard of a clip (window models; recurrent: the chunk)
    channels_last: bool = False  # convolution weights in channels-last memory format (tensor cores like it)
    compile: str = ""  # torch.compile backend ("inductor"); empty: eager
    dcn_backend: str = "auto"  # deformable convolutions: "auto" (the faster here, measured), "torch", "torchvision"
    metrics: tuple[str, ...] = ("psnr", "ssim")  # "vmaf" adds libvmaf's score (needs an ffmpeg with libvmaf)
    vmaf_model: str = "vmaf_v0.6.1"
    ffmpeg: str | None = None  # the binary for VMAF and video outputs (default: uvssm's usual search)
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (name, DIR): outputs made elsewhere, scored
    clips: str | None = None  # a subset of the split's clips: "240-249,255" (uvssm.base.clipsel)
    num_shards: int = 1  # a job array without torchrun: job `shard_index` takes every num_shards-th shard ...
    shard_index: int = 0
    gather: bool = False  # ... and a last job with gather=True checks every part and writes the tables


@dataclass(frozen=True)
class Shard:
    """Frames start..end-1 of one clip, scored for one model; one part file."""

    clip: ClipPair
    start: int
    end: int
    whole: bool  # the clip's only shard: the part keeps the clip's name

    @property
    def part_name(self) -> str:
        return f"{self.clip.name}.parquet" if self.whole else f"{self.clip.name}@{self.start:05d}.parquet"

    def describe(self) -> str:
        return f"clip {self.clip.name}" if self.whole else f"clip {self.clip.name} frames {self.start}-{self.end - 1}"


def plan_shards(model: TrainedModel, clips: list[ClipPair], opts: BenchOptions) -> list[Shard]:
    """Every clip's scored frames cut at multiples of the shard length the model allows exactly."""
    unit = shard_unit(model.stages)
    shards = []
    for clip in clips:
        n = min(clip.n_frames, opts.max_frames) if opts.max_frames else clip.n_frames
        step = n if unit is None else max(unit, opts.shard_frames // unit * unit)
        starts = list(range(0, n, step))
        shards += [Shard(clip, a, min(a + step, n), len(starts) == 1) for a in starts]
    return shards


def count_macs(model: TrainedModel, lq_size: tuple[int, int], probe: int = 64) -> int | None:
    """Multiply-accumulates per output frame at LQ size `lq_size`, counted with torch's
    FlopCounterMode on a `probe`-pixel window and scaled by area (convolutions scale exactly; the
    deformable convolution counts as the dense conv it computes, through its pure-torch path whatever backend
    the run uses: the counter does not see inside torchvision's op; grid sampling is not counted)."""
    if not model.stages:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    h, w = lq_size
    total = 0.0
    side = probe
    for stage in model.stages:
        param = next(stage.model.parameters())  # the probe follows the model's device and dtype
        x = torch.rand(1, stage.num_frame, getattr(stage.model, "in_nc", 3), side, side, device=param.device,
                       dtype=param.dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), backend_for(stage.model, "torch"), counter:
            stage.model.eval()
            stage.model(x)
        per_output = stage.num_frame if stage.kind == "recurrent" else 1  # a sequence gives one frame per input
        total += counter.get_total_flops() / 2 * (h * w) / (side * side) / per_output
        h, w, side = h * stage.scale, w * stage.scale, side * stage.scale
    return int(round(total))


def _setting(ds: PairedDataset) -> str:
    return setting_name(ds.qp, ds.scale) if ds.qp is not None else f"{(ds.platform or 'frames').lower()}_x{ds.scale}"


def _precision(model: TrainedModel, opts: BenchOptions) -> str:
    if model.outputs is not None:
        return "external"  # made elsewhere: uvssm does not know
    return "bf16" if opts.bf16 and model.stages else "fp32"


def _foreign(name: str, folder: Path, ds: PairedDataset, opts: BenchOptions) -> TrainedModel:
    """Outputs made elsewhere as a model with no stages: read from `folder`, scored like the others."""
    from benchmarks.outputs import open_outputs

    if name in opts.models or name == "bicubic":
        raise UvssmError(f"--outputs {name}={folder}: {name} is also a model of --models; name the outputs otherwise")
    outputs = open_outputs(name, Path(folder), ds.clips, opts.ffmpeg)
    return TrainedModel(name, [], [str(Path(folder).resolve())], None, outputs=outputs)


def _run_key(model: TrainedModel, config: MetricConfig, opts: BenchOptions) -> str:
    what = {"model": model.name, "sha": model.checkpoint_sha256, "metric": asdict(config), "bf16": opts.bf16,
            "tile": opts.tile, "overlap": opts.overlap if opts.tile else 0, "max_frames": opts.max_frames,
            "chunk": next(([s.chunk, s.chunk_overlap] for s in model.stages if s.kind == "recurrent"), None),
            "channels_last": opts.channels_last, "compile": opts.compile, "dcn_backend": opts.dcn_backend}
    for metric in metrics.resolve(opts.metrics):  # parts without a metric are redone when it is asked for
        if not metric.required:
            what[metric.name] = metric.run_key(opts) if metric.run_key else True
    if model.outputs is not None:  # changed output files are rescored
        what["outputs"] = model.outputs.fingerprint()
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


class FramesAhead:
    """Frames of a clip by index, decoded by a thread pool `depth` frames ahead of the caller and
    uploaded once each to `device` (from pinned memory, without blocking, on CUDA). Indices are
    asked in mostly increasing order; the last `keep` frames served are kept for re-reads (a
    recurrent chunk's context)."""

    def __init__(self, load: Callable[[int], np.ndarray], n: int, device: torch.device, clock: SectionClock,
                 dtype: torch.dtype = torch.float32, scale: bool = True, depth: int = 8, keep: int = 24,
                 clock_key: str = "load"):
        from concurrent.futures import ThreadPoolExecutor

        self.load, self.n, self.device, self.clock, self.dtype, self.scale = load, n, device, clock, dtype, scale
        self.clock_key = clock_key  # where the time spent waiting for a frame is added
        self.depth, self.keep = depth, keep
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uvssm-decode")
        self.pending: dict = {}
        self.served: dict[int, torch.Tensor] = {}

    def _decode(self, i: int) -> torch.Tensor:
        a = np.ascontiguousarray(self.load(i))
        x = torch.from_numpy(a if a.flags.writeable else a.copy()).permute(2, 0, 1)
        return x.pin_memory() if self.device.type == "cuda" else x

    def __call__(self, i: int) -> torch.Tensor:
        if i in self.served:
            return self.served[i]
        for j in range(i, min(self.n, i + self.depth)):
            if j not in self.pending and j not in self.served:
                self.pending[j] = self.pool.submit(self._decode, j)
        t0 = time.perf_counter()
        x = self.pending.pop(i).result().to(self.device, non_blocking=True).to(self.dtype)
        if self.scale:
            x = x.div_(255.0)
        self.clock.add_host(self.clock_key, time.perf_counter() - t0)  # the host waited: its clock is right
        self.served[i] = x
        for old in [k for k in self.served if k < i - self.keep]:
            del self.served[old]
        return x

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True)


def _outputs(model: TrainedModel, clip: ClipPair, start: int, end: int, device: torch.device, opts: BenchOptions,
             clock: SectionClock) -> Iterator[torch.Tensor]:
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
        yield from restore_range(frames, clip.n_frames, start, end, model.stages, device=device, batch=opts.batch,
                                 bf16=opts.bf16, tile=opts.tile, overlap=opts.overlap, on_device=True)
    finally:
        frames.close()


def _save_frame(folder: Path, index: int, out: torch.Tensor, model: TrainedModel, clip: ClipPair,
                device: torch.device) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_rgb(folder / frame_name(index), quantize(out).permute(1, 2, 0).numpy())
    if model.stages and "dfm" in model.stages[0].features:
        stage = model.stages[0]
        first = stage.model
        idx = reflection_circle(index, clip.n_frames, stage.num_frame)
        x = frames_to_tensor(np.stack([clip.lq(i) for i in idx])).unsqueeze(0).to(device)
        padded, (h, w) = pad_to_multiple(x, stage.multiple)
        with torch.no_grad():
            dfm = first.estimate_dfm(padded)[0, 0, :h, :w].float().cpu().numpy()
        target = folder / f"{frame_name(index)[:-4]}.dfm.npy"
        with atomic.replacing(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, dfm.astype(np.float16))


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
            for i, out in zip(range(start, end), _outputs(model, clip, start, end, device, opts, clock)):
                gt = targets(i)
                if out.shape[-2:] != gt.shape[-2:]:
                    raise UvssmError(f"{clip.hq_dir / frame_name(i)}: HQ is {tuple(gt.shape[-2:])}, "
                                     f"{model.name} gave {tuple(out.shape[-2:])}")
                for scorer in scorers:
                    scorer.add(i, out, gt)
                if i in keep:
                    _save_frame(save_dir / clip.name, i, out.cpu(), model, clip, device)
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
    rows = {"dataset": ds.name, "split": opts.split, "setting": _setting(ds), "scale": ds.scale, "qp": ds.qp,
            "platform": ds.platform, "model": model.name, "clip": clip.name, "frame": list(range(start, end)),
            **columns, **provenance, "checkpoint_sha256": model.checkpoint_sha256, "device": device.type,
            "precision": _precision(model, opts), "dcn_backend": dcn_backend, "chunk": recurrent_chunk,
            "tile": opts.tile, "seconds": model_seconds, "load_seconds": spent["load"] / scored,
            "metric_seconds": spent["metric"] / scored, "peak_mem_mb": mem.peak_mb, "run_key": run_key}
    frame = pd.DataFrame({k: rows[k] for k in tables.frame_schema()})
    frame["chunk"] = frame["chunk"].astype("Int64")  # none for window models and bicubic
    return frame


def _part_dir(out: Path, ds: PairedDataset, split: str, model: str) -> Path:
    return out / ".parts" / ds.name / _setting(ds) / split / model


def _done(part: Path, run_key: str) -> bool:
    if not part.is_file():
        return False
    try:
        keys = pd.read_parquet(part, columns=["run_key"])["run_key"].unique()
    except Exception:  # an unreadable part is redone
        return False
    return list(keys) == [run_key]


def _agreed_min(value: int, dist_info, device: torch.device) -> int:
    """`value` as every rank agrees on it: the smallest over the ranks (shards must be cut alike on all)."""
    if dist_info.world_size <= 1:
        return value
    t = torch.tensor([value], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())


def _run_model(model: TrainedModel, mine: list[Shard], ds: PairedDataset, split_name: str, opts: BenchOptions,
               config: MetricConfig, device: torch.device, run_key: str, dist_info, out: Path, planned: list[Shard],
               progress: Progress) -> None:
    """This rank's shards of one model (already on `device`), each written as a part; the model goes back to
    the CPU at the end."""
    parts = _part_dir(out, ds, split_name, model.name)
    if dist_info.main:
        names, clips = {sh.part_name for sh in planned}, {sh.clip.name for sh in planned}
        for stale in parts.glob("*.parquet") if parts.is_dir() else []:
            # a planned clip cut another way by an earlier run would count twice; other clips' parts (another
            # --clips job's) stay
            if stale.stem.split("@")[0] in clips and stale.name not in names:
                stale.unlink()
        info = {"model": model.name, "params": model.params if model.outputs is None else None,
                "checkpoints": model.checkpoints,
                "outputs": None if model.outputs is None else str(Path(model.outputs.root).resolve()),
                "checkpoint_sha256": model.checkpoint_sha256, "dcn_backend": model.dcn_backend,
                "macs_per_frame": count_macs(model, ds.clips[0].lq_size), "lq_size": list(ds.clips[0].lq_size)}
        atomic.write_text(parts / "model.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    progress("model", {"model": model.name, "frames": sum(sh.end - sh.start for sh in mine), "params": model.params,
                       "dcn_backend": model.dcn_backend})
    eager = [stage.model for stage in model.stages]
    if opts.compile:  # after count_macs, which runs the eager model under a FLOP counter
        for stage in model.stages:
            stage.model = torch.compile(stage.model, backend=opts.compile, dynamic=False)
            stage.fixed_batch = opts.batch  # a clip's last, shorter batch is padded: one shape per clip size
    try:
        with _loud_recompile_limit(opts.compile):
            for shard in mine:
                clip, part = shard.clip, parts / shard.part_name
                if _done(part, run_key):
                    progress("skip", {"model": model.name, "clip": clip.name, "frames": shard.end - shard.start})
                    continue
                save_dir = out / SAVED_FRAMES / _setting(ds) / model.name if opts.save_frames else None
                rows = _compiled_run(model, shard, lambda: bench_clip(
                    model, clip, ds, opts, config, device, run_key, save_dir,
                    on_frame=lambda: progress("frame", {"model": model.name}), start=shard.start, end=shard.end))
                atomic.write_parquet(part, rows)
                for stage in model.stages:  # read once per shard, outside the forward: no sync per DCN
                    warn_large_offsets(stage.model)
                progress("clip", {"model": model.name, "clip": clip.name if shard.whole else shard.describe(),
                                  "psnr": rows["psnr"].mean(), "ssim": rows["ssim"].mean()})
    finally:
        for stage, module in zip(model.stages, eager):
            stage.model = module.cpu()
            stage.fixed_batch = 0


def _loud_recompile_limit(compiling: str):
    """While a compiled model runs: meeting dynamo's recompile limit is an error, not a silent fall-back to eager
    for the rest of the run (which a benchmark would then time as if compiled)."""
    import contextlib

    if not compiling:
        return contextlib.nullcontext()
    import torch._dynamo

    return torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)


def _compiled_run(model: TrainedModel, shard: Shard, run: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """`run()`, with dynamo's recompile-limit failure turned into a one-line error naming the shard."""
    try:
        return run()
    except Exception as exc:
        if type(exc).__name__ != "FailOnRecompileLimitHit":
            raise
        import torch._dynamo

        raise UvssmError(f"{shard.clip.lq_dir}: --compile: {model.name} met more input shapes than "
                         f"torch.compile's recompile limit ({torch._dynamo.config.recompile_limit}) by "
                         f"{shard.describe()}; bench clips of fewer sizes per run, or run without --compile") from None


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> dict:
    """Benchmark `opts.models` on the dataset; returns {"table2": DataFrame, "models": DataFrame, paths...}."""
    progress = progress or quiet
    if opts.batch < 1:
        raise UvssmError(f"--batch must be at least 1, got {opts.batch}")
    if opts.shard_frames < 1:
        raise UvssmError(f"--shard-frames must be at least 1, got {opts.shard_frames}")
    if opts.tile < 0 or opts.overlap < 0:
        raise UvssmError("--tile and --overlap must be >= 0")
    if opts.num_shards < 1 or not 0 <= opts.shard_index < opts.num_shards:
        raise UvssmError(f"--shard-index must be in 0..{opts.num_shards - 1} for --num-shards {opts.num_shards}, "
                         f"got {opts.shard_index}")
    opts = _check_metrics(opts)
    split = "val" if opts.split == "reds4" else opts.split
    ds = open_dataset(opts.data, split=split, scale=opts.scale, qp=opts.qp, platform=opts.platform, cache_mb=512)
    if opts.clips:
        chosen = set(select_clips([c.name for c in ds.clips], opts.clips, f"the {opts.split} split of {opts.data}"))
        ds.clips = [c for c in ds.clips if c.name in chosen]
    split_name = opts.split
    config = MetricConfig(opts.color_space, opts.scale if opts.crop_border is None else opts.crop_border)
    if not opts.models and not opts.outputs:
        raise UvssmError("nothing to score: give --models, --outputs NAME=DIR, or both")
    models = [load_trained(name, opts.scale, opts.weights) for name in opts.models]  # fail before any work
    models += [_foreign(name, folder, ds, opts) for name, folder in opts.outputs]
    for model in models:
        for stage in model.stages:
            stage.chunk, stage.chunk_overlap = opts.chunk, opts.chunk_overlap
    if opts.gather:
        return _gather_jobs(opts, ds, models, config)
    dist_info, device = setup_device(opts.device)
    if opts.bf16 and device.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise UvssmError("--bf16 on CPU needs oneDNN (mkldnn) support in this torch build")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    progress("data", {"text": ds.describe(), "device": str(device), "rank": dist_info.rank,
                      "world": dist_info.world_size})
    lq_hw = ds.clips[0].lq_size
    plans: dict[str, list[Shard]] = {}
    run_keys = {}
    with cudnn_autotune(device):  # every window of a run has the same size; the caller's setting comes back
        for model in models:
            for stage in model.stages:
                stage.model.to(device)
                if opts.channels_last:
                    stage.model.to(memory_format=torch.channels_last)
                if opts.num_shards == 1:  # a job array's jobs cannot agree: they all cut at --chunk
                    stage.chunk = _agreed_min(fit_chunk(stage, (lq_hw[1], lq_hw[0]), device, opts.bf16), dist_info,
                                              device)
            try:
                model.dcn_backend = choose_dcn_backend(model.stages, device, opts.bf16, (lq_hw[1], lq_hw[0]),
                                                       opts.dcn_backend)
            except ValueError as exc:
                raise UvssmError(f"--dcn-backend: {exc}") from None
            plans[model.name] = plan_shards(model, ds.clips, opts)  # after the chunk: recurrent shards are chunks
            mine = plans[model.name][opts.shard_index::opts.num_shards][dist_info.rank::dist_info.world_size]
            run_keys[model.name] = _run_key(model, config, opts)
            try:
                _run_model(model, mine, ds, split_name, opts, config, device, run_keys[model.name], dist_info, out,
                           plans[model.name], progress)
            finally:
                if model.outputs is not None:
                    model.outputs.close()  # video decoders
    if dist_info.world_size > 1:
        torch.distributed.barrier()
    if not dist_info.main or opts.num_shards > 1:  # a job of an array: `--gather` writes the tables
        return {}
    check_parts(out, ds, split_name, plans, run_keys)
    return _write_tables(opts, ds, out, split_name)


def _gather_jobs(opts: BenchOptions, ds: PairedDataset, models: list[TrainedModel], config: MetricConfig) -> dict:
    """`--gather` after a job array: every shard's part must be there, made with these settings (a job
    that failed or ran with other options is named), then the tables are written. Nothing runs a model."""
    out = Path(opts.out)
    plans = {m.name: plan_shards(m, ds.clips, opts) for m in models}
    check_parts(out, ds, opts.split, plans, {m.name: _run_key(m, config, opts) for m in models})
    return _write_tables(opts, ds, out, opts.split)


def _write_tables(opts: BenchOptions, ds: PairedDataset, out: Path, split_name: str) -> dict:
    meta = {"data": str(Path(opts.data).resolve()), "layout": ds.layout, "dataset": ds.name, "split": split_name,
            "scale": ds.scale, "qp": ds.qp, "platform": ds.platform, "platform_folder": opts.platform,
            "setting": _setting(ds),
            "uvssm_version": __version__, "torch_version": str(torch.__version__), "numerics": numerics_record()}
    runs_path = out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else {}
    runs[f"{ds.name}/{_setting(ds)}/{split_name}"] = meta
    atomic.write_text(runs_path, json.dumps(runs, indent=2, sort_keys=True) + "\n")
    return gather(out)


def _check_metrics(opts: BenchOptions) -> BenchOptions:
    """Validate `opts.metrics` (one-line errors) and let each metric check what it needs (VMAF: an ffmpeg with
    libvmaf)."""
    for metric in metrics.resolve(opts.metrics):
        if metric.check:
            opts = metric.check(opts)
    return opts


def check_parts(out: Path, ds: PairedDataset, split: str, plans: dict[str, list[Shard]],
                run_keys: dict[str, str]) -> None:
    """Raise a one-line UvssmError naming the shards whose part is missing or was made with other
    settings (a rank that failed, or ranks run with different options)."""
    missing = [f"{name} {shard.describe()}" for name, shards in plans.items() for shard in shards
               if not _done(_part_dir(out, ds, split, name) / shard.part_name, run_keys[name])]
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UvssmError(f"{out}: {len(missing)} of {sum(len(s) for s in plans.values())} parts missing after "
                         f"every rank finished ({listed}); run the same command again to complete them")


def gather(out: str | Path) -> dict:
    """Collect every finished part under OUT/.parts into the result tables (atomic writes)."""
    out = Path(out)
    files = sorted((out / ".parts").rglob("*.parquet"))
    if not files:
        raise UvssmError(f"{out}: no benchmark results yet (run `uvssm bench ... --out {out}`)")
    frames = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frames = frames.sort_values(["dataset", "setting", "split", "model", "clip", "frame"], kind="stable")
    frames = frames.reset_index(drop=True)
    clips = tables.per_clip(frames)
    table = tables.with_paper(tables.table2(frames))
    info = [json.loads(p.read_text()) | {"dataset": p.parts[-5], "setting": p.parts[-4], "split": p.parts[-3]}
            for p in sorted((out / ".parts").rglob("model.json"))]
    models = tables.model_stats(frames, pd.DataFrame(info))
    paths = {"frames": out / "frames.parquet", "clips": out / "clips.parquet", "table2": out / "table2.parquet",
             "models": out / "models.parquet"}
    for key, df in (("frames", frames), ("clips", clips), ("table2", table), ("models", models)):
        atomic.write_parquet(paths[key], df)
    return {"table2": table, "models": models, "paths": paths}

