"""`uvssm demo`: the whole pipeline on the built-in sample, in under 5 minutes on 2 CPU cores.

1. synthesise compressed ×2 REDS (QP 28) from the sample (`synth-reds`): a 640×360 crop of the
   720p footage, so frames keep the footage's own pixel scale at a quarter of the cost;
2. simulate Bilibili-like shares of five sample clips' full 1280×720 footage and build the HQ/LQ
   pairs (`simulate`, `build`): clips 000-003 are its training split, 241 its test split;
3. train on each dataset, as the paper does: the small VOTES (stage 1, the DSM; stage 2, the rest)
   on the synthesised training clips, and again on the shares' training pairs (`train`; the model
   without its DFM, the paper's Table 3 ablation, is an option that `benchmarks demo-seeds` takes);
4. benchmark them against bicubic on each dataset's test clips (`bench`);
5. write Table 2, the figures and the DFM/QP correlations (`report`), and say what the numbers show.

Each step is the library function the matching command calls, and each resumes: a rerun skips
what is finished. The models are `-tiny` configurations (ours, not the papers'), trained for a
couple of minutes, so the numbers show the pipeline and the method working, not the paper's results.

The same numbers on any x86-64 machine: before torch runs, its CPU kernels are pinned to AVX2
(oneDNN, ATen and MKL; `uvssm.base.numerics`), its threads fixed (`DemoOptions.threads`) and its
deterministic algorithms made strict; every random choice is seeded, ffmpeg's encoders run
single-threaded, and training reads batches in the main process. `OUT/demo.json` records the
kernels, pins, threads and versions.

Outputs, under OUT: `sample-src/`, `reds/` (synthesised), `raw/` and `build/` (the platform
pairs), `train/reds/<model>/` and `train/bilibili/<model>/` (checkpoints and logs, per dataset
trained on), `results/` (parquet tables, PNG figures) and `demo.json` (settings, numerics,
versions, timings).
"""

from __future__ import annotations

import json
import platform as platform_module
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from uvssm.base import atomic
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import FFmpeg
from uvssm.base.progress import Note, Progress, ShareMade, SharePlan, Step, StepDone, TrainRun, quiet
from uvssm.base.settings import platform_folder_name

PLATFORM = "bilibili"  # 1280x720 -> 640x360: an exact x2 pair from the 720p footage
PAIR_CLIPS = ("000", "001", "002", "003", "241")  # sample clips whose 720p footage is shared on the platform
PAIR_TEST = "241"  # ... and the one the models trained on the shares are tested on (the others train them)


@dataclass
class DemoOptions:
    bench_frames: int = 4  # frames per synthesised test clip scored in the benchmark
    pair_frames: int = 2  # frames of the test clip's platform pair scored (4x the pixels of a sample frame)
    bench_models: tuple[str, ...] = ("bicubic", "votes-tiny")  # on the synthesised clips, trained on them
    pair_models: tuple[str, ...] = ("bicubic", "votes-tiny")  # on the test share, trained on the training shares
    # (add "votes-wo-dfm-tiny" for the paper's Table 3 ablation, as `python -m benchmarks demo-seeds` does: +2 min)
    train_iters: dict = field(default_factory=dict)  # config name -> iterations (default: each config's)
    sample_frames: int = 20  # frames per clip of the built-in sample
    sample_size: tuple[int, int] = (640, 360)
    sample_crop: tuple[int, int] | None = (640, 360)  # centre crop of the 720p footage (None: scale it)
    platform_pair: bool = True  # step 2 (and the models trained on its pairs)
    device: str = "cpu"  # the same numbers on any x86-64 machine ("auto", "cuda": faster, GPU's numbers)
    threads: int = 2  # torch CPU threads (fixed, so runs repeat exactly)
    pin_numerics: bool = True  # AVX2 kernels, so every x86-64 machine gives the same numbers (before torch runs)
    seed: int | None = None  # every training's seed (None: each config's)


