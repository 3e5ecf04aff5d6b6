"""`uvssm bench`: every model through one harness, one parquet row per frame, Table 2 from the rows.

For each model and each clip of the chosen split, the clip's LQ frames stream through
`models.inference` (reflection_circle windows; two-stage models chained; optional tiles), each
output is scored against HQ (`benchmarks.scoring`; VOTES protocol by default: Y channel,
`scale` pixels cropped, clip mean then mean), and the clip's rows are written as one part
(`benchmarks.shards`) atomically. A part is the unit of resume: a rerun skips parts made with the
same weights and settings and redoes the others. At the end every part is gathered into
`frames.parquet`, `clips.parquet`, `table2.parquet` and `models.parquet` (`benchmarks.gather`).

Clips longer than `shard_frames` are cut into shards of frames (`<clip>@<start>.parquet`), each
computed exactly as in the whole-clip run (`models.inference.restore_range`: window models and
bicubic at any frame, recurrent models at their chunks, chains whole). Shards do not depend on the
number of processes, so under torchrun every rank takes every world-size-th shard (REDS4's 4 clips
keep 8 GPUs busy) and results are the same for any number of GPUs. After all ranks finish, rank 0
checks that every shard's part is there, made with this run's settings, before it writes tables.

Weights are found and loaded by `models.trained.load_trained` (`--weights DIR` or `NAME=PATH`); the
loaded models are not changed: each runs as a copy set up by `models.inference.prepare`.

Progress events (`uvssm.base.progress`): BenchData, then per model BenchModel, and per shard BenchSkip
(already done) or BenchFrame per frame and BenchClip at its end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from benchmarks import metrics
from benchmarks.gather import Tables, gather
from benchmarks.options import BenchOptions
from benchmarks.scoring import bench_clip
from benchmarks.shards import (Shard, check_parts, part_dir, part_done, plan_shards, record_array, recorded_backend,
                               run_key, setting_of)
from models.inference import check_offsets, compiled, configured, count_macs, prepare
from models.trained import TrainedModel, load_trained
from uvssm import __version__
from uvssm.base import atomic
from uvssm.base.clipsel import select_clips
from uvssm.base.datasets import PairedDataset, open_dataset
from uvssm.base.devices import barrier, cudnn_autotune, exchange, ranks_fail_together, setup_device
from uvssm.base.errors import UvssmError
from uvssm.base.metrics import MetricConfig
from uvssm.base.numerics import numerics_record
from uvssm.base.progress import BenchClip, BenchData, BenchFrame, BenchModel, BenchSkip, Progress, quiet

SAVED_FRAMES = "frames"  # OUT/frames/<setting>/<model>/<clip>/%08d.png (+ .dfm.npy) for `uvssm report`


@dataclass(frozen=True)
class BenchResult:
    """What one process of a benchmark did. `tables` is what the run wrote when it completed in this process
    (a single process, rank 0 of torchrun, or `--gather`); None on the other ranks and in a job of an array,
    whose parts `--gather` (or rank 0) collects."""

    out: Path
    rank: int
    world_size: int
    parts: list[Path] = field(default_factory=list)  # the parts this process scored or found done
    tables: Tables | None = None


def _foreign(name: str, folder: Path, ds: PairedDataset, opts: BenchOptions) -> TrainedModel:
    """Outputs made elsewhere as a model with no stages: read from `folder`, scored like the others."""
    from benchmarks.outputs import open_outputs

    if name in opts.models or name == "bicubic":
        raise UvssmError(f"--outputs {name}={folder}: {name} is also a model of --models; name the outputs otherwise")
    outputs = open_outputs(name, Path(folder), ds.clips, opts.ffmpeg)
    return TrainedModel(name, [], [str(Path(folder).resolve())], None, outputs=outputs)


def _agreed_min(value: int, dist_info) -> int:
    """`value` as every rank agrees on it: the smallest over the ranks (shards must be cut alike on all). Agreed
    through the store (`exchange`), so a rank that failed before it stops the others at once."""
    return min(int(v) for v in exchange(dist_info, str(value)))


def _write_model_info(parts: Path, model: TrainedModel, ds: PairedDataset, planned: list[Shard]) -> None:
    """model.json beside the parts (params, MACs, weights), and the parts of planned clips cut another way by an
    earlier run removed (they would count twice; other clips' parts, another --clips job's, stay)."""
    names, clips = {sh.part_name for sh in planned}, {sh.clip.name for sh in planned}
    for stale in parts.glob("*.parquet") if parts.is_dir() else []:
        if stale.stem.split("@")[0] in clips and stale.name not in names:
            stale.unlink()
    info = {"model": model.name, "params": model.params if model.outputs is None else None,
            "checkpoints": model.checkpoints,
            "outputs": None if model.outputs is None else str(Path(model.outputs.root).resolve()),
            "checkpoint_sha256": model.checkpoint_sha256, "dcn_backend": model.dcn_backend,
            "macs_per_frame": count_macs(model.stages, ds.clips[0].lq_size), "lq_size": list(ds.clips[0].lq_size)}
    atomic.write_text(parts / "model.json", json.dumps(info, indent=2, sort_keys=True) + "\n")


def _run_model(model: TrainedModel, mine: list[Shard], ds: PairedDataset, opts: BenchOptions, config: MetricConfig,
               device: torch.device, key: str, main: bool, out: Path, planned: list[Shard],
               progress: Progress) -> list[Path]:
    """This process's shards of one model (set up on `device`), each written as a part; returns the parts."""
    parts = part_dir(out, ds, opts.split, model.name)
    if main:
        _write_model_info(parts, model, ds, planned)
    progress(BenchModel(model.name, sum(sh.end - sh.start for sh in mine), model.params, model.dcn_backend))
    # after count_macs, which runs the eager model under a FLOP counter
    running = dataclasses.replace(model, stages=compiled(model.stages, opts.inference))
    done = []
    with _loud_recompile_limit(opts.inference.compile):
        for shard in mine:
            clip, part = shard.clip, parts / shard.part_name
            done.append(part)
            if part_done(part, key):
                progress(BenchSkip(model.name, clip.name, shard.end - shard.start))
                continue
            save_dir = out / SAVED_FRAMES / setting_of(ds) / model.name if opts.save_frames else None
            rows = _compiled_run(model, shard, lambda: bench_clip(
                running, clip, ds, opts, config, device, key, save_dir,
                on_frame=lambda: progress(BenchFrame(model.name)), start=shard.start, end=shard.end))
            atomic.write_parquet(part, rows)
            check_offsets(model.stages)  # read once per shard, outside the forward: no sync per DCN
            progress(BenchClip(model.name, clip.name if shard.whole else shard.describe(),
                               float(rows["psnr"].mean()), float(rows["ssim"].mean())))
    return done


