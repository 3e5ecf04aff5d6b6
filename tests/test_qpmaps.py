"""QP maps from the H.264 bitstream. Expected values come from x264 options written here and x264's
documented rate factors (QP_I = QP_P − 6·log2(ipratio), QP_B = QP_P + 6·log2(pbratio), rounded), and
from ffmpeg's own `framecrc` packet listing, not from uvssm."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from uvssm.base import qpmaps
from uvssm.base.errors import UvssmError


def _encode(ffmpeg, path, x264_params: str, qp: int = 30, frames: int = 12, size: str = "200x120", extra=()):
    subprocess.run([ffmpeg.path, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25",
                    "-frames:v", str(frames), "-c:v", "libx264", "-qp", str(qp), "-x264-params", x264_params,
                    "-threads", "1", *extra, "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_fixed_quantiser_without_aq_reads_that_qp_in_every_macroblock(tmp_path, ffmpeg):
    video = _encode(ffmpeg, tmp_path / "cqp.mp4", "aq-mode=0:ipratio=1.0:pbratio=1.0")
    maps = qpmaps.read_qp_maps(video)
    assert maps.qp.shape == (12, math.ceil(120 / 16), math.ceil(200 / 16))  # 120 rows: the encoder pads to 128
    assert (maps.qp == 30).all()


def test_frame_type_offsets_are_x264s_documented_ratios(tmp_path, ffmpeg):
    """--ipratio 1.4 and --pbratio 1.3 (x264's defaults, written out); b-pyramid off so every B frame
    is a non-reference B that gets the full pbratio."""
    video = _encode(ffmpeg, tmp_path / "ratios.mp4", "aq-mode=0:ipratio=1.4:pbratio=1.3:b-pyramid=none:bframes=2",
                    qp=30, frames=15)
    maps = qpmaps.read_qp_maps(video)
    expected = {"I": round(30 - 6 * math.log2(1.4)), "P": 30, "B": round(30 + 6 * math.log2(1.3))}
    assert expected == {"I": 27, "P": 30, "B": 32}  # worked by hand: 27.09, 32.27
    seen = set()
    for kind, frame_map in zip(maps.pict_type, maps.qp):
        assert (frame_map == expected[kind]).all(), kind
        seen.add(kind)
    assert seen == {"I", "P", "B"}


def test_types_sizes_and_keyframes_match_ffmpegs_packet_listing(tmp_path, ffmpeg):
    video = _encode(ffmpeg, tmp_path / "crf.mp4", "keyint=5", frames=14)
    maps = qpmaps.read_qp_maps(video)
    # framecrc: "stream, dts, pts, duration, size, crc" per packet, in decode order
    lines = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(video), "-map", "0:v", "-c", "copy", "-f", "framecrc",
                            "-"], capture_output=True, text=True, check=True).stdout.splitlines()
    packets = [[f.strip() for f in line.split(",")] for line in lines if line and not line.startswith("#")]
    assert maps.packet_bytes.tolist() == [int(p[4]) for p in sorted(packets, key=lambda p: int(p[2]))]
    # picture types and key flags as ffmpeg's showinfo filter prints them, in display order
    log = subprocess.run([ffmpeg.path, "-v", "info", "-i", str(video), "-vf", "showinfo", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    shown = [line for line in log.splitlines() if "Parsed_showinfo" in line and " type:" in line]
    assert maps.pict_type.tolist() == [line.split(" type:")[1].split()[0] for line in shown]
    assert maps.keyframe.tolist() == [" iskey:1 " in line for line in shown]
    assert maps.keyframe[[0, 5, 10]].all() and maps.keyframe.sum() == 3


def test_reading_maps_frees_each_decoded_frame_without_a_garbage_collection(tmp_path, ffmpeg):
    """PyAV's `frame.side_data` caches its container on the frame, a reference cycle that keeps every
    decoded frame alive until a full collection (and made the decode ~20% slower)."""
    import gc

    import av

    video = _encode(ffmpeg, tmp_path / "v.mp4", "aq-mode=0", frames=20)

    def live_frames() -> int:
        return sum(type(o) is av.VideoFrame for o in gc.get_objects())

    gc.collect()
    before = live_frames()
    gc.disable()
    try:
        maps = qpmaps.read_qp_maps(video)
        after = live_frames()
    finally:
        gc.enable()
    assert len(maps.qp) == 20 and after == before


def test_save_load_round_trip_and_frames_limit(tmp_path, ffmpeg):
    video = _encode(ffmpeg, tmp_path / "a.mp4", "aq-mode=1", frames=6)
    maps = qpmaps.read_qp_maps(video, frames=4)
    assert len(maps) == 4
    back = qpmaps.load(qpmaps.save(maps, tmp_path / "a.qp.npz"))
    assert np.array_equal(back.qp, maps.qp) and back.qp.dtype == np.uint8
    assert back.pict_type.tolist() == maps.pict_type.tolist() and back.crop == (0, 0, 200, 120)


def test_non_h264_and_broken_files_are_one_line_errors(tmp_path, ffmpeg):
    mpeg4 = tmp_path / "m.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25", "-frames:v", "2",
                    "-c:v", "mpeg4", str(mpeg4)], check=True)
    with pytest.raises(UvssmError, match=r"m\.mp4: QP maps need H\.264, this stream is mpeg4"):
        qpmaps.read_qp_maps(mpeg4)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(UvssmError, match=r"junk\.mp4: cannot open video"):
        qpmaps.read_qp_maps(junk)


def test_to_macroblocks_places_a_crop_on_the_grid():
    maps = qpmaps.QPMaps(np.zeros((1, 3, 4), np.uint8), np.array(["I"]), np.array([1]), np.array([True]),
                         crop=(16, 8, 32, 24))
    values = np.arange(24 * 32, dtype=np.float64).reshape(24, 32)
    blocks = qpmaps.to_macroblocks(values, maps)
    # the crop starts half-way down macroblock row 0, at column 1: row 0 covers values rows 0..7
    assert np.isnan(blocks[0, 0]) and np.isnan(blocks[:, 3]).all()
    assert blocks[0, 1] == pytest.approx(values[0:8, 0:16].mean())
    assert blocks[1, 2] == pytest.approx(values[8:24, 16:32].mean())


def test_synth_reds_stores_each_clips_maps_with_the_recipes_qps(tiny_reds):
    """The recipe is -qp 28 with x264's defaults (no AQ under CQP): I = round(28 − 2.91) = 25, P = 28,
    B = round(28 + 2.27) = 30, and a b-pyramid reference B between P and B (29)."""
    manifest = pd.read_parquet(tiny_reds / "LQ_qp28_x2" / "manifest.parquet")
    allowed = {"I": {25.0}, "P": {28.0}, "B": {29.0, 30.0}}
    for row in manifest.itertuples():
        assert row.mean_qp in allowed[row.pict_type], (row.clip, row.frame, row.pict_type, row.mean_qp)
    for clip, group in manifest.groupby("clip"):
        maps = qpmaps.load(tiny_reds / "LQ_qp28_x2" / f"{clip}.qp.npz")
        assert maps.qp.shape == (len(group), 112 // 16, 192 // 16)
        assert maps.packet_bytes.tolist() == group["packet_bytes"].tolist()
        assert qpmaps.maps_for_frames(tiny_reds / "LQ_qp28_x2" / clip) == tiny_reds / "LQ_qp28_x2" / f"{clip}.qp.npz"


def test_dfm_qp_correlations_by_hand():
    from benchmarks.dfm_qp import BlockMaps, block_maps, rank_correlations

    qp = np.array([[20, 25], [30, 35]], dtype=np.float64)
    frames = [BlockMaps(dfm=qp / 50, qp=qp, error=-qp), BlockMaps(dfm=np.full((2, 2), np.nan), qp=qp, error=qp)]
    r = rank_correlations(frames)  # the second frame has no DFM: left out
    assert (r["rho_dfm_qp"], r["rho_dfm_error"], r["rho_qp_error"]) == (1.0, -1.0, -1.0)
    assert r["macroblocks"] == 4 and r["frames"] == 2 and (r["qp_min"], r["qp_max"]) == (20, 35)
    assert np.isnan(rank_correlations([BlockMaps(qp / 50, np.full((2, 2), 28.0), qp)])["rho_dfm_qp"])

    # one 32x32 LQ frame = 2x2 macroblocks; x2 outputs whose error is 1 grey level in Y (by hand: 219/255 per
    # RGB step of 1 in all channels, Y = 16 + 219/255 * value for grey)
    maps = qpmaps.QPMaps(np.array([[[20, 21], [22, 23]]], np.uint8), np.array(["I"]), np.array([1]),
                         np.array([True]), crop=(0, 0, 32, 32))
    dfm = np.zeros((32, 32))
    dfm[:16, 16:] = 1.0
    gt = np.full((64, 64, 3), 100, np.uint8)
    out = gt.copy()
    out[32:, :32] += 1
    b = block_maps(dfm, out, gt, maps, 0, 2)
    assert b.dfm.tolist() == [[0.0, 1.0], [0.0, 0.0]] and b.qp.tolist() == [[20, 21], [22, 23]]
    assert b.error[1, 0] == pytest.approx(219 / 255) and b.error[0, 0] == 0 and b.error[1, 1] == 0
