"""`uvssm restore` and its inputs: a truncated video fails before the model runs, naming the frame; no
temporary file survives a failure, Ctrl-C or SIGTERM; the output carries all four colour tags of the input.

Expected values come from outside restore: the frame where a cut falls from the intact file's packet
positions, the colour tags from ffprobe (or, where only ffmpeg is installed, its stream line)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import av
import pytest

from uvssm.base.errors import UvssmError
from uvssm.base.ffmpeg import run


@pytest.fixture(scope="module")
def intact(tmp_path_factory, ffmpeg):
    """30 noisy frames of 64x48, no B-frames (frame k is packet k), the index at the front (as shares are)."""
    path = tmp_path_factory.mktemp("intact") / "intact.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25,noise=alls=30:allf=t", "-frames:v", "30",
                 "-c:v", "libx264", "-crf", "10", "-bf", "0", "-threads", "1", "-pix_fmt", "yuv420p",
                 "-movflags", "+faststart", str(path)], context="test video")
    return path


def _uvssm(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "uvssm", *args], capture_output=True, text=True, **kwargs)


def _restore_args(src, out, ckpt):
    return ["restore", str(src), "-o", str(out), "--model", "votes-tiny", "--weights", str(ckpt), "--device", "cpu",
            "--preset", "ultrafast"]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if "tmp" in p.name)


@pytest.mark.parametrize("where", ["inside", "after"])
def test_a_truncated_video_fails_before_the_model_naming_the_frame(tmp_path, intact, ckpt, where):
    """Cut inside frame 12 (decoding fails there) or just after it (the file holds 12 of the 30 frames its
    index lists): exit 2, one line naming the file and the frame, the model never started, nothing written."""
    with av.open(str(intact)) as container:  # where each frame's bytes lie in the intact file
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    assert len(packets) == 30
    pos, size = packets[12]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(intact.read_bytes()[:pos + size // 2 if where == "inside" else pos])
    out = tmp_path / "r.mp4"
    started = time.monotonic()
    done = _uvssm(*_restore_args(cut, out, ckpt))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    want = ("decoding failed at frame 12" if where == "inside"
            else "decoding stops at frame 12: the file holds 12 of the 30 frames")
    assert lines[0].startswith(f"error: {cut}: {want}"), lines[0]
    assert "→" not in done.stdout  # the restore never started (its first line names the sizes)
    assert time.monotonic() - started < 120
    assert not out.exists() and _leftovers(tmp_path) == []


def _tags(ffmpeg, path) -> dict[str, str]:
    """The stream's colour tags as ffprobe reports them; without ffprobe, from ffmpeg's stream line
    ("yuv420p(tv, bt709, progressive)" when the three agree, else "matrix/primaries/transfer")."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        entries = "stream=color_range,color_space,color_primaries,color_transfer"
        out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", entries,
                              "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
        s = json.loads(out)["streams"][0]
        return {"range": s.get("color_range"), "matrix": s.get("color_space"),
                "primaries": s.get("color_primaries"), "transfer": s.get("color_transfer")}
    log = subprocess.run([ffmpeg.path, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    match = re.search(r"Video: .*?\(([a-z]+), ([\w-]+)(?:/([\w-]+)/([\w-]+))?[,)]", log)
    assert match, log
    rng, matrix, primaries, transfer = match.groups()
    return {"range": rng, "matrix": matrix, "primaries": primaries or matrix, "transfer": transfer or matrix}


@pytest.mark.parametrize("convert,tags", [
    ("scale=out_color_matrix=bt709:out_range=tv",
     {"matrix": "bt709", "primaries": "bt709", "transfer": "bt709", "range": "tv"}),
    ("scale=out_color_matrix=bt601:out_range=pc",  # SD, full range, the three tags all different
     {"matrix": "smpte170m", "primaries": "bt470bg", "transfer": "bt470bg", "range": "pc"}),  # gamma 2.8
])
def test_the_output_carries_the_inputs_four_colour_tags(tmp_path, ffmpeg, ckpt, convert, tags):
    src = tmp_path / "tagged.mp4"
    setparams = (f"setparams=colorspace={tags['matrix']}:color_primaries={tags['primaries']}:"
                 f"color_trc={tags['transfer']}:range={tags['range']}")
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "5", "-vf",
                 f"{convert},format=yuv420p,{setparams}", "-c:v", "libx264", "-threads", "1", str(src)],
        context="tagged video")
    assert _tags(ffmpeg, src) == tags  # the plain command tagged the input as asked
    out = tmp_path / "restored.mp4"
    done = _uvssm(*_restore_args(src, out, ckpt))
    assert done.returncode == 0, done.stderr
    assert _tags(ffmpeg, out) == tags


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_restore_leaves_no_temporary_file(tmp_path, ffmpeg, ckpt, sig, code):
    """SIGTERM (a cluster's time limit, `kill`) and Ctrl-C while frames are being written: the encoder's
    half-written file is gone, no output appears."""
    src = tmp_path / "long.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "400", "-c:v", "libx264",
                 "-threads", "1", str(src)], context="long video")
    out = tmp_path / "r.mp4"
    # Ctrl-C as in a terminal: a job started in the background (`cmd &`, nohup) inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "uvssm", *_restore_args(src, out, ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    tmp = tmp_path / ".r.mp4.tmp.mp4"
    deadline = time.monotonic() + 300
    while not tmp.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tmp.exists(), "the encoder never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert _leftovers(tmp_path) == [] and not out.exists()
    assert proc.returncode == code, err


def test_a_failure_mid_run_leaves_no_temporary_file(tmp_path, ffmpeg, ckpt, intact):
    from uvssm.base.progress import RestoreFrame
    from uvssm.pipelines.restore import RestoreOptions, restore_video

    def fail_on_the_second_frame(event):
        if isinstance(event, RestoreFrame) and event.index == 2:
            assert (tmp_path / ".r.mp4.tmp.mp4").exists()
            raise UvssmError("disk full (planted)")

    with pytest.raises(UvssmError, match="planted"):
        restore_video(intact, tmp_path / "r.mp4", ffmpeg,
                      RestoreOptions("votes-tiny", [f"votes-tiny={ckpt}"], preset="ultrafast"),
                      fail_on_the_second_frame)
    assert _leftovers(tmp_path) == [] and not (tmp_path / "r.mp4").exists()
