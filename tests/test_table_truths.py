"""Checks that can fail: Table 2 over clips of unequal length, outside outputs with unpadded frame names, and
what the docs and the report say about the bicubic row. Expected values are worked by hand in the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import paper, tables

REPO = Path(__file__).resolve().parents[1]


def _frames(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Per-frame rows (model, clip, psnr, ssim) of one REDS QP 28 x2 test setting, in the frame schema."""
    out, count = [], {}
    for model, clip, psnr, ssim in rows:
        frame = count.setdefault((model, clip), 0)
        count[(model, clip)] += 1
        row = dict.fromkeys(tables.FRAME_COLUMNS)
        row.update(dataset="REDS", split="test", setting="qp28_x2", scale=2, qp=28, platform=None, model=model,
                   clip=clip, frame=frame, psnr=psnr, ssim=ssim, vmaf=float("nan"),
                   metric_color_space="y_bt601_limited", metric_crop_border=2, seconds=0.1, load_seconds=0.0, metric_seconds=0.0, peak_mem_mb=1.0)
        out.append(row)
    return pd.DataFrame(out, columns=tables.FRAME_COLUMNS)


def test_table2_is_the_mean_of_clip_means_over_clips_of_unequal_length():
    # clip 240: 1 frame; clip 241: 3 frames
    frames = _frames([("m", "240", 30.0, 0.90),
                      ("m", "241", 20.0, 0.60), ("m", "241", 22.0, 0.70), ("m", "241", 24.0, 0.80)])
    # by hand: clip means PSNR 30 and (20+22+24)/3 = 22, Table 2 (30+22)/2 = 26 (a mean over the 4 frames: 24);
    # SSIM 0.90 and (0.6+0.7+0.8)/3 = 0.70, Table 2 0.80 (over frames: 0.75)
    clips = tables.per_clip(frames).set_index("clip")
    assert clips.loc["240", "psnr"] == pytest.approx(30.0) and clips.loc["241", "psnr"] == pytest.approx(22.0)
    assert clips.loc["241", "frames"] == 3
    row = tables.table2(frames).iloc[0]
    assert row.psnr == pytest.approx(26.0, abs=1e-12)
    assert row.ssim == pytest.approx(0.80, abs=1e-12)
    assert row.clips == 2 and row.frames == 4 and row.clip_list == "240,241"


def test_unpadded_output_names_match_frame_k_to_gt_frame_k(tmp_path, tiny_reds):
    """Outputs that are the GT frames themselves, named `1.png … 16.png` (clip 240) and `0.png … 15.png` (241):
    read in file-name order (1, 10, 11, …, 2) frame k would meet another GT frame; in frame order each one is GT
    frame k itself, PSNR ∞ and SSIM 1."""
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from models.inference import InferenceOptions
    from uvssm.base.datasets import open_dataset
    from uvssm.base.frames import read_rgb

    gt = tmp_path / "gt-copies"
    for clip, first in (("240", 1), ("241", 0)):
        (gt / clip).mkdir(parents=True)
        for k in range(16):
            shutil.copy(tiny_reds / "HQ" / clip / f"{k:08d}.png", gt / clip / f"{k + first}.png")
    assert not np.array_equal(read_rgb(gt / "240" / "2.png"), read_rgb(gt / "240" / "10.png"))  # frames differ

    from benchmarks.outputs import open_outputs

    ds = open_dataset(tiny_reds, split="test", scale=2, qp=28, cache_mb=0)
    found = open_outputs("gt", gt, ds.clips)
    assert [p.name for p in found.clips["240"].files] == [f"{k}.png" for k in range(1, 17)]
    assert [p.name for p in found.clips["241"].files] == [f"{k}.png" for k in range(16)]

    result = run_bench(BenchOptions([], tiny_reds, tmp_path / "res", qp=28, save_frames=0,
                                    outputs=[("gt", gt)], inference=InferenceOptions(device="cpu")))
    frames = pd.read_parquet(result.tables.paths["frames"])
    assert len(frames) == 32
    assert np.isinf(frames["psnr"]).all() and (frames["ssim"] == 1.0).all()


NO_PAPER_BICUBIC = "the paper's Table 2 has no bicubic column"


def test_the_bicubic_row_is_described_the_same_true_way_everywhere():
    # the paper's Table 2 (VOTES, ACM MM 2022) compares STDF+RSDN, STDF+EDVR, STDF+VSRTGA, STDF+BasicVSR,
    # COMISR and VOTES: no bicubic column
    assert not any("bicubic" in c.lower() for c in paper.COLUMNS)
    frames = _frames([("bicubic", c, 30.0, 0.9) for c in sorted(paper.paper_clips("REDS", None))])
    row = tables.with_paper(tables.table2(frames)).iloc[0]
    assert NO_PAPER_BICUBIC in row.paper_note and np.isnan(row.paper_psnr)
    readme = (REPO / "README.md").read_text()
    assert NO_PAPER_BICUBIC in readme and "Table 2's bicubic row" not in readme
    assert "Table-2 bicubic row" not in (REPO / "uvssm" / "commands" / "synth_reds.py").read_text()
