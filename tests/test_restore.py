"""`uvssm restore`: a shared video in, a restored video (and frames) out, streamed; bad inputs refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from models import checkpoint
from models.inference import restore_stream
from models.registry import create_model, model_kwargs
from models.trained import load_trained
from uvssm.decode import rgb_frames
from uvssm.ffmpeg import run
from uvssm.frames import frame_name, read_rgb
from uvssm.probe import probe


@pytest.fixture(scope="module")
def shared_video(tmp_path_factory, ffmpeg):
    """A 'shared' clip with an odd size and an audio track: 14 frames of 202x114 at 25 fps."""
    path = tmp_path_factory.mktemp("shared") / "shared.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=202x114:r=25", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                 "-frames:v", "14", "-c:v", "libx264", "-crf", "30", "-pix_fmt", "yuv420p", "-threads", "1",
                 "-c:a", "aac", "-shortest", str(path)], context="test video")
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "votes-tiny.pt"
    checkpoint.save(path, create_model("votes-tiny", 2),
                    {"model": "votes-tiny", "scale": 2, "model_kwargs": model_kwargs("votes-tiny", 2)})
    return path


def _uvssm(*args):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True)


def test_restore_writes_the_streamed_model_output(tmp_path, shared_video, ckpt, ffmpeg):
    out, frames = tmp_path / "restored.mp4", tmp_path / "frames"
    done = _uvssm("restore", str(shared_video), "-o", str(out), "--model", "votes-tiny", "--weights", str(ckpt),
                  "--frames", str(frames), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info.width, info.height, info.n_frames) == (404, 228, 14)
    import av

    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    # The PNGs are exactly the model's outputs on the decoded frames (windows, padding, order).
    model = load_trained("votes-tiny", 2, [f"votes-tiny={ckpt}"])
    lq = [torch.tensor(f).permute(2, 0, 1).float() / 255 for f in rgb_frames(ffmpeg, probe(shared_video))]
    want = [o.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy() for o in restore_stream(lq, model.stages)]
    got = [read_rgb(frames / frame_name(i)) for i in range(14)]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert not list(tmp_path.glob(".*tmp*"))


def test_restore_refuses_bad_inputs_with_one_line(tmp_path, shared_video, ckpt):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    done = _uvssm("restore", str(junk), "-o", str(tmp_path / "o.mp4"), "--model", "votes-tiny", "--weights", str(ckpt))
    assert done.returncode == 2 and "junk.mp4" in done.stderr and "Traceback" not in done.stderr
    done = _uvssm("restore", str(shared_video), "-o", str(tmp_path / "o.mp4"), "--model", "votes-tiny",
                  "--weights", str(tmp_path / "missing.pt"))
    assert done.returncode == 2 and "missing.pt" in done.stderr and "not found" in done.stderr
    done = _uvssm("restore", str(shared_video), "-o", str(shared_video), "--model", "votes-tiny", "--weights", str(ckpt))
    assert done.returncode == 2 and "overwrite the input" in done.stderr
    assert not (tmp_path / "o.mp4").exists()
