"""`uvssm demo`: the whole pipeline on the built-in sample, in minutes on a CPU.

1. synthesise compressed ×2 REDS (QP 28) from the sample (`synth-reds`);
2. simulate a Bilibili-like share of one sample clip and build the HQ/LQ pair from it (`simulate`, `build`);
3. train the small VOTES (both stages) and a small EDVR on the synthesised training clips (`train`);
4. benchmark them against bicubic on the synthesised test clips and on the built pair (`bench`);
5. write Table 2 and the figures (`report`).

Each step is the library function the matching command calls, and each resumes: a rerun skips
what is finished. Models are the `-tiny` configurations (ours, not the papers'), so the numbers
show the pipeline working, not the paper's results. Outputs, under OUT:
`sample-src/`, `reds/` (synthesised), `raw/` and `build/` (the platform pair), `train/<model>/`
(checkpoints and logs) and `results/` (parquet tables and PNG figures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from uvssm.errors import UvssmError
from uvssm.ffmpeg import FFmpeg, run

Progress = Callable[[str, dict], None]
PLATFORM = "bilibili"  # 1280x720 -> 640x360: an exact x2 pair from the 720p sample


@dataclass
class DemoOptions:
    bench_frames: int = 4  # frames per test clip scored in the benchmark (the models run at ~5 s/frame on 2 cores)
    bench_models: tuple[str, ...] = ("bicubic", "votes-tiny", "edvr-tiny")
    train_iters: dict = field(default_factory=dict)  # config name -> iterations (default: each config's)
    sample_frames: int = 20  # frames per clip of the built-in sample
    sample_size: tuple[int, int] = (1280, 720)
    platform_pair: bool = True  # step 2 (needs the 1280x720 sample: Bilibili's 640x360 is then exactly x2)
    device: str = "auto"


def _finished(run_dir: Path) -> bool:
    return (run_dir / "result.json").is_file()


def _train(name: str, data: Path, out: Path, opts: DemoOptions, progress: Progress, bin_ckpt: Path | None = None):
    from uvssm.train import resolve_config, run_training

    if _finished(out):
        progress("note", {"text": f"train {name}: already done ({out})"})
        return
    cfg = resolve_config(name, iterations=opts.train_iters.get(name),
                         bin_checkpoint=str(bin_ckpt) if bin_ckpt else None)
    progress("train", {"config": name, "iterations": cfg.iterations})
    resume = (out / "checkpoints" / "latest.pt").is_file()
    run_training(cfg, data, out, device=opts.device, resume=resume,
                 progress=lambda event, info: progress(f"train-{event}", info))


def _platform_pair(src: Path, out: Path, ffmpeg: FFmpeg, progress: Progress) -> Path:
    """Step 2: encode sample clip 241 as an original, share it through a platform preset, build the pair."""
    from uvssm.build import BuildOptions, build
    from uvssm.simulate import SimulateOptions, simulate

    progress("step", {"text": f"2/5 simulate a {PLATFORM} share of sample clip 241 and build the pair"})
    raw = out / "raw" / PLATFORM.capitalize()
    hq_video = raw / "HQ" / "demo.mp4"
    if not hq_video.is_file():
        hq_video.parent.mkdir(parents=True, exist_ok=True)
        tmp = hq_video.with_name(".demo.tmp.mp4")
        run(ffmpeg, ["-y", "-framerate", "25", "-start_number", "0", "-i", str(src / "val_sharp" / "001" / "%08d.png"),
                     "-c:v", "libx264", "-crf", "10", "-preset", "medium", "-threads", "1", "-pix_fmt", "yuv420p",
                     str(tmp)], context=f"{hq_video}: encoding the original")
        tmp.replace(hq_video)
    lq_video = raw / "LQ" / "demo.mp4"
    if not lq_video.is_file():
        lq_video.parent.mkdir(parents=True, exist_ok=True)
        simulate(hq_video, lq_video, ffmpeg, SimulateOptions(platform=PLATFORM))
    built = out / "build"
    build(out / "raw", built, ffmpeg, BuildOptions(frames=None, jobs=1),
          progress=lambda event, **info: progress("build", {"event": event, **info}))
    platform_dir = next((p for p in built.iterdir() if p.is_dir() and p.name.lower() == PLATFORM), None)
    if platform_dir is None or not (platform_dir / "LQ_frames" / "demo").is_dir():
        raise UvssmError(f"{built}: the demo pair was not built; see {built}/{PLATFORM.capitalize()}/pairs.csv")

    return platform_dir


def run_demo(out: str | Path, ffmpeg: FFmpeg, opts: DemoOptions = DemoOptions(),
             progress: Progress | None = None) -> dict:
    """Run (or resume) the demo under `out`; returns the final Table 2 and the output paths."""
    from benchmarks.figures import write_figures
    from benchmarks.harness import BenchOptions, gather, run_bench
    from uvssm.sample import make_sample
    from uvssm.synth import SynthOptions, synth_reds

    progress = progress or (lambda event, info: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    progress("step", {"text": "1/5 synthesise QP 28 x2 REDS from the built-in sample"})
    src = make_sample(out / "sample-src", ffmpeg, size=opts.sample_size, frames_per_clip=opts.sample_frames)
    reds = out / "reds"
    report = synth_reds(src, reds, ffmpeg, SynthOptions(qps=(28,), scales=(2,), clean_lr=True),
                        lambda event, **info: progress("synth", {"event": event, **info}))
    if not report.ok:
        raise UvssmError(f"{reds}: synthesis failed for some clips; rerun `uvssm synth-reds --out {reds}` to see why")

    platform_dir = _platform_pair(src, out, ffmpeg, progress) if opts.platform_pair else None

    progress("step", {"text": "3/5 train votes-tiny (DSM, then the rest) and edvr-tiny on the synthesised clips"})
    runs = out / "train"
    _train("dsm-tiny-sample", reds, runs / "dsm", opts, progress)
    _train("votes-tiny-sample", reds, runs / "votes-tiny", opts, progress,
           bin_ckpt=runs / "dsm" / "checkpoints" / "latest.pt")
    if "edvr-tiny" in opts.bench_models:
        _train("edvr-tiny-sample", reds, runs / "edvr-tiny", opts, progress)

    progress("step", {"text": "4/5 benchmark them against bicubic"})
    results = out / "results"
    models = list(opts.bench_models)
    bench_progress = lambda event, info: progress(f"bench-{event}", info)  # noqa: E731
    run_bench(BenchOptions(models, reds, results, qp=28, scale=2, weights=[str(runs)], device=opts.device,
                           max_frames=opts.bench_frames), bench_progress)
    if platform_dir is not None:
        run_bench(BenchOptions(models, platform_dir.parent, results, scale=2, platform=platform_dir.name, split="all",
                               weights=[str(runs)], device=opts.device, max_frames=opts.bench_frames), bench_progress)

    progress("step", {"text": "5/5 Table 2 and figures"})
    tables = gather(results)
    figures = write_figures(results)
    return {**tables, "figures": figures, "results": results, "out": out}
