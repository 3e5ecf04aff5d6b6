"""`uvssm train`: train VOTES (stage 1: the degradation sensing module; stage 2: the rest) from a config."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from uvssm.base.progress import (Event, Note, RestoreClip, TrainData, TrainIter, TrainSave, TrainStart, TrainStep,
                                  TrainVal)
from uvssm.display import progress_display, val_lines, wide_console


def _list_configs(console: Console) -> None:
    from models.training.config import list_configs, load_config

    table = Table(title="packaged training configs (models/configs/)", title_justify="left")
    for col in ("name", "stage", "model", "data", "iterations"):
        table.add_column(col, no_wrap=True)
    table.add_column("note")
    for name in list_configs():
        cfg = load_config(name)
        d = cfg.data
        data = f"{d.kind} {'QP' + '+'.join(map(str, d.qps)) + ' ' if d.qp is not None else ''}{d.platform + ' ' if d.platform else ''}x{d.scale}"
        table.add_row(name, cfg.stage, cfg.model, data, str(cfg.iterations), cfg.note)
    console.print(table)


@click.command("train")
@click.argument("config", required=False)
@click.option("--data", "data_root", type=click.Path(path_type=Path), help="Dataset folder: a `uvssm synth-reds` "
              "output, or HQ_frames/LQ_frames folders (UVSSM, `uvssm build`).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder: checkpoints/, logs, config.yaml.")
@click.option("--bin", "bin_checkpoint", metavar="CKPT", help="Stage 2: stage-1 weights of the degradation "
              "sensing module (RUN1/checkpoints/latest.pt, the official bin_100000.pth, or a VOTES checkpoint).")
@click.option("--flow", "flow_checkpoint", metavar="CKPT", help="BasicVSR: pre-trained SPyNet (a flow-* run's "
              "checkpoints/latest.pt, or a model checkpoint with spynet.* weights).")
@click.option("--lq-stage", "lq_stage", metavar="CKPT", help="SR stage of a two-stage baseline (configs with "
              "`chain: stdf`): the first stage's checkpoint; the model trains on the LQ frames it restores "
              "(written once under DATA/restored/).")
@click.option("--iters", type=int, help="Stop after this many iterations (default: the config's schedule).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16/--no-bf16", default=None, help="bfloat16 autocast (default: the config's setting).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--resume-from", "resume_from", type=click.Path(path_type=Path), metavar="STATE",
              help="Continue a run of the official code: its BasicSR training state "
                   "(EXPERIMENT/training_states/N.state; the weights are read from EXPERIMENT/models/net_g_N.pth).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set batch_size=8 --set data.qp=33 (repeatable).")
@click.option("--frame-cache", metavar="DIR|auto|off",
              help="Where training clips are decoded once into mapped arrays (REDS: ~80 GB; the free space is checked "
                   "first). auto: $XDG_CACHE_HOME/uvssm/frames; off: decode PNGs per batch. Default: the config's.")
@click.option("--list", "list_only", is_flag=True, help="List the packaged configs and exit.")
@click.option("--portable-numerics", is_flag=True,
              help="Pin torch's CPU kernels to AVX2 (oneDNN, ATen, MKL), fix the threads (--threads, default 2) and "
                   "make non-deterministic ops errors, so any x86-64 machine gives the same numbers (as `uvssm demo`). "
                   "CPU only: refused with a CUDA device (a GPU's numbers follow the GPU).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice; 2 with "
              "--portable-numerics).")
def train(config: str | None, data_root: Path | None, out: Path | None, bin_checkpoint: str | None,
          flow_checkpoint: str | None, lq_stage: str | None, iters: int | None, device: str, bf16: bool | None, resume: bool,
          resume_from: Path | None, overrides: tuple[str, ...],
          frame_cache: str | None, list_only: bool, portable_numerics: bool, threads: int | None) -> None:
    """Train a model from CONFIG (a packaged config name, see --list, or a YAML file).

    Stage 1 (dsm-* configs) trains the degradation sensing module; stage 2 (votes-* configs) trains
    the rest of VOTES with it frozen. Checkpoints are written atomically; --resume continues. For
    several GPUs: torchrun --nproc_per_node N -m uvssm train CONFIG ...

    Example: uvssm train dsm-tiny-sample --data runs/sample --out runs/dsm
             uvssm train votes-tiny-sample --data runs/sample --bin runs/dsm/checkpoints/latest.pt --out runs/votes
    """
    console = wide_console()
    if list_only:
        _list_configs(console)
        return
    if config is None or data_root is None or out is None:
        raise click.UsageError("CONFIG, --data and --out are required (see --list for configs)")

    from uvssm.base.numerics import fix_threads_or_pin

    fix_threads_or_pin(portable_numerics, threads, device)  # before torch runs anything; refused on CUDA
    from uvssm.pipelines.train import resolve_config, run_training

    if frame_cache is not None:
        overrides = (*overrides, f"frame_cache={frame_cache}")
    cfg = resolve_config(config, overrides, iters, bin_checkpoint, bf16, flow_checkpoint, lq_stage)
    console.print(f"config {cfg.name}: stage {cfg.stage}, model {cfg.model} x{cfg.data.scale}, "
                  f"{cfg.iterations} iterations, batch {cfg.batch_size}, patch {cfg.gt_size}")
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[its]} it/s"),
                                TimeElapsedColumn(), TimeRemainingColumn())
    task = progress.add_task("training", total=cfg.iterations, loss="-", lr="-", its="-")
    shown: dict[str, bool] = {}

    def on_event(event: Event) -> None:
        match event:
            case TrainData():
                progress.console.print(f"train: {event.train}")
                progress.console.print(f"val:   {event.val or 'none'}")
            case RestoreClip():
                progress.console.print(f"restoring the LQ frames of {event.clip} ({event.frames} frames) → {event.out}")
            case Note():
                progress.console.print(f"[yellow]note:[/yellow] {event.text}")
            case TrainStart():
                progress.update(task, completed=event.start, description="training" if not event.start
                                else f"resumed at {event.start}")
                progress.console.print(f"{event.params:,} trainable parameters")
            case TrainStep():
                progress.update(task, completed=event.iteration)
            case TrainIter():  # one update, so a log's progress line carries this iteration's loss
                progress.update(task, completed=event.iteration, loss=f"{event.loss:.4g}", lr=f"{event.lr:.2e}",
                                its=f"{event.its:.2f}")
            case TrainVal():
                for line in val_lines(event, first=not shown.get("val")):
                    progress.console.print(line)
                shown["val"] = True
            case TrainSave():
                progress.console.print(f"iter {event.iteration}: checkpoint {event.path}")

    with progress:
        result = run_training(cfg, data_root, out, device=device, resume=resume, resume_from=resume_from,
                              progress=on_event)
    console.print(f"done at iteration {result['iteration']}; weights: {result['checkpoint']}; "
                  f"logs: {out / 'train_log.parquet'}, {out / 'val_log.parquet'}")
