"""`uvssm bench --outputs NAME=DIR`: frames made elsewhere, scored with Table 2's protocol.

The outputs are made here by plain ffmpeg commands (its Lanczos scaler on the LQ frames), laid out as
BasicSR and mmagic write them; the expected scores come from the BasicSR-protocol transcription in
tests/test_metrics.py, computed on the PNG files themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.harness import run_bench
from benchmarks.options import BenchOptions
from models.inference import InferenceOptions
from tests.test_metrics import _basicsr_reference
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import run
from uvssm.base.frames import read_rgb

CLIPS = ("240", "241")  # tiny_reds' test split


def _lanczos(ffmpeg, tiny_reds: Path, clip: str, target: str) -> None:
    """ffmpeg's Lanczos x2 of the clip's LQ frames, written to `target` (a frame pattern or a video)."""
    extra = ["-c:v", "ffv1", "-pix_fmt", "bgr0"] if target.endswith(".mkv") else ["-start_number", "0"]
    run(ffmpeg, ["-i", str(tiny_reds / "LQ_qp28_x2" / clip / "%08d.png"), "-vf", "scale=iw*2:ih*2:flags=lanczos",
                 *extra, target], context="test outputs")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, ffmpeg, tiny_reds) -> Path:
    """DIR/240/%08d.png (mmagic's names), DIR/241/%08d_Lanczos.png (BasicSR's, with a suffix)."""
    root = tmp_path_factory.mktemp("outputs") / "lanczos"
    for clip, pattern in zip(CLIPS, ("%08d.png", "%08d_Lanczos.png")):
        (root / clip).mkdir(parents=True)
        _lanczos(ffmpeg, tiny_reds, clip, str(root / clip / pattern))
    return root


def _expected(tiny_reds: Path, outputs: Path) -> pd.DataFrame:
    rows = []
    for clip in CLIPS:
        files = sorted((outputs / clip).glob("*.png"))
        for i, path in enumerate(files):
            p, s = _basicsr_reference(read_rgb(path), read_rgb(tiny_reds / "HQ" / clip / f"{i:08d}.png"), 2, True)
            rows.append({"clip": clip, "frame": i, "psnr": p, "ssim": s})
    return pd.DataFrame(rows)


def test_outputs_made_elsewhere_get_the_table2_protocol_and_rows(tmp_path, tiny_reds, outputs):
    result = run_bench(BenchOptions(["bicubic"], tiny_reds, tmp_path / "res", qp=28,
                                    outputs=[("lanczos", outputs)], inference=InferenceOptions(device="cpu")))
    frames = pd.read_parquet(result.tables.paths["frames"])
    mine = frames[frames["model"] == "lanczos"].reset_index(drop=True)
    want = _expected(tiny_reds, outputs)
    assert len(mine) == len(want) == 2 * 16
    assert mine["clip"].tolist() == want["clip"].tolist() and mine["frame"].tolist() == want["frame"].tolist()
    np.testing.assert_allclose(mine["psnr"], want["psnr"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(mine["ssim"], want["ssim"], rtol=0, atol=1e-9)
    assert set(mine["precision"]) == {"external"} and mine["checkpoint_sha256"].isna().all()
    # per clip and Table 2 beside uvssm's own rows: clip means, then their mean
    table = result.tables.table2.set_index("model")
    by_hand = np.mean([want[want["clip"] == c]["psnr"].mean() for c in CLIPS])
    assert table.loc["lanczos", "psnr"] == pytest.approx(by_hand, abs=1e-6) and table.loc["lanczos", "clips"] == 2
    assert "bicubic" in table.index and table.loc["lanczos", "psnr"] != table.loc["bicubic", "psnr"]
    clips = pd.read_parquet(result.tables.paths["clips"]).set_index(["model", "clip"])
    assert clips.loc[("lanczos", "241"), "frames"] == 16

    # resumed as a model is: unchanged outputs are kept, a changed frame is rescored
    part = tmp_path / "res" / ".parts" / "sample" / "qp28_x2" / "test" / "lanczos" / "240.parquet"
    stamp = part.stat().st_mtime_ns
    run_bench(BenchOptions([], tiny_reds, tmp_path / "res", qp=28, outputs=[("lanczos", outputs)],
                           inference=InferenceOptions(device="cpu")))
    assert part.stat().st_mtime_ns == stamp
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(outputs, changed)
    shutil.copy(tiny_reds / "HQ" / "240" / "00000003.png", changed / "240" / "00000003.png")  # a perfect frame
    again = run_bench(BenchOptions([], tiny_reds, tmp_path / "res", qp=28,
                                   outputs=[("lanczos", changed)], inference=InferenceOptions(device="cpu")))
    rows = pd.read_parquet(again.tables.paths["frames"]).query("model == 'lanczos' and clip == '240'")
    assert part.stat().st_mtime_ns != stamp and np.isinf(rows["psnr"].iloc[3]) and rows["ssim"].iloc[3] == 1.0


def test_a_video_of_outputs_scores_as_its_frames(tmp_path, ffmpeg, tiny_reds, outputs):
    """A lossless video (FFV1 RGB) of the same Lanczos frames: the same scores as the PNG folder's."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in CLIPS:
        _lanczos(ffmpeg, tiny_reds, clip, str(videos / f"{clip}.mkv"))
    result = run_bench(BenchOptions([], tiny_reds, tmp_path / "res", qp=28, save_frames=0,
                                    outputs=[("lanczos-video", videos)], inference=InferenceOptions(device="cpu")))
    got = pd.read_parquet(result.tables.paths["frames"])
    want = _expected(tiny_reds, outputs)
    np.testing.assert_allclose(got["psnr"], want["psnr"], rtol=0, atol=1e-6)


def _bench_cli(*args):
    return subprocess.run([sys.executable, "-m", "uvssm", "bench", *args], capture_output=True, text=True, timeout=600)


def test_missing_short_or_wrong_size_outputs_are_refused_naming_the_clip(tmp_path, ffmpeg, tiny_reds, outputs):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(outputs, bad)
    (bad / "241" / "00000015_Lanczos.png").unlink()
    done = _bench_cli("--outputs", f"mine={bad}", "--data", str(tiny_reds), "--qp", "28", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{bad / '241'}: clip 241: 15 output frames, but its HQ has 16" in done.stderr

    shutil.rmtree(bad / "241")
    done = _bench_cli("--outputs", f"mine={bad}", "--data", str(tiny_reds), "--qp", "28", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and f"{bad}: no outputs of clip 241" in done.stderr

    small = tmp_path / "small"
    (small / "240").mkdir(parents=True)
    (small / "241").mkdir()
    for clip in CLIPS:  # LQ size, not HQ
        run(ffmpeg, ["-i", str(tiny_reds / "LQ_qp28_x2" / clip / "%08d.png"), "-start_number", "0",
                     str(small / clip / "%08d.png")], context="test outputs")
    with pytest.raises(UvssmError, match=r"clip 240: outputs are 192x112, HQ is 384x224"):
        run_bench(BenchOptions([], tiny_reds, tmp_path / "r", qp=28, outputs=[("small", small)]))
    assert not (tmp_path / "r" / "frames.parquet").exists()

    done = _bench_cli("--outputs", "no-equals-sign", "--data", str(tiny_reds), "--qp", "28", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "expected NAME=DIR" in done.stderr
    done = _bench_cli("--models", "bicubic", "--outputs", f"bicubic={outputs}", "--data", str(tiny_reds), "--qp", "28",
                      "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "bicubic is also a model of --models" in done.stderr
