"""Clusters: `--clips` subsets, bench job arrays (`--num-shards/--shard-index`, then `--gather`), and the
training frame cache's folder with its free-space check. Expected values: clip lists and byte counts worked
out by hand; a job array's results against the same run in one job, and every job's files against a plain
run's, byte for byte."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from uvssm.base.clipsel import select_clips
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import run
from uvssm.base.frames import FRAME_PATTERN
from uvssm.base.framestore import bytes_to_decode, cached_frames, check_free_space
from uvssm.pipelines.build import BuildOptions, build as run_build
from uvssm.pipelines.synth import SynthOptions, synth_reds

NAMES = ["000", "001", "002", "010", "240", "241", "foo"]


@pytest.mark.parametrize("text, want", [
    (None, NAMES),
    ("", NAMES),
    ("240", ["240"]),
    ("0-2", ["000", "001", "002"]),
    ("001-010, foo", ["001", "002", "010", "foo"]),  # ranges compare as numbers: 001-010 holds 002 and 010
    ("241,000", ["000", "241"]),  # the dataset's order, not the selection's
    ("240-240,240", ["240"]),
])
def test_clip_selections_by_hand(text, want):
    assert select_clips(NAMES, text, "here") == want


@pytest.mark.parametrize("text, message", [
    ("300", "--clips 300: no such clip in here (it has 000, 001, 002, 010, 240, 241, foo)"),
    ("11-20", "--clips 11-20: no such clip in here"),
    ("5-1", "--clips 5-1: the range runs backwards"),
    ("240,,241", "an empty item"),
])
def test_a_selection_that_selects_nothing_is_refused(text, message):
    with pytest.raises(UvssmError) as err:
        select_clips(NAMES, text, "here")
    assert message in str(err.value)


def test_a_bench_job_array_gives_the_one_job_results(tmp_path, tiny_reds):
    # 2 clips x 2 shards
    common = dict(qp=28, inference=InferenceOptions(device="cpu"), max_frames=8, shard_frames=4, save_frames=0)
    whole = run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "one", **common))
    out = tmp_path / "array"
    for index in (0, 2):  # jobs 0 and 2 of 3; job 1 has not run
        assert run_bench(BenchOptions(["bicubic"], tiny_reds, out, num_shards=3, shard_index=index, **common)).tables is None
    assert not (out / "frames.parquet").exists()  # a job writes parts only
    # the plan is [240@0, 240@4, 241@0, 241@4]: job 0 takes the 1st and 4th, job 2 the 3rd
    parts = sorted(p.name for p in (out / ".parts").rglob("*.parquet"))
    assert parts == ["240@00000.parquet", "241@00000.parquet", "241@00004.parquet"]

    gather = [sys.executable, "-m", "uvssm", "bench", "--models", "bicubic", "--data", str(tiny_reds), "--qp", "28",
              "--out", str(out), "--max-frames", "8", "--shard-frames", "4", "--save-frames", "0", "--gather"]
    done = subprocess.run(gather, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "1 of 4 parts missing" in done.stderr, done.stderr
    assert "(bicubic clip 240 frames 4-7)" in done.stderr and "Traceback" not in done.stderr

    run_bench(BenchOptions(["bicubic"], tiny_reds, out, num_shards=3, shard_index=1, **common))
    done = subprocess.run(gather, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got, want = pd.read_parquet(out / "frames.parquet"), pd.read_parquet(whole.tables.paths["frames"])
    assert got[["clip", "frame", "psnr", "ssim"]].equals(want[["clip", "frame", "psnr", "ssim"]])

    with pytest.raises(UvssmError, match="--shard-index must be in 0..2 for --num-shards 3, got 3"):
        run_bench(BenchOptions(["bicubic"], tiny_reds, out, num_shards=3, shard_index=3, **common))


def test_bench_clips_run_one_by_one_add_up(tmp_path, tiny_reds):
    common = dict(qp=28, inference=InferenceOptions(device="cpu"), max_frames=3, save_frames=0)
    first = run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "r", clips="241", **common))
    assert pd.read_parquet(first.tables.paths["frames"])["clip"].unique().tolist() == ["241"]
    both = run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "r", clips="240", **common))
    frames = pd.read_parquet(both.tables.paths["frames"])
    assert frames["clip"].unique().tolist() == ["240", "241"]  # 241's part was kept
    with pytest.raises(UvssmError, match=r"--clips 7: no such clip in the test split of .* \(it has 240, 241\)"):
        run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "r", clips="7", **common))


def test_synth_reds_clips_as_a_job_array_gives_the_one_run_bytes(tmp_path, ffmpeg, clips):
    one = tmp_path / "one"
    assert synth_reds(clips, one, ffmpeg, SynthOptions(jobs=1)).ok
    array = tmp_path / "array"
    report = synth_reds(clips, array, ffmpeg, SynthOptions(jobs=1, clips="240"))
    assert report.units[0].built == ["240"]
    assert sorted(p.name for p in (array / "LQ_qp28_x2").glob("*.mp4")) == ["240.mp4"]
    synth_reds(clips, array, ffmpeg, SynthOptions(jobs=1, clips="0-1"))
    last = synth_reds(clips, array, ffmpeg, SynthOptions(jobs=1))  # the closing run: nothing left to encode
    assert last.units[0].built == [] and sorted(last.units[0].skipped) == ["000", "001", "240"]
    for name in ("manifest.parquet", "clips.parquet", "000.mp4", "240.mp4", "240/00000007.png"):
        assert (array / "LQ_qp28_x2" / name).read_bytes() == (one / "LQ_qp28_x2" / name).read_bytes(), name


def test_build_clips_builds_only_those_pairs(tmp_path, ffmpeg):
    src = tmp_path / "raw" / "WeChat"
    for clip in ("016", "048", "055"):
        for kind, size in (("HQ_frames", "64x48"), ("LQ_frames", "32x24")):
            folder = src / kind / clip
            folder.mkdir(parents=True)
            run(ffmpeg, ["-f", "lavfi", "-i", f"testsrc2=s={size}", "-frames:v", "4", "-start_number", "0",
                         str(folder / FRAME_PATTERN)], context="frames")
    reports = run_build(tmp_path / "raw", tmp_path / "ds", ffmpeg, BuildOptions(clips="040-050"))
    assert [r.built for r in reports] == [["048"]]
    reports = run_build(tmp_path / "raw", tmp_path / "ds", ffmpeg, BuildOptions())
    assert sorted(reports[0].built) == ["016", "055"] and reports[0].skipped == ["048"]
    with pytest.raises(UvssmError, match="--clips 017: no such clip"):
        run_build(tmp_path / "raw", tmp_path / "ds", ffmpeg, BuildOptions(clips="017"))


def test_the_frame_cache_counts_what_it_will_write_and_refuses_a_full_disk(tmp_path, ffmpeg):
    folder = tmp_path / "clip"
    folder.mkdir()
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=40x30", "-frames:v", "5", "-start_number", "0",
                 str(folder / FRAME_PATTERN)], context="frames")
    store = tmp_path / "store" / "not-made-yet"
    assert bytes_to_decode(store, [(folder, 5)]) == (5 * 30 * 40 * 3 + 128, 1)  # N x H x W x 3, + the .npy header
    with pytest.raises(UvssmError) as err:
        check_free_space(store, [(folder, 5)], spare=1 << 60)  # no disk has an exbibyte spare
    assert str(err.value).startswith(f"{store}: the training frame cache needs 0.0 GiB more for 1 clip folders")
    assert "--frame-cache" in str(err.value) and not store.exists()  # refused before anything was written
    check_free_space(store, [(folder, 5)])
    array = cached_frames(folder, 5, store)
    assert array.shape == (5, 30, 40, 3)
    assert bytes_to_decode(store, [(folder, 5)]) == (0, 0)
    check_free_space(store, [(folder, 5)], spare=1 << 60)  # nothing left to decode: nothing to refuse
    assert np.asarray(array).any()
