"""The "bicubic" row of Table 2: LQ frames upsampled with MATLAB-style bicubic, scored against HQ."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from benchmarks.metrics import MetricConfig, psnr_ssim, quantize
from benchmarks.tables import FRAME_COLUMNS
from degrade.scalers import imresize
from uvssm.errors import UvssmError
from uvssm.frames import read_rgb


def _load(paths: list[Path]) -> torch.Tensor:
    return torch.from_numpy(np.stack([read_rgb(p) for p in paths])).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8


def evaluate_bicubic(dataset: str | Path, unit: str, *, split: str = "test", color_space: str = "y",
                     batch: int = 4, device: str | None = None,
                     progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Score bicubic-upsampled LQ frames of `dataset/unit` (e.g. LQ_qp28_x2) against HQ.

    `split` picks the clips ("test", "val", "train" or "all"). The metric crops `scale` pixels,
    as VOTES does. Returns one row per frame with the columns of `benchmarks.tables.FRAME_COLUMNS`.
    """
    root = Path(dataset)
    manifest_path = root / unit / "manifest.parquet"
    if not manifest_path.exists():
        raise UvssmError(f"{manifest_path}: no manifest; run `uvssm synth-reds` first")
    manifest = pd.read_parquet(manifest_path)
    provenance = json.loads((root / unit / "provenance.json").read_text())
    name = provenance["source"]["dataset"]
    if split != "all":
        manifest = manifest[manifest["split"] == split]
    if manifest.empty:
        raise UvssmError(f"{manifest_path}: no clips in split {split!r}")
    scale = int(manifest["scale"].iloc[0])
    qp = int(manifest["qp"].iloc[0])
    config = MetricConfig(color_space=color_space, crop_border=scale)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for clip, frames in manifest.groupby("clip", sort=True):
        for start in range(0, len(frames), batch):
            chunk = frames.iloc[start:start + batch]
            t0 = time.perf_counter()
            lq = _load([root / p for p in chunk["lq_path"]]).to(dev)
            hq = _load([root / p for p in chunk["hq_path"]]).to(dev)
            up = quantize(imresize(lq.to(torch.float64) / 255.0, scale))
            if up.shape != hq.shape:
                raise UvssmError(f"{root / chunk['hq_path'].iloc[0]}: HQ is {tuple(hq.shape[-2:])}, "
                                 f"bicubic x{scale} LQ is {tuple(up.shape[-2:])}")
            p, s = psnr_ssim(up, hq, config)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for frame, pv, sv in zip(chunk["frame"], p.tolist(), s.tolist()):
                rows.append({"dataset": name, "split": split, "setting": unit.removeprefix("LQ_"), "scale": scale,
                             "qp": qp, "model": "bicubic", "clip": clip, "frame": int(frame), "psnr": pv, "ssim": sv,
                             **config.columns(), "checkpoint_sha256": None, "device": dev.type, "seconds": seconds})
            if progress:
                progress(len(chunk))
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)
