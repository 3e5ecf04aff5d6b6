"""The bicubic row of Table 2 for a `synth-reds` output: MATLAB-bicubic-upsampled LQ scored against HQ
through the benchmark harness, one setting after another, into `OUT/results/`."""

from __future__ import annotations

import pandas as pd
import torch

from benchmarks.harness import BenchOptions, run_bench
from uvssm.base.progress import Progress, quiet
from uvssm.pipelines.synth import SynthReport


def score_bicubic(report: SynthReport, split: str, jobs: int, metrics: tuple[str, ...], ffmpeg: str,
                  progress: Progress | None = None) -> dict | None:
    """Bench "bicubic" on `split` of every LQ setting `report` built; returns the last `run_bench` result
    (its tables hold every setting scored into the results folder), or None when there was none.

    progress(event, info) is called with:
      "note"    {"text": ...}  (a setting without `split` clips is scored on all of them)
      "setting" {"name": folder, "frames": frames to score}
      "frame"   and the harness's other events, as `run_bench` sends them
    """
    progress = progress or quiet
    torch.set_num_threads(max(1, jobs))
    result = None
    for unit in report.units:
        if unit.kind != "lq" or unit.manifest is None:
            continue
        manifest = pd.read_parquet(unit.manifest, columns=["clip", "split"])
        chosen = split if split == "all" or (manifest["split"] == split).any() else "all"
        if chosen != split:
            progress("note", {"text": f"{unit.name} has no {split!r} clips; scoring all clips"})
        n = len(manifest) if chosen == "all" else int((manifest["split"] == chosen).sum())
        opts = BenchOptions(models=["bicubic"], data=report.out, out=report.out / "results",
                            scale=unit.recipe.scale, qp=unit.recipe.qp, split=chosen, device="cpu", save_frames=0,
                            metrics=metrics, ffmpeg=ffmpeg)
        progress("setting", {"name": unit.name, "frames": n})
        result = run_bench(opts, progress)
    return result
