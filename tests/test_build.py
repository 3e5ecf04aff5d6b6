"""`uvssm build` on simulated pairs (known truth), bad pairs, resume, release-layout indexing, splits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from uvssm.pipelines.build import BuildOptions, assign_splits
from uvssm.base.errors import UvssmError
from uvssm.base.frames import FRAME_PATTERN
from uvssm.base.ffmpeg import run
from uvssm.pipelines.simulate import SimulateOptions, simulate


def _uvssm(*args):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def raw(tmp_path_factory, ffmpeg, hq_video):
    """RAW/twitter/{HQ,LQ}: two good simulated pairs, one unreadable LQ, one LQ of other content."""
    root = tmp_path_factory.mktemp("raw")
    hq_dir, lq_dir = root / "twitter" / "HQ", root / "twitter" / "LQ"
    hq_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    truths = {}
    for clip, opts in (("001", SimulateOptions(platform="twitter", trim_start=5, fps=25, drop=0.01, crop=(3, 1, 5, 2), seed=1)),
                       ("002", SimulateOptions(platform="twitter", trim_start=21, fps=25, seed=2))):
        (hq_dir / f"{clip}.mp4").symlink_to(hq_video)
        truths[clip] = simulate(hq_video, lq_dir / f"{clip}.mp4", ffmpeg, opts)
    (hq_dir / "003.mp4").symlink_to(hq_video)
    (lq_dir / "003.mp4").write_bytes(b"\x00" * 4096)
    (hq_dir / "004.mp4").symlink_to(hq_video)
    run(ffmpeg, ["-f", "lavfi", "-i", "mandelbrot=s=640x360:r=25", "-frames:v", "60", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p", str(lq_dir / "004.mp4")], context="unrelated LQ")
    for clip in ("001", "002"):
        for suffix in (".mapping.parquet", ".json"):
            (lq_dir / f"{clip}{suffix}").rename(root / f"{clip}{suffix}")  # truth out of the way of discovery
    return root


def test_build_aligns_extracts_reports_and_resumes(tmp_path, raw):
    out = tmp_path / "dataset"
    done = _uvssm("build", "--src", str(raw), "--out", str(out), "--frames", "40", "--jobs", "2")
    assert done.returncode == 1, done.stderr  # two pairs left out
    assert "twitter/003" in done.stdout and "cannot read as video" in done.stdout
    # unrelated content: its best rectangle fits the picture no better than chance (1 − correlation > 0.5)
    assert "twitter/004" in done.stdout and "fits the LQ picture with residual" in done.stdout
    folder = out / "Twitter"
    pairs = pd.read_parquet(folder / "pairs.parquet").set_index("clip")
    assert sorted(pairs.index) == ["001", "002"]
    frames = pd.read_parquet(folder / "frames.parquet")
    for clip in ("001", "002"):
        truth = pd.read_parquet(raw / f"{clip}.mapping.parquet")["hq_frame"].to_numpy()[:40]
        got = frames[frames["clip"] == clip]["hq_source_frame"].to_numpy()
        assert (got == truth).mean() >= 0.99
        hq = np.asarray(Image.open(folder / "HQ_frames" / clip / "00000000.png"))
        lq = np.asarray(Image.open(folder / "LQ_frames" / clip / "00000000.png"))
        assert hq.shape[:2] == (2 * lq.shape[0], 2 * lq.shape[1])
        assert len(list((folder / "LQ_frames" / clip).glob("*.png"))) == 40
        row = frames[(frames["clip"] == clip) & (frames["frame"] == 0)].iloc[0]
        import hashlib

        assert hashlib.sha256(hq.tobytes()).hexdigest() == row["hq_sha256"]
    assert pairs.loc["002", "offset_frames"] == 21 and pairs.loc["001", "offset_frames"] == 5
    assert pairs.loc["001", "offset_margin"] > 0.3 and pairs.loc["001", "align_psnr_mean"] > 30
    assert np.abs(np.array(pairs.loc["001", "hq_box"]) - [3, 1, 1275, 718]).max() <= 1.0
    assert (folder / "splits" / "test.txt").exists() and (folder / "meta_info" / "votes_all.txt").exists()
    assert (folder / "provenance.json").exists()

    before = (folder / "pairs.parquet").read_bytes(), (folder / "frames.parquet").read_bytes()
    built_at = (folder / "HQ_frames" / "001" / "00000000.png").stat().st_mtime_ns
    again = _uvssm("build", "--src", str(raw), "--out", str(out), "--frames", "40", "--jobs", "2")
    assert again.returncode == 1
    assert (folder / "pairs.parquet").read_bytes() == before[0] and (folder / "frames.parquet").read_bytes() == before[1]
    assert (folder / "HQ_frames" / "001" / "00000000.png").stat().st_mtime_ns == built_at  # not redone

    # a test split naming a clip that is not there: one line, before any work, nothing built is lost
    typo = _uvssm("build", "--src", str(raw), "--out", str(out), "--frames", "40", "--test-clips", "001,009")
    assert typo.returncode == 2
    lines = [line for line in typo.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--test-clips 009: no such clip in" in lines[0] and str(raw) in lines[0], typo.stderr
    assert (folder / "pairs.parquet").read_bytes() == before[0] and (folder / "frames.parquet").read_bytes() == before[1]
    assert (folder / "HQ_frames" / "001" / "00000000.png").stat().st_mtime_ns == built_at


def test_release_layout_is_indexed_not_reextracted(tmp_path, ffmpeg):
    src = tmp_path / "raw" / "WeChat"
    for clip, lq_frames in (("016", 6), ("048", 5)):
        for kind, size, n in (("HQ_frames", "64x48", 6), ("LQ_frames", "32x24", lq_frames)):
            folder = src / kind / clip
            folder.mkdir(parents=True)
            run(ffmpeg, ["-f", "lavfi", "-i", f"testsrc2=s={size}", "-frames:v", str(n), "-start_number", "0",
                         str(folder / FRAME_PATTERN)], context="frames")
    done = _uvssm("build", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"))
    assert done.returncode == 1 and "048" in done.stdout and "6 frames" in done.stdout
    frames = pd.read_parquet(tmp_path / "ds" / "WeChat" / "frames.parquet")
    assert sorted(frames["clip"].unique()) == ["016"] and len(frames) == 6
    assert (tmp_path / "ds" / "WeChat" / "HQ_frames" / "016" / "00000000.png").exists()


def test_splits_paper_and_kfold():
    paper = ["016", "048", "055", "065", "108", "130", "159", "166", "216", "217"]
    clips = paper + [f"{i:03d}" for i in range(1, 21)]
    split, folds, source = assign_splits(clips, "wechat", BuildOptions())
    assert sorted(c for c, s in split.items() if s == "test") == paper and "paper" in source
    assert sum(s == "val" for s in split.values()) == 4

    clips = [f"c{i:02d}" for i in range(50)]
    split, folds, source = assign_splits(clips, "twitter", BuildOptions(seed=3))
    assert len(folds) == 5 and "5-fold" in source
    tests = [frozenset(c for c, s in f.items() if s == "test") for f in folds]
    assert all(len(t) == 10 for t in tests) and len(frozenset().union(*tests)) == 50  # disjoint, cover all
    assert all(sum(s == "val" for s in f.values()) == 4 for f in folds)
    assert assign_splits(clips, "twitter", BuildOptions(seed=3))[0] == split  # deterministic
    assert assign_splits(clips, "twitter", BuildOptions(seed=4))[0] != split


def test_rotated_original_and_pairs_csv(tmp_path, ffmpeg, hq_video):
    """A phone-style original (landscape pixels, 90° display flag) whose shared version is portrait:
    build decodes both upright and aligns them. The pair is listed in pairs.csv."""
    raw = tmp_path / "raw"
    raw.mkdir()
    run(ffmpeg, ["-display_rotation", "90", "-i", str(hq_video), "-c", "copy", str(raw / "orig.mp4")],
        context="rotated original")
    simulate(raw / "orig.mp4", raw / "shared.mp4", ffmpeg, SimulateOptions(platform="twitter", fps=25, trim_start=3))
    truth = pd.read_parquet(raw / "shared.mapping.parquet")["hq_frame"].to_numpy()
    (raw / "pairs.csv").write_text("platform,id,hq,lq\ntwitter,p1,orig.mp4,shared.mp4\n")
    done = _uvssm("build", "--src", str(raw), "--out", str(tmp_path / "ds"), "--frames", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    pairs = pd.read_parquet(tmp_path / "ds" / "Twitter" / "pairs.parquet").iloc[0]
    assert pairs["hq_rotation"] == 90 and pairs["lq_rotation"] == 0
    assert pairs["align_psnr_mean"] > 30
    frames = pd.read_parquet(tmp_path / "ds" / "Twitter" / "frames.parquet")
    assert (frames["hq_source_frame"].to_numpy() == truth[:20]).mean() >= 0.99
    hq = Image.open(tmp_path / "ds" / "Twitter" / "HQ_frames" / "p1" / "00000000.png")
    lq = Image.open(tmp_path / "ds" / "Twitter" / "LQ_frames" / "p1" / "00000000.png")
    assert hq.height > hq.width and hq.size == (3 * lq.width, 3 * lq.height)  # 720/202 → x3, HQ down-sampled
    assert bool(pairs["hq_resampled"])


def test_ten_bit_source_is_left_out_unless_allowed(tmp_path, ffmpeg):
    raw = tmp_path / "raw" / "twitter"
    for kind in ("HQ", "LQ"):
        (raw / kind).mkdir(parents=True)
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=256x144:r=25", "-frames:v", "30", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p10le", str(raw / "HQ" / "001.mp4")], context="10-bit original")
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=128x72:r=25", "-frames:v", "30", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p", str(raw / "LQ" / "001.mp4")], context="shared")
    done = _uvssm("build", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "--frames", "10")
    assert done.returncode == 1 and "10-bit" in done.stdout and "--allow-hdr" in done.stdout


def test_full_range_shared_video_keeps_its_contrast(tmp_path, ffmpeg, hq_video):
    """A full-range ("pc") LQ decoded as limited range would be stretched by 255/219."""
    raw = tmp_path / "raw" / "twitter"
    (raw / "HQ").mkdir(parents=True)
    (raw / "HQ" / "001.mp4").symlink_to(hq_video)
    simulate(hq_video, tmp_path / "truth" / "001.mp4", ffmpeg, SimulateOptions(platform="twitter", full_range=True,
                                                                                frames=20))
    (raw / "LQ").mkdir()
    (tmp_path / "truth" / "001.mp4").rename(raw / "LQ" / "001.mp4")
    done = _uvssm("build", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "--frames", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "ds" / "Twitter"
    assert pd.read_parquet(folder / "pairs.parquet").iloc[0]["lq_color_range"] == "pc"
    lq = Image.open(folder / "LQ_frames" / "001" / "00000004.png")
    hq = Image.open(folder / "HQ_frames" / "001" / "00000004.png").resize(lq.size, Image.Resampling.BOX)
    assert hq.size == (640, 360) and lq.size == (640, 360)
    ratio = np.asarray(lq, float).std() / np.asarray(hq, float).std()
    assert abs(ratio - 1) < 0.06, ratio


def test_same_size_pairs_build_at_scale_one(tmp_path, ffmpeg):
    raw = tmp_path / "raw" / "wechat"
    (raw / "HQ").mkdir(parents=True)
    (raw / "LQ").mkdir()
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=640x360:r=30,noise=alls=10:allf=t+u", "-frames:v", "60",
                 "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", str(raw / "HQ" / "001.mp4")], context="original")
    simulate(raw / "HQ" / "001.mp4", tmp_path / "truth" / "001.mp4", ffmpeg,
             SimulateOptions(platform="wechat", fps=25, trim_start=4, crop=(2, 2, 2, 2)))  # 640x360 stays 640x360
    (tmp_path / "truth" / "001.mp4").rename(raw / "LQ" / "001.mp4")
    truth = pd.read_parquet(tmp_path / "truth" / "001.mapping.parquet")["hq_frame"].to_numpy()
    done = _uvssm("build", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "--frames", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    pairs = pd.read_parquet(tmp_path / "ds" / "WeChat" / "pairs.parquet").iloc[0]
    assert pairs["scale"] == 1 and list(pairs["hq_size"]) == list(pairs["lq_size"]) == [640, 360]
    assert np.abs(np.array(pairs["hq_box"]) - [2, 2, 638, 358]).max() <= 1.0
    frames = pd.read_parquet(tmp_path / "ds" / "WeChat" / "frames.parquet")
    assert (frames["hq_source_frame"].to_numpy() == truth[:30]).mean() >= 0.99


def test_named_test_clips_are_the_test_split_and_a_typo_is_named():
    clips = ["000", "001", "002", "003", "004", "005"]
    split, folds, source = assign_splits(clips, "bilibili", BuildOptions(test_ids="003,005", val_clips=1, seed=3))
    assert sorted(c for c in clips if split[c] == "test") == ["003", "005"]
    assert sum(v == "val" for v in split.values()) == 1 and sum(v == "train" for v in split.values()) == 3
    assert folds == [split] and "003,005" in source
    split, _, _ = assign_splits(clips, "bilibili", BuildOptions(test_ids="004-005", val_clips=0))
    assert [c for c in clips if split[c] == "train"] == ["000", "001", "002", "003"]
    with pytest.raises(UvssmError, match="--test-clips 006: no such clip"):
        assign_splits(clips, "bilibili", BuildOptions(test_ids="006"))
