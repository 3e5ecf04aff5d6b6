"""`uvssm demo` wires every step together, resumes and repeats itself exactly. Shortened here (a
384x224 sample of 5-frame clips, a few training iterations); the full demo is the README's main job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from uvssm.pipelines.demo import DemoOptions, _platform_pairs, findings, run_demo
from uvssm.base.frames import read_rgb
from uvssm.base.progress import (BenchFrame, BuildPair, BuildPlan, Note, ShareMade, SharePlan, Step, StepDone, SynthFrames,
                                  SynthPlan, TrainRun, TrainVal)

SHORT = dict(bench_frames=5, bench_models=("bicubic", "votes-tiny", "votes-wo-dfm-tiny"), sample_frames=5,
             sample_size=(384, 224), sample_crop=None, platform_pair=False, device="cpu",
             train_iters={"dsm-tiny-sample": 3, "votes-tiny-sample": 4, "votes-wo-dfm-tiny-sample": 4})
IN_PROCESS = dict(SHORT, pin_numerics=False)  # torch already runs in pytest's process: it cannot be pinned here


def test_demo_runs_every_step_resumes_and_repeats_exactly(tmp_path, ffmpeg):
    opts = DemoOptions(**IN_PROCESS)
    steps = []
    threads = torch.get_num_threads()
    try:
        result = run_demo(tmp_path / "a", ffmpeg, opts,
                          lambda e: steps.append(e) if isinstance(e, (Step, StepDone)) else None)
        _rest_of_the_test(tmp_path, ffmpeg, opts, result, steps)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def _rest_of_the_test(tmp_path, ffmpeg, opts, result, events):
    steps = [e.text for e in events if isinstance(e, Step)]
    assert [s[:3] for s in steps] == ["1/5", "3/5", "4/5", "5/5"]
    # each step begins, then ends with its own duration (not the time since the start), as demo.json records it
    assert [type(e) for e in events] == [Step, StepDone] * 4
    # json, not pd.read_json: pandas' fast float parser reads 0.7 as 0.7000000000000001
    record = json.loads((tmp_path / "a" / "demo.json").read_text())
    assert {e.text: e.seconds for e in events if isinstance(e, StepDone)} == record["seconds"]
    table = result["table2"]
    assert set(zip(table["setting"], table["model"])) == {
        ("qp28_x2", "bicubic"), ("qp28_x2", "votes-tiny"), ("qp28_x2", "votes-wo-dfm-tiny")}
    assert (tmp_path / "a" / "train" / "reds" / "votes-tiny" / "checkpoints" / "latest.pt").is_file()
    assert (tmp_path / "a" / "train" / "reds" / "votes-wo-dfm-tiny" / "checkpoints" / "iter_0000004.pt").is_file()
    names = {p.name for p in result["figures"]}
    assert {"crops_qp28_x2_240_00000002.png", "dfm_qp28_x2_241_00000002.png",
            "dfm_qp_qp28_x2_241_00000002.png"} <= names
    assert len(result["findings"]) == 1 and result["findings"][0].startswith("sample qp28_x2: votes-tiny ")
    assert record["torch_threads"] == 2 and record["deterministic_algorithms"]
    assert not record["deterministic_warn_only"]  # a non-deterministic op is an error, not a warning
    frames = pd.read_parquet(result["paths"]["frames"])

    events = []
    again = run_demo(tmp_path / "a", ffmpeg, opts, events.append)
    assert not any(isinstance(e, (TrainRun, BenchFrame)) for e in events)  # everything was already done
    assert pd.read_parquet(again["paths"]["frames"]).equals(frames)

    # the same command in another folder: every number the same, to the last digit
    repeat = run_demo(tmp_path / "b", ffmpeg, opts)
    cols = ["setting", "model", "clip", "frame", "psnr", "ssim"]
    assert pd.read_parquet(repeat["paths"]["frames"])[cols].equals(frames[cols])
    for model in ("votes-tiny", "votes-wo-dfm-tiny"):  # the same weights (the files differ in the paths they record)
        a, b = (torch.load(root / "train" / "reds" / model / "checkpoints" / "latest.pt", weights_only=False)["params"]
                for root in (tmp_path / "a", tmp_path / "b"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_demo_platform_pairs_are_exact_x2_pairs_of_the_720p_footage_split_as_named(tmp_path, ffmpeg):
    events = []
    folder = _platform_pairs(6, tmp_path, ffmpeg, events.append, clips=("000", "241"))
    assert folder.name == "Bilibili"
    # every part of the step reports as it goes: the shares (each original encoded, then shared), then the pairs
    shown = [e for e in events if isinstance(e, (SharePlan, ShareMade, BuildPlan, BuildPair))]
    assert shown == [SharePlan("bilibili", 2), ShareMade("bilibili", "000", "made"), ShareMade("bilibili", "241", "made"),
                     BuildPlan("bilibili", 2, 2), BuildPair("bilibili", "000", "built"), BuildPair("bilibili", "241", "built")]
    for clip in ("000", "241"):
        hq = read_rgb(folder / "HQ_frames" / clip / "00000000.png")
        lq = read_rgb(folder / "LQ_frames" / clip / "00000000.png")
        assert hq.shape == (720, 1280, 3) and lq.shape == (360, 640, 3)
        assert len(list((folder / "LQ_frames" / clip).glob("*.png"))) == 6
        assert (folder / "LQ_qp" / f"{clip}.qp.npz").is_file()  # the share's bitstream QP maps, for the DFM figure
    # the test clip as the demo names it, every other clip training (no validation clips)
    assert (folder / "splits" / "test.txt").read_text().split() == ["241"]
    assert (folder / "splits" / "train.txt").read_text().split() == ["000"]


def test_findings_say_what_the_numbers_show():
    rows = [("sample", "qp28_x2", "bicubic", 36.40, 0.9411), ("sample", "qp28_x2", "votes-tiny", 36.90, 0.9420),
            ("UVSSM", "bilibili_x2", "bicubic", 34.46, 0.9296), ("UVSSM", "bilibili_x2", "votes-tiny", 34.40, 0.9316),
            ("UVSSM", "bilibili_x2", "votes-wo-dfm-tiny", 34.50, 0.9320)]
    table = pd.DataFrame(rows, columns=["dataset", "setting", "model", "psnr", "ssim"])
    lines = findings(table)
    assert lines[0].startswith("UVSSM bilibili_x2: votes-tiny does not beat bicubic (-0.06 dB PSNR, +0.0020 SSIM)")
    assert "move with the training seed" in lines[0]  # the reason
    # the DFM's difference, worked by hand, and no claim from one seed
    assert "its DFM: -0.10 dB / -0.0004 against votes-wo-dfm-tiny (one training seed, so no claim" in lines[0]
    assert lines[1] == "sample qp28_x2: votes-tiny beats bicubic (+0.50 dB PSNR, +0.0009 SSIM)"


def test_next_steps_are_real_commands_with_real_options(tmp_path):
    """Each hint the demo ends with names a uvssm command and only options that command has."""
    import shlex

    from uvssm.cli import cli
    from uvssm.commands.demo import next_steps

    lines = next_steps(tmp_path / "demo")
    commands = [part.strip() for line in lines[1:] for part in line.split(":", 1)[1].split(";")]
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command.split("  (")[0])
        assert words[0] == "uvssm"
        sub = cli.get_command(None, words[1])
        assert sub is not None, command
        known = {opt for p in sub.params for opt in p.opts}
        assert {w for w in words[2:] if w.startswith("-")} <= known, command
    assert str(tmp_path / "demo" / "train" / "bilibili" / "votes-tiny" / "checkpoints" / "latest.pt") in lines[3]


PINNED_RUN = """
import json, sys
from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.pipelines.demo import DemoOptions, run_demo
options = json.loads(sys.argv[2])
run_demo(sys.argv[1], find_ffmpeg(None), DemoOptions(**{k: tuple(v) if isinstance(v, list) else v
                                                        for k, v in options.items()}))
