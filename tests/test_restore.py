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
from uvssm.base.decode import rgb_frames
from uvssm.base.ffmpeg import run
from uvssm.base.frames import frame_name, read_rgb
from uvssm.base.probe import probe


@pytest.fixture(scope="module")
def shared_video(tmp_path_factory, ffmpeg):
    """A 'shared' clip with an odd size and an audio track: 14 frames of 202x114 at 25 fps."""
    path = tmp_path_factory.mktemp("shared") / "shared.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=202x114:r=25", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                 "-frames:v", "14", "-c:v", "libx264", "-crf", "30", "-pix_fmt", "yuv420p", "-threads", "1",
                 "-c:a", "aac", "-shortest", str(path)], context="test video")
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


def test_restore_refuses_bad_inputs_with_one_line(tmp_path, shared_video, ckpt, ffmpeg):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    done = _uvssm("restore", str(junk), "-o", str(tmp_path / "o.mp4"), "--model", "votes-tiny", "--weights", str(ckpt))
    assert done.returncode == 2 and "junk.mp4" in done.stderr and "Traceback" not in done.stderr
    done = _uvssm("restore", str(shared_video), "-o", str(tmp_path / "o.mp4"), "--model", "votes-tiny",
                  "--weights", str(tmp_path / "missing.pt"))
    assert done.returncode == 2 and "missing.pt" in done.stderr and "not found" in done.stderr
    done = _uvssm("restore", str(shared_video), "-o", str(shared_video), "--model", "votes-tiny", "--weights", str(ckpt))
    assert done.returncode == 2 and "overwrite the input" in done.stderr
    short = tmp_path / "short.mp4"
    run(ffmpeg, ["-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "3", "-c:v", "libx264", str(short)],
        context="short video")
    done = _uvssm("restore", str(short), "-o", str(tmp_path / "o.mp4"), "--model", "votes-tiny", "--weights", str(ckpt))
    assert done.returncode == 2 and "short.mp4: 3 frame(s)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.mp4").exists()


CHART = np.array([[200, 60, 30], [30, 160, 60], [40, 70, 200], [235, 220, 40], [20, 20, 20], [128, 128, 128],
                  [240, 240, 240], [180, 40, 160], [60, 190, 200], [120, 80, 40], [250, 130, 20], [90, 30, 120]],
                 dtype=np.uint8)


def _chart_frame(width: int, height: int) -> np.ndarray:
    """A 4x3 chart of flat patches."""
    img = np.zeros((height, width, 3), np.uint8)
    pw, ph = width // 4, height // 3
    for k, rgb in enumerate(CHART):
        r, c = divmod(k, 4)
        img[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = rgb
    return img


def _patch_means(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    pw, ph = w // 4, h // 3
    return np.array([img[r * ph + ph // 4:(r + 1) * ph - ph // 4, c * pw + pw // 4:(c + 1) * pw - pw // 4]
                     .reshape(-1, 3).mean(axis=0) for r, c in (divmod(k, 4) for k in range(len(CHART)))])


@pytest.mark.parametrize("tags,size", [
    ([], (640, 360)),  # ffmpeg's default conversion: BT.601, untagged; the 1280x720 output must be BT.709, and say so
    (["-vf", "scale=out_color_matrix=bt601:out_range=tv,format=yuv420p", "-colorspace", "smpte170m",
      "-color_range", "tv", "-color_primaries", "smpte170m", "-color_trc", "smpte170m"], (320, 180)),  # tags kept
])
def test_restore_keeps_the_colours_of_a_chart(tmp_path, ffmpeg, tags, size):
    """A chart through `restore` with a model that returns its (upsampled) input: every patch
    decoded by a plain ffmpeg command within ±2 of the chart. The decode leaves the matrix to
    swscale's `auto` (the file's own tags) and asks for accurate rounding: swscale's default fast
    path alone is off by up to 3 on a direct RGB → yuv420p → RGB round trip of this chart."""
    chart = _chart_frame(*size)
    src = tmp_path / "chart.mp4"
    encode = subprocess.run([ffmpeg.path, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
                             "-r", "25", "-i", "-", *tags, "-pix_fmt", "yuv420p", "-c:v", "libx264", "-qp", "0",
                             "-y", str(src)],
                            input=chart.tobytes() * 5, capture_output=True)
    assert encode.returncode == 0, encode.stderr
    model = create_model("votes-tiny", 2)
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
    ckpt = tmp_path / "identity.pt"
    checkpoint.save(ckpt, model, {"model": "votes-tiny", "scale": 2, "model_kwargs": model_kwargs("votes-tiny", 2)})
    out = tmp_path / "restored.mp4"
    done = _uvssm("restore", str(src), "-o", str(out), "--model", "votes-tiny", "--weights", str(ckpt), "--device", "cpu",
                  "--preset", "ultrafast")
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info.width, info.height) == (2 * size[0], 2 * size[1])
    tagged = probe(src).color_matrix
    assert (tagged == "unknown") == (not tags)
    assert info.color_matrix == ("bt709" if not tags else tagged) and info.color_range == "tv"
    decoded = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(out), "-frames:v", "1", "-vf",
                              "scale=out_range=pc:flags=accurate_rnd+full_chroma_int,format=rgb24",
                              "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    got = _patch_means(np.frombuffer(decoded, np.uint8).reshape(2 * size[1], 2 * size[0], 3).astype(np.float64))
    assert np.abs(got - CHART).max() <= 2, np.round(got - CHART, 1)


def test_restore_saves_the_inputs_qp_maps_and_refuses_them_for_other_codecs(tmp_path, ckpt, ffmpeg):
    """--qp-map: the input's bitstream QPs beside the output. The expected QP is the one the plain
    x264 command below fixes (adaptive quantisation and the I/B offsets off)."""
    from uvssm.base import qpmaps

    src = tmp_path / "cqp.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "6",
                    "-c:v", "libx264", "-qp", "33", "-x264-params", "aq-mode=0:ipratio=1.0:pbratio=1.0",
                    "-threads", "1", "-pix_fmt", "yuv420p", str(src)], check=True)
    out = tmp_path / "restored.mp4"
    done = _uvssm("restore", str(src), "-o", str(out), "--model", "votes-tiny", "--weights", str(ckpt),
                  "--device", "cpu", "--qp-map")
    assert done.returncode == 0, done.stderr
    maps = qpmaps.load(tmp_path / "restored.src.qp.npz")
    assert maps.qp.shape == (6, 4, 6) and (maps.qp == 33).all()

    mpeg4 = tmp_path / "mpeg4.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "6",
                    "-c:v", "mpeg4", str(mpeg4)], check=True)
    done = _uvssm("restore", str(mpeg4), "-o", str(tmp_path / "m.mp4"), "--model", "votes-tiny", "--weights",
                  str(ckpt), "--device", "cpu", "--qp-map")
    assert done.returncode != 0 and not (tmp_path / "m.mp4").exists()
    assert done.stderr.strip().splitlines()[-1].endswith("QP maps need H.264, this stream is mpeg4")