# model benched -> (training config, needs the stage-1 DSM)
TRAINED = {"votes-tiny": ("votes-tiny-sample", True), "votes-wo-dfm-tiny": ("votes-wo-dfm-tiny-sample", False),
           "edvr-tiny": ("edvr-tiny-sample", False)}
# the same recipes on the built platform pairs: their training clips, no validation (the test clip is scored),
# and twice the iterations: on the shares (rate-controlled x264 of 720p frames, much of them flat) these
# models need them (150: 0.16-0.34 dB below bicubic on the test share; 300: 0.32 dB above; 300 at half the
# batch: 0.70 below)
ON_PAIRS = ("data.kind=frames", f"data.platform={platform_folder_name(PLATFORM)}", "data.qp=null", "data.train_split=train",
            "data.val_split=null")
PAIR_ITERATIONS = {"votes-tiny-sample": 300, "votes-wo-dfm-tiny-sample": 300}


def _finished(run_dir: Path) -> bool:
    return (run_dir / "result.json").is_file()


def _train(name: str, data: Path, out: Path, opts: DemoOptions, progress: Progress, bin_ckpt: Path | None = None,
           overrides: tuple[str, ...] = (), iterations: int | None = None):
    """Train config `name` on `data` into `out` (skipped when finished, resumed when begun), with
    `overrides`, the demo's seed, and `iterations` in place of the config's schedule where given
    (`opts.train_iters` first)."""
    from uvssm.pipelines.train import resolve_config, run_training

    if _finished(out):
        progress(Note(f"train {name}: already done ({out})"))
        return
    seed = () if opts.seed is None else (f"seed={opts.seed}",)
    if iterations:  # one cosine period over them, and a checkpoint at the end
        overrides = (*overrides, f"periods=[{iterations}]", f"save_every={iterations}")
    cfg = resolve_config(name, [*overrides, *seed], iterations=opts.train_iters.get(name),
                         bin_checkpoint=str(bin_ckpt) if bin_ckpt else None)
    progress(TrainRun(name, cfg.iterations, data))
    resume = (out / "checkpoints" / "latest.pt").is_file()
    # the training's events pass through, its notes (the frame store, the DSM loaded) do not: the demo's screen
    # says what each step does, not how
    run_training(cfg, data, out, device=opts.device, resume=resume,
                 progress=lambda event: None if isinstance(event, Note) else progress(event))


def _train_models(models, data: Path, runs: Path, opts: DemoOptions, progress: Progress,
                  overrides: tuple[str, ...] = (), iterations: dict | None = None) -> None:
    """Train each model of `models` that the demo trains (TRAINED), and the DSM first where one
    needs it; `iterations`: config name -> iterations, where not the config's."""
    iterations = iterations or {}
    trained = [m for m in models if m in TRAINED]
    if any(TRAINED[m][1] for m in trained):
        _train("dsm-tiny-sample", data, runs / "dsm", opts, progress, overrides=overrides,
               iterations=iterations.get("dsm-tiny-sample"))
    for model in trained:
        config, needs_dsm = TRAINED[model]
        _train(config, data, runs / model, opts, progress,
               bin_ckpt=runs / "dsm" / "checkpoints" / "latest.pt" if needs_dsm else None, overrides=overrides,
               iterations=iterations.get(config))


