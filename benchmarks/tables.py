"""Result tables: the per-frame schema, aggregation to clips and to Table-2 rows."""

from __future__ import annotations

import pandas as pd

# Columns every per-frame result row carries, so results from different runs concatenate safely.
FRAME_COLUMNS = ["dataset", "split", "setting", "scale", "qp", "model", "clip", "frame", "psnr", "ssim",
                 "metric_color_space", "metric_crop_border", "metric_quantize", "metric_ssim_window",
                 "metric_aggregate", "checkpoint_sha256", "device", "seconds"]
GROUP_KEYS = ["dataset", "split", "setting", "scale", "qp", "model", "metric_color_space", "metric_crop_border"]


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