"""
# votes-tiny only (stage 1 and 2: the model whose numbers moved between machines), 2 frames a clip
PINNED = dict(SHORT, bench_frames=2, bench_models=("bicubic", "votes-tiny"),
              train_iters={"dsm-tiny-sample": 3, "votes-tiny-sample": 4})
ASK_AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "MKL_CBWR": "AUTO"}
ASK_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def _demo_in_a_fresh_process(out, env_asks: dict, pin: bool):
    """The short demo in a new Python process whose environment asks for these kernels; returns its
    trained weights, its per-frame scores and its run record."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, **env_asks, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    options = json.dumps({**PINNED, "pin_numerics": pin})
    subprocess.run([sys.executable, "-c", PINNED_RUN, str(out), options], env=env, check=True,
                   capture_output=True, timeout=600)
    weights = {m: torch.load(out / "train" / "reds" / m / "checkpoints" / "latest.pt", weights_only=False)["params"]
               for m in PINNED["bench_models"][1:]}
    frames = pd.read_parquet(out / "results" / "frames.parquet")[["setting", "model", "clip", "frame", "psnr", "ssim"]]
    return weights, frames, json.loads((out / "demo.json").read_text())


def _same_weights(a, b) -> bool:
    return all(a[m].keys() == b[m].keys() and all(torch.equal(a[m][k], b[m][k]) for k in a[m]) for m in a)