def _loud_recompile_limit(compiling: str):
    """While a compiled model runs: meeting dynamo's recompile limit is an error, not a silent fall-back to eager
    for the rest of the run (which a benchmark would then time as if compiled)."""
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


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> BenchResult:
    """Benchmark `opts.models` (and `opts.outputs`) on the dataset; every process gets its BenchResult."""
    progress = progress or quiet
    opts.check()
    opts = _check_metrics(opts)
    split = "val" if opts.split == "reds4" else opts.split
    ds = open_dataset(opts.data, split=split, scale=opts.scale, qp=opts.qp, platform=opts.platform, cache_mb=512)
    if opts.clips:
        chosen = set(select_clips([c.name for c in ds.clips], opts.clips, f"the {opts.split} split of {opts.data}"))
        ds.clips = [c for c in ds.clips if c.name in chosen]
    config = MetricConfig(opts.color_space, opts.scale if opts.crop_border is None else opts.crop_border)
    models = [load_trained(name, opts.scale, opts.weights) for name in opts.models]  # fail before any work
    models += [_foreign(name, folder, ds, opts) for name, folder in opts.outputs]
    if opts.gather:
        return _gather_jobs(opts, ds, models, config)
    dist_info, device = setup_device(opts.inference.device)
    if opts.inference.bf16 and device.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise UvssmError("--bf16 on CPU needs oneDNN (mkldnn) support in this torch build")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    progress(BenchData(ds.describe(), str(device), dist_info.rank, dist_info.world_size))
    if opts.num_shards > 1 and dist_info.main:  # for `--gather`'s advice on a missing job
        record_array(out, ds, opts.split, opts.num_shards)
    lq_wh = tuple(reversed(ds.clips[0].lq_size))
    plans: dict[str, list[Shard]] = {}
    keys: dict[str, str] = {}
    backends: dict[str, str | None] = {}  # each model's DCN backend, for runs.json
    parts: list[Path] = []
    # a rank's error stops every rank; cuDNN autotunes (every window of a run has the same size), then as before
    with ranks_fail_together(dist_info), cudnn_autotune(device):
        for loaded in models:
            try:
                # a job array's jobs cannot agree on a chunk that fits: they all cut at --chunk
                # every rank runs rank 0's DCN backend ("auto": the one rank 0 measured faster)
                stages, backend = prepare(loaded.stages, opts.inference, device, lq_wh, fit=opts.num_shards == 1,
                                          agree=lambda n: _agreed_min(n, dist_info),
                                          share=lambda word: exchange(dist_info, word))
            except ValueError as exc:
                raise UvssmError(f"--dcn-backend: {exc}") from None
            model = dataclasses.replace(loaded, stages=stages, dcn_backend=backend)
            backends[model.name] = backend
            plans[model.name] = plan_shards(model, ds.clips, opts)  # after the chunk: recurrent shards are chunks
            mine = plans[model.name][opts.shard_index::opts.num_shards][dist_info.rank::dist_info.world_size]
            keys[model.name] = run_key(model, config, opts)
            try:
                parts += _run_model(model, mine, ds, opts, config, device, keys[model.name], dist_info.main, out,
                                    plans[model.name], progress)
            finally:
                for stage in model.stages:  # the next model gets the device's memory
                    stage.model.cpu()
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # and the memory the allocator cached for this one
                if model.outputs is not None:
                    model.outputs.close()  # video decoders
        barrier(dist_info)  # a rank that failed stops the others here, with its error
    result = BenchResult(out, dist_info.rank, dist_info.world_size, parts)
    if not dist_info.main or opts.num_shards > 1:  # a job of an array: `--gather` writes the tables
        return result
    check_parts(out, ds, opts.split, plans, keys)
    return dataclasses.replace(result, tables=_write_tables(opts, ds, out, _device_precision(device, backends, opts)))


