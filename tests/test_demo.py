"""`uvssm demo` wires every step together and resumes. Shortened here (a 384x224 sample of 5-frame
clips, 2 training iterations, one model benched); the full demo is the README's main job."""

from __future__ import annotations

import pandas as pd

from uvssm.demo import DemoOptions, _platform_pair, run_demo
from uvssm.frames import read_rgb
from uvssm.sample import make_sample


def test_demo_runs_every_step_and_resumes(tmp_path, ffmpeg):
    opts = DemoOptions(bench_frames=5, bench_models=("bicubic", "votes-tiny"), sample_frames=5,
                       sample_size=(384, 224), platform_pair=False,
                       train_iters={"dsm-tiny-sample": 2, "votes-tiny-sample": 2}, device="cpu")
    steps = []
    result = run_demo(tmp_path / "demo", ffmpeg, opts, lambda e, i: steps.append(i["text"]) if e == "step" else None)
    assert [s[:3] for s in steps] == ["1/5", "3/5", "4/5", "5/5"]
    table = result["table2"]
    assert set(zip(table["setting"], table["model"])) == {("qp28_x2", "bicubic"), ("qp28_x2", "votes-tiny")}
    assert (tmp_path / "demo" / "train" / "votes-tiny" / "checkpoints" / "latest.pt").is_file()
    names = {p.name for p in result["figures"]}
    assert {"crops_qp28_x2_240_00000002.png", "dfm_qp28_x2_241_00000002.png"} <= names
    frames = pd.read_parquet(result["paths"]["frames"])

    events = []
    again = run_demo(tmp_path / "demo", ffmpeg, opts, lambda e, i: events.append(e))
    assert "train" not in events and "bench-frame" not in events  # everything was already done
    assert pd.read_parquet(again["paths"]["frames"]).equals(frames)


def test_demo_platform_pair_is_an_exact_x2_pair(tmp_path, ffmpeg):
    src = make_sample(tmp_path / "src", ffmpeg, frames_per_clip=6)
    folder = _platform_pair(src, tmp_path, ffmpeg, lambda e, i: None)
    assert folder.name == "Bilibili"
    hq, lq = read_rgb(folder / "HQ_frames" / "demo" / "00000000.png"), read_rgb(folder / "LQ_frames" / "demo" / "00000000.png")
    assert hq.shape == (720, 1280, 3) and lq.shape == (360, 640, 3)
    assert len(list((folder / "LQ_frames" / "demo").glob("*.png"))) == 6


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
