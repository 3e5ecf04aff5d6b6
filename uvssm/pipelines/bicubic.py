"""uvssm's bicubic reference row (the paper's Table 2 has none) for a `synth-reds` output: MATLAB-bicubic-
upsampled LQ scored against HQ through the benchmark harness, one setting after another, into `OUT/results/`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from benchmarks.harness import BenchResult, run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from uvssm.base.progress import BicubicSetting, Note, Progress, quiet
from uvssm.base.settings import lq_folder


def score_bicubic(out: Path, settings: list[tuple[int, int]], split: str, jobs: int, metrics: tuple[str, ...],
                  ffmpeg: str, progress: Progress | None = None) -> BenchResult | None:
    """Bench "bicubic" on `split` of every setting, (qp, scale), of the synth-reds output `out`, into
    `out/results`; returns the last `run_bench` result (its tables hold every setting scored into the results
    folder), or None when there was none.

    Progress events (`uvssm.base.progress`): Note (a setting without `split` clips is scored on all of
    them), BicubicSetting before each setting, then the harness's events (see `benchmarks.harness`).
    """
    progress = progress or quiet
    torch.set_num_threads(max(1, jobs))
    result = None
    for qp, scale in settings:
        name = lq_folder(qp, scale)
        manifest = pd.read_parquet(Path(out) / name / "manifest.parquet", columns=["clip", "split"])
        chosen = split if split == "all" or (manifest["split"] == split).any() else "all"
        if chosen != split:
            progress(Note(f"{name} has no {split!r} clips; scoring all clips"))
        n = len(manifest) if chosen == "all" else int((manifest["split"] == chosen).sum())
        opts = BenchOptions(models=["bicubic"], data=Path(out), out=Path(out) / "results", scale=scale, qp=qp,
                            split=chosen, inference=InferenceOptions(device="cpu"), save_frames=0, metrics=metrics,
                            ffmpeg=ffmpeg)
        progress(BicubicSetting(name, n))
        result = run_bench(opts, progress)
    return result
