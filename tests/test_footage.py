"""The synthetic footage of tests/footage.py and its place in the share corpus (tests/shares.py).

Small, short versions of the corpus's synthetic originals: the same seed gives the same bytes, every
decoded frame hashes distinctly (so a share's hash truth names one original frame per LQ frame), the
camera moves by the spec's numbers (measured here with skimage, independently of uvssm's aligner),
and the corpus draws from every kind of footage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import footage, shares

SMALL = (320, 180)


def _small(spec: footage.Spec, seconds: float = 2.0) -> footage.Spec:
    w, h = spec.size
    return footage.scaled(spec, (SMALL[1] * w // h // 2 * 2, SMALL[1]), seconds)


def _spec(kind: str) -> footage.Spec:
    return next(s for s in footage.SPECS if s.kind == kind)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _gray(ffmpeg, path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every decoded frame as 8-bit luma, (n, h, w) float."""
    raw = subprocess.run([ffmpeg.path, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode",
                          "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True,
                         check=True).stdout
    w, h = size
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w).astype(np.float64)


def _best(a: np.ndarray, b: np.ndarray, inverse, candidates) -> float:
    """The candidate p for which `a` warped by `inverse(p)` (output (x, y) -> input (x, y)) fits `b`
    best on the middle half of the frame."""
    from skimage.transform import warp

    h, w = b.shape
    inner = (slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))
    errors = [np.mean((warp(a, inverse(p), order=1, preserve_range=True)[inner] - b[inner]) ** 2) for p in candidates]
    return float(candidates[int(np.argmin(errors))])


def test_the_corpus_footage_covers_every_kind_at_share_sizes():
    assert sorted(s.kind for s in footage.SPECS) == sorted(footage.KINDS)
    assert len({s.name for s in footage.SPECS}) == len(footage.SPECS)
    for s in footage.SPECS:
        assert s.size[0] % 2 == 0 and s.size[1] % 2 == 0 and s.size[1] >= 360, s
        assert s.rate in ("24", "25", "30000/1001") and 4.0 <= s.seconds <= 8.0, s
        assert all(shot.photo in footage.PHOTOS + (footage.WALL,) for shot in s.shots), s
    still = _spec("still-stretch").shots[0].holds
    assert still and all(1.0 <= b - a <= 3.0 for a, b in still), still
    assert len({shot.photo for shot in _spec("cut").shots}) == 2


def test_the_same_seed_gives_the_same_bytes(ffmpeg, tmp_path):
    for kind in ("shake", "plain-wall"):  # a seeded path and noise; a seeded wall, objects and noise
        spec = _small(_spec(kind), 1.0)
        a = footage.make(ffmpeg.path, spec, tmp_path / "a")
        b = footage.make(ffmpeg, spec, tmp_path / "b")
        assert a.name == b.name and _sha(a) == _sha(b), kind
        other = footage.make(ffmpeg.path, dataclasses.replace(spec, seed=spec.seed + 1), tmp_path / "a")
        assert other != a and _sha(other) != _sha(a), kind
    mtime = a.stat().st_mtime_ns
    assert footage.make(ffmpeg.path, spec, tmp_path / "a") == a and a.stat().st_mtime_ns == mtime  # reused
    assert len(list((tmp_path / "a").iterdir())) == 4  # two kinds, two seeds; no temporary file left


@pytest.mark.parametrize("name", [s.name for s in footage.SPECS])
def test_every_frame_hashes_distinctly(ffmpeg, tmp_path, name):
    """A plain framemd5 of the encoded original: one line per rendered frame, all distinct (held
    stills too: their seeded noise), so each share frame's truth is a single original frame."""
    spec = _small(next(s for s in footage.SPECS if s.name == name))
    path = footage.make(ffmpeg.path, spec, tmp_path)
    hashes = shares.framemd5(ffmpeg.path, path)
    assert len(hashes) == spec.frames == round(2.0 * spec.fps)
    assert len(set(hashes)) == len(hashes), f"{len(hashes) - len(set(hashes))} repeated frames"


def test_a_hold_holds_the_picture_but_not_the_noise():
    spec = _small(_spec("still-stretch"))
    quiet = [f.astype(int) for f in footage.render(dataclasses.replace(spec, noise=0.0))]
    noisy = list(footage.render(spec))
    held = np.zeros(len(quiet), bool)
    for a, b in spec.shots[0].holds:
        held[round(a * spec.fps):round(b * spec.fps)] = True
    assert 0 < held.sum() < len(held) - 10
    for j in range(1, len(quiet)):
        same = np.array_equal(quiet[j], quiet[j - 1])
        assert same == held[j], (j, held[j])
        assert not np.array_equal(noisy[j], noisy[j - 1]), j


