"""Result tables: the per-frame schema, aggregation to clips and to Table-2 rows, per-model costs."""

from __future__ import annotations

import pandas as pd

from benchmarks import paper

# Columns every per-frame result row carries, so results from different runs concatenate safely.
FRAME_COLUMNS = ["dataset", "split", "setting", "scale", "qp", "platform", "model", "clip", "frame", "psnr", "ssim",
                 "metric_color_space", "metric_crop_border", "metric_quantize", "metric_ssim_window",
                 "metric_aggregate", "checkpoint_sha256", "device", "precision", "tile", "seconds", "load_seconds",
                 "metric_seconds", "peak_mem_mb", "run_key"]
GROUP_KEYS = ["dataset", "split", "setting", "scale", "qp", "platform", "model", "metric_color_space",
              "metric_crop_border"]


def per_clip(frames: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM over each clip's frames."""
    return (frames.groupby(GROUP_KEYS + ["clip"], dropna=False, sort=True)
            .agg(psnr=("psnr", "mean"), ssim=("ssim", "mean"), frames=("frame", "count"))
            .reset_index())


def table2(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x split x setting x model: the unweighted mean over clip means."""
    clips = per_clip(frames)
    return (clips.groupby(GROUP_KEYS, dropna=False, sort=True)
            .agg(psnr=("psnr", "mean"), ssim=("ssim", "mean"), clips=("clip", "count"), frames=("frames", "sum"))
            .reset_index())


def with_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Add the paper's Table-2 value for each row where one applies, and our difference from it."""
    refs = [paper.reference(r.dataset, r.split, int(r.scale), None if pd.isna(r.qp) else int(r.qp),
                            None if pd.isna(r.platform) else r.platform, r.model)
            if r.metric_color_space == "y_bt601_limited" and r.metric_crop_border == r.scale else None
            for r in table.itertuples()]
    out = table.copy()
    out["paper_psnr"] = [r[0] if r else float("nan") for r in refs]
    out["paper_ssim"] = [r[1] if r else float("nan") for r in refs]
    out["delta_psnr"] = out["psnr"] - out["paper_psnr"]
    out["delta_ssim"] = out["ssim"] - out["paper_ssim"]
    return out


def model_stats(frames: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Per model and setting: parameters, MACs per frame, mean ms per frame, peak memory, device."""
    keys = ["dataset", "setting", "split", "model"]
    timing = (frames.groupby(keys, sort=True)
              .agg(ms_per_frame=("seconds", lambda s: 1000 * s.mean()),
                   load_ms_per_frame=("load_seconds", lambda s: 1000 * s.mean()),
                   metric_ms_per_frame=("metric_seconds", lambda s: 1000 * s.mean()),
                   peak_mem_mb=("peak_mem_mb", "max"), device=("device", "first"), precision=("precision", "first"),
                   frames=("frame", "count"))
              .reset_index())
    if info.empty:
        return timing
    cols = keys + ["params", "macs_per_frame", "checkpoint_sha256"]
    return timing.merge(info[cols], on=keys, how="left")
