"""`uvssm demo` wires every step together, resumes and repeats itself exactly. Shortened here (a
384x224 sample of 5-frame clips, a few training iterations); the full demo is the README's main job."""

from __future__ import annotations

import pandas as pd
import torch

from uvssm.pipelines.demo import DemoOptions, _platform_pair, findings, run_demo
from uvssm.base.frames import read_rgb

SHORT = dict(bench_frames=5, bench_models=("bicubic", "votes-tiny", "votes-wo-dfm-tiny"), sample_frames=5,
             sample_size=(384, 224), sample_crop=None, platform_pair=False, device="cpu",
             train_iters={"dsm-tiny-sample": 3, "votes-tiny-sample": 4, "votes-wo-dfm-tiny-sample": 4})


def test_demo_runs_every_step_resumes_and_repeats_exactly(tmp_path, ffmpeg):
    opts = DemoOptions(**SHORT)
    steps = []
    threads = torch.get_num_threads()
    try:
        result = run_demo(tmp_path / "a", ffmpeg, opts,
                          lambda e, i: steps.append(i["text"]) if e == "step" else None)
        _rest_of_the_test(tmp_path, ffmpeg, opts, result, steps)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def _rest_of_the_test(tmp_path, ffmpeg, opts, result, steps):
    assert [s[:3] for s in steps] == ["1/5", "3/5", "4/5", "5/5"]
    table = result["table2"]
    assert set(zip(table["setting"], table["model"])) == {
        ("qp28_x2", "bicubic"), ("qp28_x2", "votes-tiny"), ("qp28_x2", "votes-wo-dfm-tiny")}
    assert (tmp_path / "a" / "train" / "votes-tiny" / "checkpoints" / "latest.pt").is_file()
    assert (tmp_path / "a" / "train" / "votes-wo-dfm-tiny" / "checkpoints" / "iter_0000004.pt").is_file()
    names = {p.name for p in result["figures"]}
    assert {"crops_qp28_x2_240_00000002.png", "dfm_qp28_x2_241_00000002.png",
            "dfm_qp_qp28_x2_241_00000002.png"} <= names
    assert len(result["findings"]) == 1 and result["findings"][0].startswith("sample qp28_x2: votes-tiny ")
    record = pd.read_json(tmp_path / "a" / "demo.json", typ="series")
    assert record["torch_threads"] == 2 and record["deterministic_algorithms"]
    frames = pd.read_parquet(result["paths"]["frames"])

    events = []
    again = run_demo(tmp_path / "a", ffmpeg, opts, lambda e, i: events.append(e))
    assert "train" not in events and "bench-frame" not in events  # everything was already done
    assert pd.read_parquet(again["paths"]["frames"]).equals(frames)

    # the same command in another folder: every number the same, to the last digit
    repeat = run_demo(tmp_path / "b", ffmpeg, opts)
    cols = ["setting", "model", "clip", "frame", "psnr", "ssim"]
    assert pd.read_parquet(repeat["paths"]["frames"])[cols].equals(frames[cols])
    for model in ("votes-tiny", "votes-wo-dfm-tiny"):  # the same weights (the files differ in the paths they record)
        a, b = (torch.load(root / "train" / model / "checkpoints" / "latest.pt", weights_only=False)["params"]
                for root in (tmp_path / "a", tmp_path / "b"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_demo_platform_pair_is_an_exact_x2_pair_of_the_720p_footage(tmp_path, ffmpeg):
    folder = _platform_pair(6, tmp_path, ffmpeg, lambda e, i: None)
    assert folder.name == "Bilibili"
    hq, lq = read_rgb(folder / "HQ_frames" / "demo" / "00000000.png"), read_rgb(folder / "LQ_frames" / "demo" / "00000000.png")
    assert hq.shape == (720, 1280, 3) and lq.shape == (360, 640, 3)
    assert len(list((folder / "LQ_frames" / "demo").glob("*.png"))) == 6
    assert (folder / "LQ_qp" / "demo.qp.npz").is_file()  # the share's bitstream QP maps, for the DFM figure


def test_findings_say_what_the_numbers_show():
    rows = [("sample", "qp28_x2", "bicubic", 36.40, 0.9411), ("sample", "qp28_x2", "votes-tiny", 36.90, 0.9420),
            ("sample", "qp28_x2", "votes-wo-dfm-tiny", 36.70, 0.9415),
            ("UVSSM", "bilibili_x2", "bicubic", 34.46, 0.9296), ("UVSSM", "bilibili_x2", "votes-tiny", 34.40, 0.9316),
            ("UVSSM", "bilibili_x2", "votes-wo-dfm-tiny", 34.50, 0.9320)]
    table = pd.DataFrame(rows, columns=["dataset", "setting", "model", "psnr", "ssim"])
    lines = findings(table)
    assert lines[0].startswith("UVSSM bilibili_x2: votes-tiny does not beat bicubic (-0.06 dB PSNR, +0.0020 SSIM)")
    assert "a degradation it never saw" in lines[0]  # the reason, for a platform share
    assert "its DFM does not help here (-0.10 dB / -0.0004 against votes-wo-dfm-tiny)" in lines[0]
    assert lines[1] == ("sample qp28_x2: votes-tiny beats bicubic (+0.50 dB PSNR, +0.0009 SSIM); "
                        "its DFM adds +0.20 dB / +0.0005 over votes-wo-dfm-tiny")
    short = table.assign(psnr=table.psnr.where(table.model != "votes-tiny", [0, 36.30, 0, 0, 34.40, 0]))
    assert "move with the training seed" in findings(short)[1]  # the reason, for the synthesised clips


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
    assert str(tmp_path / "demo" / "train" / "votes-tiny" / "checkpoints" / "latest.pt") in lines[3]
