"""`synth-reds` on real tiny clips, through the real ffmpeg/libx264."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from degrade.recipe import X264Recipe
from tests.conftest import make_clip
from uvssm.base.frames import FRAME_PATTERN, read_rgb
from uvssm.pipelines.synth import SynthOptions, synth_reds


def _pixels(folder: Path) -> list[np.ndarray]:
    return [read_rgb(p) for p in sorted(folder.glob("*.png"))]


def test_layout_manifest_and_hashes(clips, tmp_path, ffmpeg):
    out = tmp_path / "out"
    report = synth_reds(clips, out, ffmpeg, SynthOptions(qps=(28, 33), scales=(2, 4), jobs=2))
    assert report.ok and report.layout == "clip-folders"
    assert [u.name for u in report.units] == ["LQ_qp28_x2", "LQ_qp33_x2", "LQ_qp28_x4", "LQ_qp33_x4"]
    assert (out / "HQ" / "000").is_symlink()
    m = pd.read_parquet(out / "LQ_qp28_x4" / "manifest.parquet")
    assert len(m) == 24 and set(m["clip"]) == {"000", "001", "240"}
    assert dict(zip(m["clip"], m["split"])) == {"000": "val", "001": "train", "240": "test"}
    assert set(m["pict_type"]) <= {"I", "P", "B"} and m.loc[m["frame"] == 0, "pict_type"].eq("I").all()
    assert (m["packet_bytes"] > 0).all()
    for row in m.itertuples():  # the manifest's hash is the hash of the PNG's pixels
        rgb = read_rgb(out / row.lq_path)
        assert rgb.shape == (18, 32, 3)
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == row.sha256
    assert (out / "LQ_qp28_x4" / "000.mp4").exists()
    clips_table = pd.read_parquet(out / "LQ_qp28_x4" / "clips.parquet")
    assert (clips_table["bitrate_kbps"] > 0).all() and (clips_table["lq_width"] == 32).all()
    prov = json.loads((out / "LQ_qp28_x4" / "provenance.json").read_text())
    assert prov["recipe"]["x264_threads"] == 1 and prov["recipe"]["qp"] == 28
    assert prov["x264"]["version"] == [ffmpeg.x264] and "qp=28" in prov["x264"]["options"][0]
    assert prov["tools"]["ffmpeg"]["version"] == ffmpeg.version
    assert "-threads 1" in prov["commands"]["per_clip"]
    # lower QP spends more bits
    b28 = pd.read_parquet(out / "LQ_qp28_x2" / "clips.parquet")["bitrate_kbps"]
    b33 = pd.read_parquet(out / "LQ_qp33_x2" / "clips.parquet")["bitrate_kbps"]
    assert (b28.values > b33.values).all()


def test_frames_equal_the_pinned_two_command_recipe_for_every_setting_of_one_run(clips, tmp_path, ffmpeg):
    """All four settings come from one ffmpeg per clip; each equals its own two-command run."""
    out = tmp_path / "out"
    assert synth_reds(clips, out, ffmpeg, SynthOptions(qps=(28, 33), scales=(2, 4), jobs=2)).ok
    for qp, scale, size in ((28, 2, "64x36"), (33, 2, "64x36"), (28, 4, "32x18"), (33, 4, "32x18")):
        recipe = X264Recipe(qp=qp, scale=scale)
        for clip in ("000", "240"):
            ref = tmp_path / "ref" / recipe.setting / clip
            ref.mkdir(parents=True)
            encode, decode = recipe.official_commands(str(clips / clip / FRAME_PATTERN), size,
                                                      str(ref / "clip.mp4"), str(ref / FRAME_PATTERN))
            for args in (encode, decode):
                subprocess.run([ffmpeg.path, "-loglevel", "error", *args], check=True)
            ours, theirs = _pixels(out / f"LQ_{recipe.setting}" / clip), _pixels(ref)
            assert len(ours) == len(theirs) == 8
            for a, b in zip(ours, theirs):
                np.testing.assert_array_equal(a, b)
            # the .mp4 kept beside the frames is the recipe's, byte for byte
            assert (out / f"LQ_{recipe.setting}" / f"{clip}.mp4").read_bytes() == (ref / "clip.mp4").read_bytes()


def test_frame_metadata_equals_a_decode_of_the_mp4(clips, tmp_path, ffmpeg):
    """Picture types, packet sizes and keyframes come from the one run; PyAV reading the .mp4 in
    the test (demux for packets, decode for picture types) is the reference."""
    import av

    out = tmp_path / "out"
    make_clip(ffmpeg, clips / "002", seed=11, frames=60)  # long enough for P and B frames
    assert synth_reds(clips, out, ffmpeg, SynthOptions(qps=(28, 33), scales=(2,))).ok
    for unit in ("LQ_qp28_x2", "LQ_qp33_x2"):
        m = pd.read_parquet(out / unit / "manifest.parquet")
        for clip, rows in m.groupby("clip"):
            with av.open(str(out / unit / f"{clip}.mp4")) as container:
                stream = container.streams.video[0]
                packets, types = {}, {}
                for packet in container.demux(stream):
                    if packet.size:
                        packets[packet.pts] = (packet.size, bool(packet.is_keyframe))
                    for frame in packet.decode():
                        types[frame.pts] = {1: "I", 2: "P", 3: "B"}.get(int(frame.pict_type), "?")  # AVPictureType
            order = sorted(types)
            assert list(rows["pict_type"]) == [types[t] for t in order]
            assert list(rows["packet_bytes"]) == [packets[t][0] for t in order]
            assert list(rows["keyframe"]) == [packets[t][1] for t in order]
        assert {"I", "P", "B"} <= set(m["pict_type"])
        clips_table = pd.read_parquet(out / unit / "clips.parquet")
        for r in clips_table.itertuples():  # bitrate by hand: coded bytes * 8 / duration
            coded = m.loc[m["clip"] == r.clip, "packet_bytes"].sum()
            assert r.bitrate_kbps == pytest.approx(coded * 8 / (r.n_frames / 25) / 1000, abs=1e-3)


def test_each_clip_is_decoded_once_for_all_settings(clips, tmp_path, ffmpeg):
    """Four settings and clean LR: one ffmpeg per clip, reading the clip's PNGs once. The ffmpeg
    here is the real binary behind a shell script that logs its arguments."""
    from uvssm.base.ffmpeg import find_ffmpeg

    log = tmp_path / "calls.txt"
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {ffmpeg.path} "$@"\n')
    wrapper.chmod(0o755)
    logged = find_ffmpeg(wrapper)
    log.unlink()
    assert synth_reds(clips, tmp_path / "out", logged, SynthOptions(qps=(28, 33), scales=(2, 4), clean_lr=True)).ok
    calls = log.read_text().splitlines()
    for clip in ("000", "001", "240"):
        reading = [c for c in calls if str(clips / clip / FRAME_PATTERN) in c]
        assert len(reading) == 1 and reading[0].count(" -i ") == 1
    assert len(calls) == 3


def test_unpinned_threads_change_the_frames(clips, tmp_path, ffmpeg):
    """The defect the pin removes: x264's output depends on its thread count."""
    outs = []
    for threads in (1, 3):
        mp4 = tmp_path / f"t{threads}.mp4"
        subprocess.run([ffmpeg.path, "-loglevel", "error", "-f", "image2", "-i", str(clips / "001" / FRAME_PATTERN),
                        "-vcodec", "libx264", "-qp", "28", "-threads", str(threads), str(mp4)], check=True)
        outs.append(mp4.read_bytes())
    assert outs[0] != outs[1]