@pytest.mark.parametrize("zoom", [0.004, -0.003])
def test_a_zoom_magnifies_by_its_rate(ffmpeg, tmp_path, zoom):
    """Frame N shows frame 0 magnified (1 + zoom)^N about the centre."""
    spec = footage.Spec("zoom", "zoom-in" if zoom > 0 else "zoom-out", SMALL, "25",
                        (footage.Shot("astronaut", 2.0, zoom=zoom),), seed=5)
    frames = _gray(ffmpeg, footage.make(ffmpeg.path, spec, tmp_path), SMALL)
    n = len(frames) - 1
    expected = (1 + zoom) ** n  # 1.004^49 = 1.216; 0.997^49 = 0.863
    c = (np.array(SMALL) - 1) / 2

    def inverse(m):
        return lambda xy: c + (xy - c) / m

    coarse = _best(frames[0], frames[n], inverse, np.arange(0.7, 1.45, 0.01))
    fine = _best(frames[0], frames[n], inverse, np.arange(coarse - 0.01, coarse + 0.01, 0.0005))
    assert abs(fine / expected - 1) < 0.005, (fine, expected)


def test_a_roll_turns_by_its_rate(ffmpeg, tmp_path):
    spec = footage.Spec("roll", "rotate", SMALL, "25", (footage.Shot("astronaut", 2.0, turn=0.15),), seed=5)
    frames = _gray(ffmpeg, footage.make(ffmpeg.path, spec, tmp_path), SMALL)
    n = len(frames) - 1
    expected = np.radians(0.15 * n)  # frame N at output (x, y) shows frame 0 at centre + R(angle) (x, y)
    c = (np.array(SMALL) - 1) / 2

    def inverse(angle):
        r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return lambda xy: c + (xy - c) @ r.T

    found = _best(frames[0], frames[n], inverse, np.radians(np.arange(-12, 12, 0.05)))
    assert abs(found - expected) < np.radians(0.1), (np.degrees(found), np.degrees(expected))


def test_a_pan_moves_by_its_speed(ffmpeg, tmp_path):
    from skimage.registration import phase_cross_correlation

    spec = footage.Spec("pan", "pan", SMALL, "25", (footage.Shot("coffee", 1.0, pan=(2.0, -0.5)),), seed=5)
    frames = _gray(ffmpeg, footage.make(ffmpeg.path, spec, tmp_path), SMALL)
    n = len(frames) - 1
    # the camera moves (2, -0.5) px per frame: frame N at (x, y) shows frame 0 at (x + 2N, y - 0.5N)
    shift, _, _ = phase_cross_correlation(frames[0], frames[n], upsample_factor=10)
    assert np.abs(shift - [-0.5 * n, 2.0 * n]).max() < 0.3, (shift, n)


def test_the_corpus_draws_every_kind_of_footage(ffmpeg, tmp_path):
    origs = shares.originals(ffmpeg.path, tmp_path)
    for spec in footage.SPECS:
        o = origs[spec.name]
        assert (o.size, o.rate, o.kind) == (spec.size, spec.fps, spec.kind)
        assert abs(o.duration - spec.seconds) < 0.05
        assert not o.path.exists()  # rendered on first use, by make
    drawn = shares.corpus(origs, seed=123, n=64)
    assert drawn == shares.corpus(origs, seed=123, n=64)
    assert len(drawn) >= 60 and len({s.original for s in drawn}) >= 4
    assert len({s.name for s in drawn}) == len(drawn)
    kinds = {s.classes[0] for s in drawn}
    assert set(footage.KINDS) <= kinds, set(footage.KINDS) - kinds
    if "bikes" in origs:
        assert "real" in kinds
    wall = [s for s in drawn if origs[s.original].kind == "plain-wall"]
    boxed = [s for s in wall if "pillarbox" in s.classes]
    assert boxed, [s.classes for s in wall]
    for s in boxed:  # a 4:3 picture between black side bars of a 16:9 share frame
        pw, ph, fw, fh = map(int, re.match(r"scale=(\d+):(\d+),pad=(\d+):(\d+):", s.generations[0].spatial).groups())
        assert (fw, fh) in ((960, 540), (854, 480), (640, 360)) and ph == fh and abs(pw / ph - 4 / 3) < 0.01
    for s in drawn:  # realistic sizes: a synthetic original scaled to 360p..540p
        m = re.match(r"scale=(\d+):(\d+)(:|$)", s.generations[0].spatial)
        if m and origs[s.original].kind != "real":
            assert 360 <= int(m.group(2)) <= 542, (s.name, s.generations[0].spatial)
    # without the footage: the real clips' draw as it was
    assert all(s.classes[0] == "real" for s in shares.corpus(origs, seed=0, n=48, synthetic=False))
