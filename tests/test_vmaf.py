"""VMAF: expected values come from a plain ffmpeg libvmaf command written here, run on the same frames."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from benchmarks.vmaf import VmafStream
from uvssm.base.errors import UvssmError


def _plain_vmaf(ffmpeg, distorted_pattern: str, reference_pattern: str, log: Path, start: int = 0,
                frames: int | None = None) -> list[float]:
    """Per-frame VMAF of two PNG sequences, by hand: both converted to YUV 4:4:4, model vmaf_v0.6.1."""
    count = ["-frames:v", str(frames)] if frames else []
    subprocess.run([ffmpeg.path, "-v", "error", "-framerate", "25", "-start_number", str(start), "-i", distorted_pattern,
                    "-framerate", "25", "-start_number", str(start), "-i", reference_pattern,
                    "-lavfi", "[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];"
                              f"[d][r]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}",
                    *count, "-f", "null", "-"], check=True)
    return [f["metrics"]["vmaf"] for f in sorted(json.loads(log.read_text())["frames"], key=lambda f: f["frameNum"])]


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_vmaf_stream_gives_the_plain_commands_scores(tmp_path, ffmpeg):
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=176x144:r=25", "-frames:v", "6",
                    str(ref / "%03d.png")], check=True)
    subprocess.run([ffmpeg.path, "-v", "error", "-framerate", "25", "-i", str(ref / "%03d.png"), "-c:v", "libx264",
                    "-qp", "40", str(tmp_path / "d.mp4")], check=True)
    subprocess.run([ffmpeg.path, "-v", "error", "-i", str(tmp_path / "d.mp4"), str(dist / "%03d.png")], check=True)
    expected = _plain_vmaf(ffmpeg, str(dist / "%03d.png"), str(ref / "%03d.png"), tmp_path / "v.json", start=1)

    stream = VmafStream(ffmpeg.path, (176, 144), threads=2)
    for k in range(1, 7):
        stream.add(_rgb(dist / f"{k:03d}.png"), _rgb(ref / f"{k:03d}.png"))
    result = stream.compute()
    assert result.scores == pytest.approx(expected, abs=1e-6)
    assert result.model == "vmaf_v0.6.1" and result.version
    assert 20 < min(expected) < max(expected) < 100  # QP 40 is visibly damaged, not destroyed


def test_bench_vmaf_per_frame_is_the_plain_commands_on_the_saved_outputs(tmp_path, tiny_reds, ffmpeg):
    """bicubic on the test clips, first 6 frames, in shards of 2: each frame's VMAF equals the plain
    command's over the whole clip's saved outputs (shards take their neighbours as context)."""
    n = 6
    opts = BenchOptions(["bicubic"], tiny_reds, tmp_path / "res", qp=28, max_frames=n,
                        save_frames=n, shard_frames=2, metrics=("psnr", "ssim", "vmaf"), ffmpeg=ffmpeg.path,
                        inference=InferenceOptions(device="cpu"))
    result = run_bench(opts)
    frames = pd.read_parquet(result.tables.paths["frames"])
    assert set(frames["metric_vmaf_model"]) == {"vmaf_v0.6.1"} and frames["metric_vmaf_version"].notna().all()
    for clip, rows in frames.groupby("clip"):
        saved = tmp_path / "res" / "frames" / "qp28_x2" / "bicubic" / clip
        hq = tiny_reds / "HQ" / clip
        # VMAF's motion term of frame n-1 looks at reference frame n, as in a run over the whole clip:
        # the plain run gets the n saved outputs plus one more frame (its distorted side is unscored)
        distorted = tmp_path / f"dist{clip}"
        distorted.mkdir()
        for k in range(n):
            os.link(saved / f"{k:08d}.png", distorted / f"{k:08d}.png")
        os.link(hq / f"{n:08d}.png", distorted / f"{n:08d}.png")
        expected = _plain_vmaf(ffmpeg, str(distorted / "%08d.png"), str(hq / "%08d.png"), tmp_path / f"{clip}.json",
                               frames=n + 1)
        assert rows.sort_values("frame")["vmaf"].tolist() == pytest.approx(expected[:n], abs=1e-6)
    table = result.tables.table2
    clip_means = frames.groupby("clip")["vmaf"].mean()
    assert table["vmaf"].iloc[0] == pytest.approx(clip_means.mean())


def test_bench_without_libvmaf_is_a_one_line_error(tmp_path, tiny_reds, ffmpeg):
    """The real ffmpeg behind a wrapper that hides libvmaf from its filter list, as a build without it."""
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f"#!/bin/sh\nif [ \"$2\" = \"-filters\" ]; then \"{ffmpeg.path}\" \"$@\" | grep -v libvmaf; "
                       f"exit 0; fi\nexec \"{ffmpeg.path}\" \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    opts = BenchOptions(["bicubic"], tiny_reds, tmp_path / "res", qp=28, max_frames=2,
                        metrics=("psnr", "ssim", "vmaf"), ffmpeg=str(wrapper), inference=InferenceOptions(device="cpu"))
    with pytest.raises(UvssmError, match=r"ffmpeg: this ffmpeg has no libvmaf filter, so --metrics vmaf cannot run"):
        run_bench(opts)
    assert not (tmp_path / "res" / "frames.parquet").exists()
    with pytest.raises(UvssmError, match=r"--metrics: unknown metric 'lpips'"):
        run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "res", qp=28, metrics=("psnr", "ssim", "lpips")))