def test_byte_identical_manifests_for_any_jobs_and_output_folder(clips, tmp_path, ffmpeg):
    a = synth_reds(clips, tmp_path / "a", ffmpeg, SynthOptions(jobs=1))
    b = synth_reds(clips, tmp_path / "b", ffmpeg, SynthOptions(jobs=3))
    for name in ("manifest.parquet", "clips.parquet", "provenance.json"):
        assert (tmp_path / "a" / "LQ_qp28_x2" / name).read_bytes() == (tmp_path / "b" / "LQ_qp28_x2" / name).read_bytes()
    assert a.ok and b.ok


def test_clean_lr_is_what_the_encoder_received(clips, tmp_path, ffmpeg):
    """At QP 0 libx264 is lossless, so decoded frames must equal the clean frames exactly."""
    out = tmp_path / "out"
    report = synth_reds(clips, out, ffmpeg, SynthOptions(qps=(0, 28), scales=(2,), clean_lr=True))
    assert report.ok
    for a, b in zip(_pixels(out / "LQ_qp0_x2" / "001"), _pixels(out / "LR_clean_x2" / "001")):
        np.testing.assert_array_equal(a, b)
    differs = [not np.array_equal(a, b) for a, b in
               zip(_pixels(out / "LQ_qp28_x2" / "001"), _pixels(out / "LR_clean_x2" / "001"))]
    assert any(differs)
    clean = pd.read_parquet(out / "LR_clean_x2" / "manifest.parquet")
    lossless = pd.read_parquet(out / "LQ_qp0_x2" / "manifest.parquet")
    assert list(clean["sha256"]) == list(lossless["sha256"])


