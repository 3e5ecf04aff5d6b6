"""`uvssm train` as a user runs it: the real CLI in a subprocess, good and bad inputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd

from models import checkpoint

FAST = ["--set", "batch_size=2", "--set", "val_frames=1", "--set", "log_every=1"]


def _uvssm(*args, env=None):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env})


def _one_error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_list_shows_the_packaged_configs():
    done = _uvssm("train", "--list")
    assert done.returncode == 0
    for name in ("votes-reds-qp28-x2", "dsm-reds-qp28-x2", "votes-uvssm-wechat-x2", "votes-tiny-sample"):
        assert name in done.stdout


def test_both_stages_then_resume_and_reruns(tmp_path, tiny_reds):
    dsm = _uvssm("train", "dsm-tiny-sample", "--data", str(tiny_reds), "--out", str(tmp_path / "dsm"),
                 "--iters", "2", "--set", "val_every=2", "--set", "save_every=2", *FAST,
                 "--frame-cache", str(tmp_path / "frame-cache"), "--portable-numerics",
                 env={"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})
    assert dsm.returncode == 0, dsm.stderr
    # the pins override what the environment asked for, and the run records them
    numerics = checkpoint.read(tmp_path / "dsm" / "checkpoints" / "latest.pt")["uvssm"]["numerics"]
    assert numerics["cpu_capability"] in ("AVX2", "DEFAULT") and numerics["pins"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert numerics["torch_threads"] == 2 and not numerics["deterministic_warn_only"]
    # the training clips (001-003: LQ and HQ folders) decoded into the folder given
    assert len(list((tmp_path / "frame-cache").glob("*.npy"))) == 6 and str(tmp_path / "frame-cache") in dsm.stdout
    assert "stage 1 trains the DSM to estimate z_t" in dsm.stdout and "done at iteration 2" in dsm.stdout
    assert re.search(r"^iter 2: val DSM: its DFM's agreement with the true degradation -?\d\.\d\d; its estimate of "
                     r"z_t \d+\.\d\d dB \(the LQ frame itself \d+\.\d\d dB\)", dsm.stdout, re.M), dsm.stdout

    # stage 2 without stage-1 weights: told how to get them
    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tiny_reds), "--out",
                                  str(tmp_path / "votes"), *FAST))
    assert "run stage 1 first" in line and "--bin" in line

    args = ["train", "votes-tiny-sample", "--data", str(tiny_reds), "--out", str(tmp_path / "votes"),
            "--bin", str(tmp_path / "dsm" / "checkpoints" / "latest.pt"), "--set", "val_every=2",
            "--set", "save_every=2", *FAST]
    first = _uvssm(*args, "--iters", "2", env={"UVSSM_PROGRESS_EVERY": "0"})
    assert first.returncode == 0, first.stderr
    assert "val PSNR-Y" in first.stdout and "bicubic" in first.stdout
    # a log (stdout is a pipe here) gets plain progress lines with the loss, not only a final bar
    logged = re.findall(r"^training: (\d)/2 \(\d+%\), \d\d:\d\d:\d\d elapsed, loss ([0-9.e-]+), lr ", first.stdout, re.M)
    assert [it for it, _ in logged] == ["1", "2"], first.stdout
    log = pd.read_parquet(tmp_path / "votes" / "train_log.parquet")
    assert [float(loss) for _, loss in logged] == [float(f"{v:.4g}") for v in log["loss"]]

    again = _uvssm(*args, "--iters", "4")
    assert "already holds a training run" in _one_error_line(again) and again.returncode == 2

    resumed = _uvssm(*args, "--iters", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.read(tmp_path / "votes" / "checkpoints" / "latest.pt")["uvssm"]["iteration"] == 4
    assert pd.read_parquet(tmp_path / "votes" / "train_log.parquet")["iteration"].tolist() == [1, 2, 3, 4]
    assert (tmp_path / "votes" / "config.yaml").exists()


def test_bad_inputs_give_one_line_errors(tmp_path, tiny_reds):
    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tmp_path / "nowhere"),
                                  "--out", str(tmp_path / "o")))
    assert str(tmp_path / "nowhere") in line

    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tiny_reds), "--out",
                                  str(tmp_path / "o"), "--set", "data.qp=33"))
    assert "LQ_qp33_x2" in line and "synth-reds" in line

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tiny_reds), "--out",
                                  str(tmp_path / "o"), "--bin", str(junk)))
    assert f"{junk}: not a PyTorch checkpoint: unknown binary data (starts 00 00" in line
    text = tmp_path / "notes.pt"  # torch.load itself says "KeyError: 101" of a text file
    text.write_text("weights are on the shared drive\n")
    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tiny_reds), "--out",
                                  str(tmp_path / "o"), "--bin", str(text)))
    assert f"{text}: not a PyTorch checkpoint: a text file (starts 'weights are on the shared drive')" in line

    line = _one_error_line(_uvssm("train", "votes-tiny-sample", "--data", str(tiny_reds), "--out",
                                  str(tmp_path / "o"), "--set", "batch_sise=2"))
    assert "unknown key(s) batch_sise" in line