def _gather_jobs(opts: BenchOptions, ds: PairedDataset, models: list[TrainedModel], config: MetricConfig
                 ) -> BenchResult:
    """`--gather` after a job array: every shard's part must be there, made with these settings (a job
    that failed or ran with other options is named), then the tables are written. Nothing runs a model."""
    out = Path(opts.out)
    # the DCN backend the jobs ran (and keyed their parts by), as they recorded it
    models = [dataclasses.replace(m, stages=configured(m.stages, opts.inference),
                                  dcn_backend=recorded_backend(out, ds, opts.split, m.name)) for m in models]
    plans = {m.name: plan_shards(m, ds.clips, opts) for m in models}
    check_parts(out, ds, opts.split, plans, {m.name: run_key(m, config, opts) for m in models}, gather=opts)
    parts = [part_dir(out, ds, opts.split, name) / sh.part_name for name, shards in plans.items() for sh in shards]
    return BenchResult(out, 0, 1, parts, _write_tables(opts, ds, out))


def _device_precision(device: torch.device, backends: dict[str, str | None], opts: BenchOptions) -> dict:
    """runs.json's record of the device (`uvssm.base.numerics.device_record`: GPU, CUDA, cuDNN, TF32 of cuBLAS and
    cuDNN) and of each model's deformable convolutions: backend and matrix-product precision (`dcn_record`)."""
    from models.inference import dcn_record
    from uvssm.base.numerics import device_record

    inf = opts.inference
    return {**device_record(device),
            "dcn": {name: dcn_record(b, device, inf.bf16, bool(inf.compile)) for name, b in backends.items()}}


def _write_tables(opts: BenchOptions, ds: PairedDataset, out: Path, device_precision: dict | None = None) -> Tables:
    """Write runs.json and the tables. `device_precision`: None after `--gather` (each job's device is in its
    rows' device column)."""
    meta = {"data": str(Path(opts.data).resolve()), "layout": ds.layout, "dataset": ds.name, "split": opts.split,
            "scale": ds.scale, "qp": ds.qp, "platform": ds.platform, "platform_folder": opts.platform,
            "setting": setting_of(ds),
            "uvssm_version": __version__, "torch_version": str(torch.__version__), "numerics": numerics_record(),
            "device_precision": device_precision}
    runs_path = out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else {}
    runs[f"{ds.name}/{setting_of(ds)}/{opts.split}"] = meta
    atomic.write_text(runs_path, json.dumps(runs, indent=2, sort_keys=True) + "\n")
    return gather(out)


def _check_metrics(opts: BenchOptions) -> BenchOptions:
    """Validate `opts.metrics` (one-line errors) and let each metric check what it needs (VMAF: an ffmpeg with
    libvmaf)."""
    for metric in metrics.resolve(opts.metrics):
        if metric.check:
            opts = metric.check(opts)
    return opts