def test_clean_lr_equals_a_plain_scale_and_convert(clips, tmp_path, ffmpeg):
    """The clean frames are what `-r 25 -s -pix_fmt yuv420p` gives, converted to RGB by a plain
    decode, written here as two ffmpeg commands."""
    out = tmp_path / "out"
    assert synth_reds(clips, out, ffmpeg, SynthOptions(qps=(28,), scales=(2, 4), clean_lr=True)).ok
    for scale, size in ((2, "64x36"), (4, "32x18")):
        raw, ref = tmp_path / f"clean{scale}.yuv", tmp_path / f"ref{scale}"
        ref.mkdir()
        subprocess.run([ffmpeg.path, "-loglevel", "error", "-f", "image2", "-i", str(clips / "001" / FRAME_PATTERN),
                        "-r", "25", "-s", size, "-pix_fmt", "yuv420p", "-f", "rawvideo", str(raw)], check=True)
        subprocess.run([ffmpeg.path, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", size,
                        "-framerate", "25", "-i", str(raw), "-start_number", "0", str(ref / FRAME_PATTERN)], check=True)
        ours, theirs = _pixels(out / f"LR_clean_x{scale}" / "001"), _pixels(ref)
        assert len(ours) == len(theirs) == 8
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_release_layout_merges_val_as_240(tmp_path, clip_cache):
    root = tmp_path / "REDS"
    shutil.copytree(clip_cache / "000", root / "train_sharp" / "000")
    shutil.copytree(clip_cache / "001", root / "train_sharp" / "011")
    shutil.copytree(clip_cache / "240", root / "val" / "val_sharp" / "003")
    from uvssm.base.ffmpeg import find_ffmpeg

    report = synth_reds(root, tmp_path / "out", find_ffmpeg(), SynthOptions(hq_mode="copy"))
    assert report.layout == "reds-release" and report.clips == ["000", "011", "243"]
    assert report.split_counts == {"all": 3, "val": 2, "test": 1}
    assert any("267 of 270 REDS catalogue clips missing" in n for n in report.notes)
    assert any("clip 000: 8 frames, the REDS catalogue has 100" in n for n in report.notes)
    out = tmp_path / "out"
    assert (out / "HQ" / "243").is_dir() and not (out / "HQ" / "243").is_symlink()
    assert (out / "splits" / "val.txt").read_text() == "000\n011\n"
    assert (out / "splits" / "test.txt").read_text() == "243\n"
    assert (out / "meta_info" / "basicsr_val.txt").read_text() == "000 8 (72,128,3)\n011 8 (72,128,3)\n"
    assert (out / "meta_info" / "votes_test.txt").read_text() == "243 8\n"
    mm = (out / "meta_info" / "mmagic_test.txt").read_text().splitlines()
    assert mm[0] == "243/00000000.png (72, 128, 3)" and len(mm) == 8


def test_bad_clips_are_reported_and_the_rest_is_built(clips, tmp_path, ffmpeg):
    (clips / "001" / "00000002.png").write_bytes(b"not a png")
    make_clip(ffmpeg, clips / "002", seed=7, frames=3, size="130x72")  # 65x36: odd LQ width at x2
    report = synth_reds(clips, tmp_path / "out", ffmpeg, SynthOptions())
    assert not report.ok
    assert "001" in report.problems and "00000002.png" in report.problems["001"]
    assert "yuv420p needs even dimensions" in report.units[0].failed["002"]
    assert report.units[0].built == ["000", "240"]
    assert (tmp_path / "out" / "LQ_qp28_x2" / "000").is_dir()


def test_damaged_first_frame_fails_the_clip_without_hanging(clips, tmp_path, ffmpeg):
    """ffmpeg stops before it opens any output: the clip fails with the file named, the run ends."""
    path = clips / "001" / "00000000.png"
    data = bytearray(path.read_bytes())
    data[60:] = bytes(len(data) - 60)
    path.write_bytes(bytes(data))
    report = synth_reds(clips, tmp_path / "out", ffmpeg, SynthOptions(qps=(28, 33), clean_lr=True))
    for unit in report.units:
        assert "00000000.png" in unit.failed["001"] and unit.built == ["000", "240"]