def _platform_pairs(src_frames: int, out: Path, ffmpeg: FFmpeg, progress: Progress,
                    clips: tuple[str, ...] = PAIR_CLIPS) -> Path:
    """Step 2: encode each of `clips`' 720p footage as an original, share it through a platform
    preset, and build the pairs, `PAIR_TEST` as the test split and the others as training. Returns
    the built platform folder."""
    from uvssm.pipelines.build import BuildOptions, build
    from uvssm.pipelines.sample import make_original
    from uvssm.pipelines.simulate import SimulateOptions, simulate

    progress(Step(f"2/5 simulate {PLATFORM} shares of sample clips {', '.join(clips)} (1280x720) and "
                  f"build the pairs (test: {PAIR_TEST})"))
    raw = out / "raw" / platform_folder_name(PLATFORM)
    progress(SharePlan(PLATFORM, len(clips)))
    for clip in clips:
        hq_video = make_original(raw / "HQ" / f"{clip}.mp4", ffmpeg, clip, src_frames)
        lq_video = raw / "LQ" / f"{clip}.mp4"
        made = not lq_video.is_file()
        if made:
            lq_video.parent.mkdir(parents=True, exist_ok=True)
            simulate(hq_video, lq_video, ffmpeg, SimulateOptions(platform=PLATFORM))
        progress(ShareMade(PLATFORM, clip, "made" if made else "reused"))
    built = out / "build"
    build(out / "raw", built, ffmpeg, BuildOptions(frames=None, jobs=1, test_ids=PAIR_TEST, val_clips=0),
          progress=progress)
    platform_dir = next((p for p in built.iterdir() if p.is_dir() and p.name.lower() == PLATFORM), None)
    if platform_dir is None or not all((platform_dir / "LQ_frames" / c).is_dir() for c in clips):
        raise UvssmError(f"{built}: the demo pairs were not all built; see {built}/{platform_folder_name(PLATFORM)}/pairs.csv")
    return platform_dir


def make_deterministic(threads: int, pin: bool = True, device: str = "cpu") -> dict:
    """Pin torch's CPU kernels to AVX2 (`uvssm.base.numerics`), fix its threads and make it refuse
    non-deterministic ops; returns what is in effect. `pin=False` (for a process where torch already
    runs, as in the tests) fixes the threads and the determinism only: the numbers then follow the
    machine. On a GPU (`device` other than cpu, with CUDA present) an op without a deterministic CUDA
    version (interpolation and sampling backward passes) only warns: the numbers follow the GPU anyway."""
    import torch

    from uvssm.base.numerics import deterministic, numerics_record, pin_numerics

    if pin:
        pin_numerics(threads)
    else:
        deterministic(threads)
    if device != "cpu" and torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    return {**numerics_record(), "device": device}


def run_demo(out: str | Path, ffmpeg: FFmpeg, opts: DemoOptions = DemoOptions(),
             progress: Progress | None = None) -> dict:
    """Run (or resume) the demo under `out`; returns the final Table 2, the verdict lines and paths.

    Progress events (`uvssm.base.progress`): Step as each of the five steps begins and StepDone (its own
    seconds, as demo.json records them) as it ends, Note, SharePlan and ShareMade for the simulated
    shares, with the events of the pipelines it runs passed through: synth-reds', build's, TrainRun
    before each training and the training events, and the harness's.
    """
    settings = make_deterministic(opts.threads, opts.pin_numerics, opts.device)  # first: before torch runs anything
    import torch

    from benchmarks.figures import write_figures
    from benchmarks.gather import gather
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from models.inference import InferenceOptions
    from uvssm import __version__
    from uvssm.pipelines.sample import make_sample
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    progress = progress or quiet
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 1)
        clock[0] = now
        progress(StepDone(name, timings[name]))

    progress(Step("1/5 synthesise QP 28 x2 REDS from the built-in sample"))
    src = make_sample(out / "sample-src", ffmpeg, size=opts.sample_size, frames_per_clip=opts.sample_frames,
                      crop=opts.sample_crop)
    reds = out / "reds"
    report = synth_reds(src, reds, ffmpeg, SynthOptions(qps=(28,), scales=(2,), clean_lr=True), progress)
    if not report.ok:
        raise UvssmError(f"{reds}: synthesis failed for some clips; rerun `uvssm synth-reds --out {reds}` to see why")
    lap("synthesise")

    platform_dir = None
    if opts.platform_pair:
        platform_dir = _platform_pairs(opts.sample_frames, out, ffmpeg, progress)
        lap("platform pairs")

    trained = sorted({m for m in (*opts.bench_models, *(opts.pair_models if platform_dir else ())) if m in TRAINED})
    progress(Step(f"3/5 train {', '.join(trained)} on each dataset's training clips: the synthesised "
                  "clips', then the shares' (votes-tiny: the DSM, then the rest)"))
    runs = out / "train"
    _train_models(opts.bench_models, reds, runs / "reds", opts, progress)
    if platform_dir is not None:
        _train_models(opts.pair_models, platform_dir.parent, runs / PLATFORM, opts, progress, ON_PAIRS,
                      PAIR_ITERATIONS)
    lap("train")

    progress(Step("4/5 benchmark them against bicubic, each on its dataset's test clips"))
    results = out / "results"
    run = InferenceOptions(device=opts.device)
    run_bench(BenchOptions(list(opts.bench_models), reds, results, qp=28, scale=2, weights=[str(runs / "reds")],
                           inference=run, max_frames=opts.bench_frames, save_frames=opts.bench_frames), progress)
    if platform_dir is not None:
        run_bench(BenchOptions(list(opts.pair_models), platform_dir.parent, results, scale=2,
                               platform=platform_dir.name, split="test", weights=[str(runs / PLATFORM)],
                               inference=run, max_frames=opts.pair_frames, save_frames=opts.pair_frames), progress)
    lap("bench")

    progress(Step("5/5 Table 2 and figures"))
    tables = gather(results)
    figures = write_figures(results)
    verdict = findings(tables.table2)
    lap("report")
    record = {"options": asdict(opts), **settings, "torch": str(torch.__version__), "uvssm": __version__,
              "python": platform_module.python_version(), "ffmpeg": ffmpeg.version, "x264": ffmpeg.x264,
              "seconds": timings, "findings": verdict}
    atomic.write_text(out / "demo.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return {"table2": tables.table2, "models": tables.models, "paths": tables.paths, "figures": figures,
            "results": results, "out": out, "findings": verdict, "settings": settings}


