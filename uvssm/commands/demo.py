"""`uvssm demo`: the end-to-end pipeline on the built-in sample (synthesise, build, train, bench, report)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.base.progress import (BenchData, BenchFrame, BenchModel, BenchSkip, BuildPair, BuildPlan, Event, Note,
                                  ShareMade, SharePlan, Step, StepDone, SynthFrames, SynthPlan, TrainIter, TrainRun,
                                  TrainStep, TrainVal)
from uvssm.display import progress_display, val_lines


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder for everything the demo writes.")
@click.option("--device", default="cpu", show_default=True,
              help="cpu: the same numbers on any x86-64 machine; cuda, cuda:N or auto: faster where there is a GPU, "
                   "and the numbers then follow the GPU (ops without a deterministic CUDA version only warn).")
@click.option("--bench-frames", type=int, default=4, show_default=True, help="Frames per test clip to score.")
@click.option("--threads", type=int, default=2, show_default=True,
              help="torch CPU threads (fixed, so the same command repeats its numbers exactly).")
@click.pass_context
def demo(ctx: click.Context, out: Path, device: str, bench_frames: int, threads: int) -> None:
    """Run the whole pipeline on the built-in sample in under 5 minutes on 2 CPU cores: synthesise
    QP 28 x2 REDS, simulate and build platform pairs of five sample clips, train a small VOTES on
    each dataset's training clips, benchmark it against bicubic on each dataset's test clips, and
    write Table 2 and the figures. Rerunning resumes; torch's CPU kernels are pinned to AVX2, so
    any x86-64 machine prints the same numbers.

    Example: uvssm demo --out runs/demo
    """
    from uvssm.display import print_dfm_qp, print_table2, wide_console
    from uvssm.pipelines.demo import DemoOptions, run_demo

    console = wide_console()
    start = time.perf_counter()
    progress = progress_display(console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn())
    on_event = demo_display(progress)

    with progress:
        result = run_demo(out, find_ffmpeg(ctx.obj["ffmpeg_path"]),
                          DemoOptions(bench_frames=bench_frames, device=device, threads=threads), on_event)
    print_table2(console, result["table2"], result["models"])
    print_dfm_qp(console, result["results"])
    console.print("[bold]What this run shows[/bold] (small models of ours, trained for minutes; not the paper's numbers):")
    for line in result["findings"]:
        console.print(f"  {line}")
    console.print(f"done in {time.perf_counter() - start:.0f} s ({result['settings']['torch_threads']} torch threads, "
                  f"{result['settings']['cpu_capability']} kernels). "
                  f"Outputs in {out.resolve()}:")
    console.print(f"  results: {result['results']} (frames.parquet, clips.parquet, table2.parquet, models.parquet)")
    for path in result["figures"]:
        console.print(f"  figure:  {path}")
    console.print(f"  weights: {out / 'train'}; datasets: {out / 'reds'}, {out / 'build'}; run record: {out / 'demo.json'}")
    for line in next_steps(out):
        console.print(line)


def demo_display(progress: Progress) -> Callable[[Event], None]:
    """The demo's events shown on `progress`: a line as each step begins and one with its own duration
    as it ends, one bar at a time for the work inside (encoding, sharing, aligning, training, scoring)."""
    state: dict = {}

    def task(description: str, total) -> None:
        if "task" in state:
            progress.remove_task(state["task"])
        state["task"] = progress.add_task(description, total=total)

    def on_event(event: Event) -> None:
        match event:
            case Step():
                progress.console.print(f"[bold]{event.text}[/bold]")
            case StepDone():
                progress.console.print(f"  step done in {event.seconds:.0f} s")
            case Note():
                progress.console.print(f"  {event.text}")
            case SynthPlan():
                task("encoding", event.total)
            case SynthFrames():
                progress.advance(state["task"], event.n)
            case SharePlan():
                task(f"sharing on {event.platform}", event.total)
            case ShareMade():
                progress.advance(state["task"])
            case BuildPlan():
                task(f"aligning {event.platform}", event.todo)
            case BuildPair():
                progress.advance(state["task"])
                if event.status != "built":
                    progress.console.print(f"  [red]left out:[/red] {event.platform}/{event.clip}: {event.message}")
            case TrainRun():
                task(f"train {event.config} on {Path(event.data).name}", event.iterations)
                state["run"] = (event.config, str(event.data))
            case TrainStep() | TrainIter():
                progress.update(state["task"], completed=event.iteration)
            case TrainVal():
                for line in val_lines(event, first=state.get("validated") != state.get("run")):
                    progress.console.print(f"  {line}")
                state["validated"] = state.get("run")
            case BenchData():
                progress.console.print(f"  {event.text}")
            case BenchModel():
                task(f"bench {event.model}", event.frames)
            case BenchSkip():
                progress.advance(state["task"], event.frames)
            case BenchFrame():
                progress.advance(state["task"])

    return on_event


def next_steps(out: Path) -> list[str]:
    """What to run next on one's own data, one line each (printed at the end of the demo)."""
    votes = out / "train" / "bilibili" / "votes-tiny" / "checkpoints" / "latest.pt"  # trained on the shares
    return ["next, on your own data:",
            "  your REDS:   uvssm synth-reds --src /path/to/REDS --out data/REDS_LQ --qp 28 --scale 2",
            "  your pairs:  uvssm build --src /path/to/RAW --out data/pairs   (RAW/<platform>/{HQ,LQ}/<id>.mp4)",
            f"  your video:  uvssm restore your_video.mp4 -o restored.mp4 --model votes-tiny --weights {votes}",
            "  then train full-size models: uvssm train --list; uvssm bench --models votes,... --data data/REDS_LQ"]
