import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from uvssm.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_top_level_help_does_not_import_torch():
    code = "import sys; from uvssm.cli import cli; cli.main(['--help'], standalone_mode=False); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def _uvssm(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, cwd=cwd)


def test_missing_source_exits_nonzero_with_one_line(tmp_path):
    done = _uvssm("synth-reds", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path / 'missing'}: source folder does not exist"]


def test_bad_ffmpeg_override_exits_nonzero(tmp_path):
    done = _uvssm("--ffmpeg", str(tmp_path / "no-ffmpeg"), "info")
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_synth_with_bicubic_writes_the_table2_row(clips, tmp_path):
    out = tmp_path / "out"
    done = _uvssm("synth-reds", "--src", str(clips), "--out", str(out), "--scale", "2", "--bicubic",
                  "--eval-split", "all", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    frames = pd.read_parquet(out / "results" / "frames.parquet")
    assert len(frames) == 24 and set(frames["model"]) == {"bicubic"}
    assert set(frames["metric_color_space"]) == {"y_bt601_limited"} and set(frames["metric_crop_border"]) == {2}
    assert frames["psnr"].between(15, 60).all() and frames["ssim"].between(0, 1).all()
    row = pd.read_parquet(out / "results" / "table2.parquet")
    by_hand = sum(frames[frames["clip"] == c]["psnr"].sum() / 8 for c in ("000", "001", "240")) / 3
    assert row["psnr"].iloc[0] == pytest.approx(by_hand, abs=1e-12)
    assert "Table 2" in done.stdout and "bicubic" in done.stdout
    # a log (stdout is a pipe here) gets the whole table, one line per row, as bench and report print it
    header = [line for line in done.stdout.splitlines() if "ΔSSIM" in line]
    assert len(header) == 1 and "dataset" in header[0] and "setting" in header[0], done.stdout
    assert any("bicubic" in line and f"{by_hand:.2f}" in line for line in done.stdout.splitlines()), done.stdout


def test_bicubic_is_worse_at_higher_qp_and_scale(clips, tmp_path):
    from benchmarks.harness import run_bench
    from benchmarks.options import BenchOptions
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.pipelines.synth import SynthOptions, synth_reds

    out = tmp_path / "out"
    synth_reds(clips, out, find_ffmpeg(), SynthOptions(qps=(18, 40), scales=(2,)))
    for qp in (18, 40):
        run_bench(BenchOptions(["bicubic"], out, tmp_path / "res", qp=qp, split="all", save_frames=0))
    table = pd.read_parquet(tmp_path / "res" / "table2.parquet").set_index("setting")
    assert table.loc["qp18_x2", "psnr"] > table.loc["qp40_x2", "psnr"] + 1.0
    done = _uvssm("report", str(tmp_path / "res"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "res" / "psnr_vs_qp_src_x2.png").is_file() and "Table 2" in done.stdout


def test_sample_is_made_once(tmp_path):
    done = _uvssm("sample", "--out", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "s" / "sample.json").read_text())
    assert sorted(p.name for p in (tmp_path / "s" / "val_sharp").iterdir()) == ["000", "001"]
    assert len(list((tmp_path / "s" / "train_sharp" / "003").glob("*.png"))) == meta["frames_per_clip"]
    stamp = (tmp_path / "s" / "sample.json").stat().st_mtime_ns
    assert _uvssm("sample", "--out", str(tmp_path / "s")).returncode == 0
    assert (tmp_path / "s" / "sample.json").stat().st_mtime_ns == stamp


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line.strip() for line in ci.splitlines() if line.strip().startswith("python3 -m venv"))
    assert command in readme


def test_a_platform_is_named_in_any_case_by_build_bench_and_simulate(tmp_path, ffmpeg):
    """`build --platform WECHAT` and `bench --platform wechat` or `WeChat` name the one folder build writes
    (WeChat/), with the same rows; simulate takes every preset of degrade/platforms.py, in any case."""
    from degrade.platforms import PRESETS
    from uvssm.base.ffmpeg import run
    from uvssm.base.frames import FRAME_PATTERN
    from uvssm.commands.simulate import simulate

    src = tmp_path / "raw" / "WeChat"
    for clip in ("016", "048"):
        for kind, size in (("HQ_frames", "64x48"), ("LQ_frames", "32x24")):
            folder = src / kind / clip
            folder.mkdir(parents=True)
            run(ffmpeg, ["-f", "lavfi", "-i", f"testsrc2=s={size}", "-frames:v", "4", "-start_number", "0",
                         str(folder / FRAME_PATTERN)], context="frames")
    built = CliRunner().invoke(cli, ["build", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"),
                                     "--platform", "WECHAT"])
    assert built.exit_code == 0, built.output
    assert [p.name for p in (tmp_path / "ds").iterdir() if p.is_dir()] == ["WeChat"]
    rows = {}
    for spelling in ("wechat", "WeChat"):
        out = tmp_path / f"res-{spelling}"
        result = CliRunner().invoke(cli, ["bench", "--models", "bicubic", "--data", str(tmp_path / "ds"),
                                          "--platform", spelling, "--split", "all", "--device", "cpu",
                                          "--save-frames", "0", "--out", str(out)])
        assert result.exit_code == 0, result.output
        rows[spelling] = pd.read_parquet(out / "frames.parquet")[["dataset", "platform", "setting", "clip", "frame",
                                                                  "psnr", "ssim"]]
    assert len(rows["wechat"]) == 8 and set(rows["wechat"]["platform"]) == {"WeChat"}
    pd.testing.assert_frame_equal(rows["wechat"], rows["WeChat"])
    choices = next(p for p in simulate.params if p.name == "platform").type
    assert sorted(choices.choices) == sorted(PRESETS) and choices.convert("BiliBili", None, None) == "bilibili"
