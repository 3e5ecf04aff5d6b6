"""What a new user hits first, tried as one: the real CLI in a subprocess on a small frames dataset laid out
as UVSSM is (`DATASET/<platform>/{HQ_frames,LQ_frames}`), with expected values worked out here."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from models import checkpoint
from models.registry import create_model
from models.trained import load_trained
from uvssm.base import atomic
from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import run
from uvssm.base.frames import FRAME_PATTERN
from uvssm.display import progress_line


def _uvssm(*args, umask: int | None = None, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, umask=-1 if umask is None else umask)


@pytest.fixture(scope="module")
def platform_dataset(tmp_path_factory, ffmpeg) -> Path:
    """DATASET/WeChat: two clips of 4 frames, HQ 64x48 (testsrc2 + noise), LQ 32x24 by ffmpeg's bicubic."""
    root = tmp_path_factory.mktemp("dataset")
    base = root / "WeChat"
    for seed, clip in enumerate(["a", "b"]):
        for side, scale in (("HQ_frames", ""), ("LQ_frames", ",scale=32:24:flags=bicubic")):
            (base / side / clip).mkdir(parents=True)
            run(ffmpeg, ["-f", "lavfi", "-i", f"testsrc2=s=64x48:r=25,noise=alls=20:allf=t:all_seed={seed}{scale}",
                         "-frames:v", "4", "-pix_fmt", "rgb24", "-start_number", "0", str(base / side / clip / FRAME_PATTERN)],
                context="test dataset")
    (base / "splits").mkdir()
    (base / "splits" / "test.txt").write_text("a\nb\n")
    return root


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_report_after_bench_on_the_platform_folder_itself(tmp_path, platform_dataset):
    """`bench --data DATASET/WeChat` (no --platform), then `report`: it used to join WeChat twice."""
    out = tmp_path / "res"
    done = _uvssm("bench", "--models", "bicubic", "--data", str(platform_dataset / "WeChat"), "--out", str(out),
                  "--device", "cpu", umask=0o027, env={"UVSSM_PROGRESS_EVERY": "0"})
    assert done.returncode == 0, done.stderr
    # a log gets a plain line per frame at UVSSM_PROGRESS_EVERY=0: 8 frames in all
    counts = re.findall(r"^bicubic: (\d)/8 \(\d+%\), \d\d:\d\d:\d\d elapsed$", done.stdout, re.M)
    assert counts == [str(i) for i in range(1, 9)], done.stdout
    report = _uvssm("report", str(out), umask=0o027)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert (out / "crops_wechat_x2_a_00000002.png").is_file() and "figure:" in report.stdout  # the middle frame
    # every result file readable by the group, as the umask (027) asks: 0666 & ~027 = 0640 (report's figures too)
    assert _modes(out) == {0o640}
    # results of earlier versions have no platform_folder: the platform is a subfolder only where one exists
    runs = json.loads((out / "runs.json").read_text())
    for run in runs.values():
        assert run.pop("platform_folder") is None and run["platform"] == "WeChat"
    (out / "runs.json").write_text(json.dumps(runs))
    (out / "crops_wechat_x2_a_00000002.png").unlink()
    assert _uvssm("report", str(out)).returncode == 0 and (out / "crops_wechat_x2_a_00000002.png").is_file()

    # the same data named through --platform: same scores
    again = _uvssm("bench", "--models", "bicubic", "--data", str(platform_dataset), "--platform", "WeChat",
                   "--out", str(tmp_path / "res2"), "--device", "cpu", umask=0o002)
    assert again.returncode == 0, again.stderr
    assert _modes(tmp_path / "res2") == {0o664}
    assert _uvssm("report", str(tmp_path / "res2")).returncode == 0
    one, two = (pd.read_parquet(p / "frames.parquet") for p in (out, tmp_path / "res2"))
    assert one["psnr"].tolist() == two["psnr"].tolist() and set(two["platform"]) == {"WeChat"}


def test_an_option_that_does_not_apply_is_refused(tmp_path, platform_dataset, tiny_reds):
    done = _uvssm("bench", "--models", "bicubic", "--data", str(platform_dataset / "WeChat"), "--qp", "28",
                  "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "--qp 28 does not apply" in done.stderr and str(platform_dataset) in done.stderr
    done = _uvssm("bench", "--models", "bicubic", "--data", str(tiny_reds), "--qp", "28", "--platform", "WeChat",
                  "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "--platform WeChat does not apply" in done.stderr
    assert not (tmp_path / "r" / "frames.parquet").exists()


def test_an_unknown_model_gets_a_did_you_mean(tmp_path, platform_dataset):
    done = _uvssm("bench", "--models", "vote-tiny", "--data", str(platform_dataset / "WeChat"), "--out",
                  str(tmp_path / "r"))
    assert done.returncode == 2 and "unknown model 'vote-tiny'; did you mean votes-tiny" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_weights_that_do_not_fit_name_their_file_and_the_model_they_fit(tmp_path):
    path = tmp_path / "downloaded.pth"  # an official-style file: {"params": ...}, no record of its model
    torch.save({"params": create_model("edvr-tiny", 2).state_dict()}, path)
    with pytest.raises(UvssmError) as err:
        load_trained("votes-tiny", 2, [f"votes-tiny={path}"])
    message = str(err.value)
    assert message.startswith(f"{path}: weights do not fit VOTES") and "<state dict>" not in message
    assert message.endswith("(as votes-tiny x2); they fit edvr-tiny x2")
    torch.save({"params": {"conv.weight": torch.zeros(3, 3, 1, 1)}}, path)
    with pytest.raises(UvssmError, match="they fit no registered model$"):
        load_trained("edvr-tiny", 2, [f"edvr-tiny={path}"])


@pytest.mark.parametrize("content, why", [
    (b"", "the file is empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n",
     "a text file (starts 'version https://git-lfs.github.com/spec/'), not a torch.save file"),
    (b"\x89HDF\r\n\x1a\n" + bytes(40), "an HDF5 file (a Keras/TensorFlow checkpoint?), not a torch.save file"),
])
def test_a_file_that_is_not_a_checkpoint_says_what_it_is(tmp_path, content, why):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(UvssmError) as err:
        checkpoint.read(path)
    assert str(err.value) == f"{path}: not a PyTorch checkpoint: {why}"


def test_atomic_writes_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
        checkpoint.save(tmp_path / "c.pt", torch.nn.Linear(1, 1), {})
        assert _modes(tmp_path) == {0o644}
        os.umask(0o077)
        (tmp_path / "a.txt").chmod(0o640)
        atomic.write_text(tmp_path / "a.txt", "y")  # a replaced file keeps the mode it had
        atomic.write_text(tmp_path / "b.txt", "y")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_progress_line_reads_as_written_by_hand():
    assert progress_line("training", 120, 1000, 65.4, {"loss": "0.0123", "lr": "1.00e-04", "its": "-"}) == \
        "training: 120/1,000 (12%), 00:01:05 elapsed, loss 0.0123, lr 1.00e-04"
    assert progress_line("restoring", 7, None, 3725, {}) == "restoring: 7, 01:02:05 elapsed"