def test_demo_gives_the_same_weights_and_table_whatever_kernels_the_machine_offers(tmp_path):
    """Two fresh processes, one whose environment asks torch for AVX-512 kernels and one for AVX2:
    the demo pins AVX2 in both, so the weights and every score are identical. Without the pin (the
    control), on a machine with AVX-512 the same two runs train different weights: that difference is
    what the pin removes (skipped where the machine has no AVX-512 to differ by)."""
    wide, frames_wide, record_wide = _demo_in_a_fresh_process(tmp_path / "wide", ASK_AVX512, pin=True)
    narrow, frames_narrow, record_narrow = _demo_in_a_fresh_process(tmp_path / "narrow", ASK_AVX2, pin=True)
    assert record_wide["cpu_capability"] == record_narrow["cpu_capability"] == "AVX2"
    assert record_wide["pins"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and record_wide["pins"]["MKL_CBWR"] == "AVX2"
    assert _same_weights(wide, narrow)
    assert frames_wide.equals(frames_narrow)

    free, _, record_free = _demo_in_a_fresh_process(tmp_path / "free", ASK_AVX512, pin=False)
    if record_free["cpu_capability"] != "AVX512":
        pytest.skip(f"this machine runs {record_free['cpu_capability']} kernels when asked for AVX-512: "
                    "no wider kernels for the control to differ by")
    assert not _same_weights(free, narrow)  # the machine's own kernels do change the numbers


def test_the_demo_shows_every_step_and_each_steps_own_duration(monkeypatch):
    """What the demo prints to a log (stdout a pipe): a line per step, one with the step's own duration as it
    ends, and a count for every piece of work inside a step, sharing and aligning included (they once ran
    for 1,011 s without a line)."""
    import io

    from rich.console import Console

    from uvssm.commands.demo import demo_display
    from uvssm.display import PROGRESS_EVERY_ENV, progress_display

    monkeypatch.setenv(PROGRESS_EVERY_ENV, "0")  # a line at every move
    console = Console(file=io.StringIO(), width=200)
    progress = progress_display(console)
    on_event = demo_display(progress)
    with progress:
        for event in (Step("1/5 synthesise"), SynthPlan(4, ["LQ_qp28_x2"]), SynthFrames(4), StepDone("synthesise", 81.6),
                      Step("2/5 simulate shares and build the pairs"), SharePlan("bilibili", 2),
                      ShareMade("bilibili", "000", "made"), ShareMade("bilibili", "241", "reused"),
                      BuildPlan("Bilibili", 2, 2), BuildPair("Bilibili", "000", "built"),
                      BuildPair("Bilibili", "241", "left out", "no content match"), Note("a note"),
                      StepDone("platform pairs", 412.4),
                      TrainRun("dsm-tiny-sample", 100, Path("reds")),
                      TrainVal(50, 27.1, "lq", 34.4, 1, {"dfm_corr": 0.05}),
                      TrainVal(100, 27.5, "lq", 34.4, 1, {"dfm_corr": 0.1})):
            on_event(event)
    lines = console.file.getvalue().splitlines()
    assert "1/5 synthesise" in lines and "2/5 simulate shares and build the pairs" in lines  # no clock since the start
    assert "  step done in 82 s" in lines and "  step done in 412 s" in lines
    assert any(line.startswith("encoding: 4/4 (100%)") for line in lines)
    assert any(line.startswith("sharing on bilibili: 1/2 (50%)") for line in lines)
    assert any(line.startswith("sharing on bilibili: 2/2 (100%)") for line in lines)
    assert any(line.startswith("aligning Bilibili: 2/2 (100%)") for line in lines)
    assert "  left out: Bilibili/241: no content match" in lines and "  a note" in lines
    # stage 1: what the DSM is trained for, once per run, and the number that shows it working on every line
    assert sum("stage 1 trains the DSM to estimate z_t" in line for line in lines) == 1
    assert [line for line in lines if line.startswith("  iter ")] == [
        "  iter 50: val DSM: its DFM's agreement with the true degradation 0.05; its estimate of z_t 27.10 dB "
        "(the LQ frame itself 34.40 dB), 1 clips",
        "  iter 100: val DSM: its DFM's agreement with the true degradation 0.10; its estimate of z_t 27.50 dB "
        "(the LQ frame itself 34.40 dB), 1 clips"]
