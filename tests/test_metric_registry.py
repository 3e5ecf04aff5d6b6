"""A new metric is one scorer plus `register(Metric(...))`: the harness computes it, the frame, clip and
Table-2 tables carry it, the screen table shows it, and asking for it redoes parts made without it.
Expected values: mean absolute error worked out with numpy on the PNG files ffmpeg wrote."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from rich.console import Console

from benchmarks import metrics
from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from uvssm.base.ffmpeg import run
from uvssm.base.frames import read_rgb
from uvssm.display import print_table2


class MaeScorer:
    """Mean absolute RGB error on the 0..255 scale, lower is better; kept on the device, read once."""

    def __init__(self, ctx: metrics.ScoreContext):
        self.values: list[torch.Tensor] = []

    def add(self, index, out, gt):
        self.values.append((out.double() * 255 - gt.double()).abs().mean())

    def finish(self):
        return {"mae": torch.stack(self.values).cpu().tolist() if self.values else []}

    def provenance(self):
        return {}

    def close(self):
        pass


@pytest.fixture
def mae():
    metric = metrics.register(metrics.Metric("mae", "mae", "MAE", ".3f", False, "device", MaeScorer))
    yield metric
    del metrics.METRICS["mae"]


def test_a_registered_metric_flows_through_bench_tables_and_display(tmp_path, ffmpeg, tiny_reds, mae):
    outputs = tmp_path / "outputs"
    for clip in ("240", "241"):  # outputs made elsewhere (ffmpeg's bilinear x2), so the expected values are plain numpy
        (outputs / clip).mkdir(parents=True)
        run(ffmpeg, ["-i", str(tiny_reds / "LQ_qp28_x2" / clip / "%08d.png"), "-vf", "scale=iw*2:ih*2:flags=bilinear",
                     "-start_number", "0", str(outputs / clip / "%08d.png")], context="test outputs")
    common = dict(qp=28, inference=InferenceOptions(device="cpu"), save_frames=0, outputs=[("bilinear", outputs)])
    first = run_bench(BenchOptions([], tiny_reds, tmp_path / "res", **common))
    part = next((tmp_path / "res" / ".parts").rglob("240.parquet"))
    stamp = part.stat().st_mtime_ns
    assert pd.read_parquet(first.tables.paths["frames"])["mae"].isna().all()  # not asked for: NaN, schema the same

    result = run_bench(BenchOptions([], tiny_reds, tmp_path / "res", metrics=("psnr", "ssim", "mae"), **common))
    assert part.stat().st_mtime_ns != stamp  # parts made without the metric are redone
    frames = pd.read_parquet(result.tables.paths["frames"])
    want = [np.abs(read_rgb(outputs / c / f"{i:08d}.png").astype(float)
                   - read_rgb(tiny_reds / "HQ" / c / f"{i:08d}.png").astype(float)).mean()
            for c in ("240", "241") for i in range(16)]
    np.testing.assert_allclose(frames["mae"], want, rtol=0, atol=1e-9)
    clips = pd.read_parquet(result.tables.paths["clips"])
    assert clips["mae"].tolist() == pytest.approx([np.mean(want[:16]), np.mean(want[16:])], abs=1e-9)
    assert result.tables.table2["mae"].iloc[0] == pytest.approx(np.mean(want), abs=1e-9)

    console = Console(record=True, width=200)
    print_table2(console, result.tables.table2, None)
    text = console.export_text()
    assert "MAE" in text and f"{np.mean(want):.3f}" in text and "VMAF" not in text


def test_unknown_and_missing_metrics_are_refused(tmp_path, tiny_reds):
    from uvssm.base.errors import UvssmError

    with pytest.raises(UvssmError, match="--metrics: unknown metric 'lpips'; known: psnr, ssim, vmaf"):
        run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "r", qp=28, metrics=("psnr", "ssim", "lpips")))
    with pytest.raises(UvssmError, match="--metrics must include psnr and ssim"):
        run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "r", qp=28, metrics=("psnr",)))
