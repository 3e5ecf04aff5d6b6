"""Result tables: the per-frame schema, aggregation to clips and to Table-2 rows, per-model costs."""

from __future__ import annotations

import pandas as pd

from benchmarks import metrics, paper

_KEYS = ["dataset", "split", "setting", "scale", "qp", "platform", "model", "clip", "frame"]
_METRIC_SETTINGS = ["metric_color_space", "metric_crop_border", "metric_quantize", "metric_ssim_window",
                    "metric_aggregate"]
_RUN = ["checkpoint_sha256", "device", "precision", "dcn_backend", "chunk", "tile", "seconds", "load_seconds",
        "metric_seconds", "peak_mem_mb", "run_key"]


def frame_schema() -> list[str]:
    """Columns every per-frame result row carries (every registered metric's among them), so results from
    different runs concatenate safely."""
    return [*_KEYS, *metrics.frame_columns(), *_METRIC_SETTINGS, *_RUN]


FRAME_COLUMNS = frame_schema()  # with the built-in metrics (PSNR, SSIM, VMAF)
GROUP_KEYS = ["dataset", "split", "setting", "scale", "qp", "platform", "model", "metric_color_space",
              "metric_crop_border"]


def _with_metric_columns(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames with a NaN column for each registered metric they lack (tables written before it existed)."""
    missing = {m.column: float("nan") for m in metrics.METRICS.values() if m.column not in frames}
    return frames.assign(**missing) if missing else frames


def _metric_aggs() -> dict:
    return {m.column: (m.column, metrics.clip_mean(m)) for m in metrics.METRICS.values()}


def per_clip(frames: pd.DataFrame) -> pd.DataFrame:
    """Each metric's mean over each clip's frames (VMAF-like metrics only where every frame has one)."""
    return (_with_metric_columns(frames).groupby(GROUP_KEYS + ["clip"], dropna=False, sort=True)
            .agg(**_metric_aggs(), frames=("frame", "count"))
            .reset_index())


def table2(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x split x setting x model: the unweighted mean over clip means."""
    clips = per_clip(frames)
    return (clips.groupby(GROUP_KEYS, dropna=False, sort=True)
            .agg(**_metric_aggs(), clips=("clip", "count"),
                 frames=("frames", "sum"), clip_list=("clip", lambda c: ",".join(sorted(c))))
            .reset_index())


# What the bicubic row is, said the same way on the page, in the README and in the commands' help.
BICUBIC_NOTE = "a reference row of uvssm's: the paper's Table 2 has no bicubic column"


def paper_value(row) -> tuple[tuple[float, float] | None, str]:
    """The paper's (PSNR, SSIM) beside this row and "", or None and the reason there is none."""
    platform = None if pd.isna(row.platform) else row.platform
    if row.model == "bicubic":
        return None, BICUBIC_NOTE
    if paper.MODEL_COLUMN.get(row.model) is None:
        return None, "not a model of the paper's Table 2 at full size"
    if row.metric_color_space != "y_bt601_limited" or row.metric_crop_border != row.scale:
        return None, "metric differs from the paper's (Y BT.601, crop = scale)"
    wanted = paper.paper_clips(row.dataset, platform)
    if wanted is None:
        return None, f"the paper has no {row.dataset} test set"
    if row.split != "test":
        return None, f"split {row.split}, not the paper's test split"
    clips = set(str(row.clip_list).split(",")) if isinstance(row.clip_list, str) and row.clip_list else set()
    if clips != wanted:
        return None, (f"clips differ from the paper's test split ({len(clips & wanted)} of its {len(wanted)}, "
                      f"{len(clips - wanted)} others)")
    qp = None if pd.isna(row.qp) else int(row.qp)
    ref = paper.reference(row.dataset, row.split, int(row.scale), qp, platform, row.model)
    return (ref, "") if ref else (None, "the paper has no value for this setting")


def with_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Add the paper's Table-2 value for each row that is comparable (a paper model at full size, the
    paper's metric, and exactly the paper's test clips), our difference from it, and `paper_note`
    saying why the columns are empty where they are."""
    out = table.copy()
    values = [paper_value(r) for r in table.itertuples()]
    refs = [ref for ref, _ in values]
    out["paper_note"] = [note for _, note in values]
    out["paper_psnr"] = [r[0] if r else float("nan") for r in refs]
    out["paper_ssim"] = [r[1] if r else float("nan") for r in refs]
    out["delta_psnr"] = out["psnr"] - out["paper_psnr"]
    out["delta_ssim"] = out["ssim"] - out["paper_ssim"]
    return out


EXTERNAL = "external"  # the precision of outputs made elsewhere (`bench --outputs`)
NOT_TIMED = "outputs made elsewhere: ms/frame would time reading files"


def timed(row) -> bool:
    """Whether a model_stats row's ms/frame and peak memory measure a model: not for outputs made elsewhere,
    where uvssm only read their files."""
    return getattr(row, "precision", None) != EXTERNAL


def model_stats(frames: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Per model and setting: parameters, MACs per frame, mean ms per frame, peak memory, device."""
    keys = ["dataset", "setting", "split", "model"]
    timing = (frames.groupby(keys, sort=True)
              .agg(ms_per_frame=("seconds", lambda s: 1000 * s.mean()),
                   load_ms_per_frame=("load_seconds", lambda s: 1000 * s.mean()),
                   metric_ms_per_frame=("metric_seconds", lambda s: 1000 * s.mean()),
                   peak_mem_mb=("peak_mem_mb", "max"), device=("device", "first"), precision=("precision", "first"),
                   dcn_backend=("dcn_backend", "first"),
                   frames=("frame", "count"))
              .reset_index())
    if info.empty:
        return timing
    cols = keys + ["params", "macs_per_frame", "checkpoint_sha256"]
    return timing.merge(info[cols], on=keys, how="left")