def test_corrupt_png_body_is_named(clips, tmp_path, ffmpeg):
    """A PNG whose header is fine but whose data is damaged fails in ffmpeg; the error names it."""
    path = clips / "240" / "00000006.png"
    data = bytearray(path.read_bytes())
    data[60:200] = bytes(140)
    path.write_bytes(bytes(data))
    report = synth_reds(clips, tmp_path / "out", ffmpeg, SynthOptions())
    assert "00000006.png" in report.units[0].failed["240"]
    assert sorted(report.units[0].built) == ["000", "001"]


def test_missing_source_is_a_clear_error(tmp_path, ffmpeg):
    from uvssm.base.errors import UvssmError

    with pytest.raises(UvssmError, match="nope: source folder does not exist"):
        synth_reds(tmp_path / "nope", tmp_path / "out", ffmpeg)


def test_resume_skips_finished_clips_and_force_redoes_them(clips, tmp_path, ffmpeg):
    out = tmp_path / "out"
    synth_reds(clips, out, ffmpeg, SynthOptions(jobs=1))
    part = out / "LQ_qp28_x2" / ".parts" / "001.parquet"
    part.unlink()  # as if the run had been killed before clip 001 was marked done
    stamp = (out / "LQ_qp28_x2" / "000" / "00000000.png").stat().st_mtime_ns
    again = synth_reds(clips, out, ffmpeg, SynthOptions(jobs=1))
    assert again.units[0].built == ["001"] and sorted(again.units[0].skipped) == ["000", "240"]
    assert (out / "LQ_qp28_x2" / "000" / "00000000.png").stat().st_mtime_ns == stamp
    forced = synth_reds(clips, out, ffmpeg, SynthOptions(jobs=1, force=True))
    assert forced.units[0].built == ["000", "001", "240"]


def test_killed_run_resumes_to_the_same_result(tmp_path, clip_cache, ffmpeg):
    """Kill a real CLI run after its first finished clip; the re-run completes the rest and the
    result equals an uninterrupted run, and no clip marked done is ever incomplete."""
    src = tmp_path / "src"
    n_clips = 16  # enough that the run cannot finish between two polls
    for i in range(n_clips):
        make_clip(ffmpeg, src / f"{i:03d}", seed=i, frames=40, size="256x144")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "uvssm", "synth-reds", "--src", str(src), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "LQ_qp28_x2" / ".parts"
    deadline = time.time() + 120
    while time.time() < deadline and not (parts.is_dir() and any(parts.glob("*.parquet"))):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = sorted(p.stem for p in parts.glob("*.parquet"))
    assert 1 <= len(done) < n_clips
    for clip in done:  # everything marked done is complete
        assert len(list((out / "LQ_qp28_x2" / clip).glob("*.png"))) == 40
    resumed = subprocess.run(cmd, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not (out / "LQ_qp28_x2" / ".tmp").exists()
    fresh = tmp_path / "fresh"
    synth_reds(src, fresh, ffmpeg, SynthOptions(jobs=2))
    assert (out / "LQ_qp28_x2" / "manifest.parquet").read_bytes() == (fresh / "LQ_qp28_x2" / "manifest.parquet").read_bytes()


def test_write_failure_is_one_line_and_finished_clips_stay(clips, tmp_path, ffmpeg, clip_cache):
    """A disk that refuses writes (here: a 4 KiB file-size limit, which fails writes with EFBIG as
    a full disk fails them with ENOSPC) gives a one-line error naming the file and a non-zero exit."""
    out = tmp_path / "out"
    (clips / "001").rename(tmp_path / "held-back")
    synth_reds(clips, out, ffmpeg, SynthOptions())
    (tmp_path / "held-back").rename(clips / "001")
    before = sorted(p.name for p in (out / "LQ_qp28_x2" / "000").iterdir())

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = subprocess.run([sys.executable, "-m", "uvssm", "synth-reds", "--src", str(clips), "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=limit)
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line]
    assert errors and "Traceback" not in done.stderr
    assert any("001" in line or "manifest" in line or "cannot write" in line for line in errors)
    assert sorted(p.name for p in (out / "LQ_qp28_x2" / "000").iterdir()) == before
    assert os.path.exists(out / "LQ_qp28_x2" / ".parts" / "000.parquet")