SHORT_RUN = ("why: a 16-feature model trained for a couple of minutes; at this size differences of a tenth of a dB "
             "move with the training seed")
ONE_SEED = ("one training seed, so no claim either way: `python -m benchmarks demo-seeds` measures whether it holds "
            "across seeds")


def margins(table) -> list[dict]:
    """Per dataset and setting of a Table 2 with votes-tiny and bicubic: votes-tiny's PSNR and its
    margins over bicubic (`over_bicubic_psnr`, `_ssim`) and, where the table has the model without
    the DFM, over that (`dfm_psnr`, `dfm_ssim`: the DFM's part, the paper's Table 3)."""
    rows = []
    for (dataset, setting), group in table.groupby(["dataset", "setting"], sort=True):
        by = {r.model: r for r in group.itertuples()}
        votes, base, ablation = by.get("votes-tiny"), by.get("bicubic"), by.get("votes-wo-dfm-tiny")
        if votes is None or base is None:
            continue
        row = {"dataset": dataset, "setting": setting, "bicubic_psnr": base.psnr, "votes_psnr": votes.psnr,
               "over_bicubic_psnr": votes.psnr - base.psnr, "over_bicubic_ssim": votes.ssim - base.ssim}
        if ablation is not None:
            row.update(dfm_psnr=votes.psnr - ablation.psnr, dfm_ssim=votes.ssim - ablation.ssim)
        rows.append(row)
    return rows


def findings(table) -> list[str]:
    """What the demo's Table 2 shows, one line per dataset, in words: whether VOTES beats bicubic
    in PSNR and SSIM (and, where it does not, why), and the difference its DFM makes against the
    same model without it (the paper's Table 3), stated without a claim: one seed cannot tell it
    from training noise (`benchmarks/perf/demo_seeds.py` runs three)."""
    lines = []
    for m in margins(table):
        dp, ds = m["over_bicubic_psnr"], m["over_bicubic_ssim"]
        beats = dp > 0 and ds > 0
        line = (f"{m['dataset']} {m['setting']}: votes-tiny {'beats' if beats else 'does not beat'} bicubic "
                f"({dp:+.2f} dB PSNR, {ds:+.4f} SSIM)")
        if not beats:
            line += f"; {SHORT_RUN}"
        if "dfm_psnr" in m:
            line += f"; its DFM: {m['dfm_psnr']:+.2f} dB / {m['dfm_ssim']:+.4f} against votes-wo-dfm-tiny ({ONE_SEED})"
        lines.append(line)
    return lines
