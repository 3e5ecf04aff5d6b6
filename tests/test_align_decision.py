"""The weighing of whole hypotheses (`uvssm.align.decision`, `uvssm.align.hypotheses`), on costs and
positions whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from uvssm.align.decision import CONFIDENCE, block_bootstrap, decide
from uvssm.align.hypotheses import Hypothesis, box_inside, common_region, rule_mapping, shifted


def test_block_bootstrap_worked_by_hand():
    assert block_bootstrap(np.ones(50), 5) == 1.0  # every resample's mean is 1 > 0
    assert block_bootstrap(-np.ones(50), 5) == 0.0
    assert block_bootstrap(np.zeros(50), 5) == 0.5  # ties count half
    assert block_bootstrap(np.array([]), 5) == 0.5
    # one block of 50: every circular resample holds every frame once, so its mean is the mean
    d = np.r_[np.full(30, 1.0), np.full(20, -1.0)]
    assert block_bootstrap(d, 50) == 1.0
    # blocks of one frame, 30 of 50 frames +1 and 20 −1: the resample mean is above 0 when more than 25
    # of 50 draws are +1 (p = 0.6): binomial P(X > 25) + ½ P(X = 25) for X ~ B(50, 0.6) = 0.9022 + ½·0.0405
    from math import comb
    exact = sum(comb(50, k) * 0.6**k * 0.4**(50 - k) for k in range(26, 51)) + 0.5 * comb(50, 25) * 0.6**25 * 0.4**25
    assert block_bootstrap(d, 1, resamples=20000) == pytest.approx(exact, abs=0.01)
    assert block_bootstrap(d, 1) == block_bootstrap(d, 1)  # seeded: the same share, the same decision


def _hyp(name, mapping, timing=None, geometry="fitted", box=(0.0, 0.0, 64.0, 36.0), bars=(0, 0, 0, 0)):
    return Hypothesis(name, np.asarray(mapping), box, bars, timing or name, geometry)


def test_decide_takes_the_cheapest_timing_and_rules_out_rivals_by_their_noise():
    n = 100
    rng = np.random.default_rng(1)
    base = np.arange(n)
    hyps = [_hyp("chosen", base), _hyp("1 frame later", base + 1), _hyp("1 frame earlier", base - 1 + (base == 0))]
    noise = rng.normal(0, 0.3, (3, n))
    costs = np.stack([np.full(n, 1.0), np.full(n, 1.5), np.full(n, 1.2)]) + noise
    v = decide(hyps, costs, block=10)
    assert v.chosen == 0 and v.decided and all(c.ruled_out for c in v.comparisons)
    # the costs the other way round: the rival wins (it is chosen, not merely refused)
    v = decide(hyps, costs[[1, 0, 2]], block=10)
    assert hyps[v.chosen].name == "1 frame later"
    # a rival as good as the chosen one within noise: a tie, not decided, and named as the runner-up
    tie = np.stack([np.full(n, 1.0), np.full(n, 1.0), np.full(n, 2.0)]) + noise
    v = decide(hyps, tie, block=10)
    assert not v.decided and v.runner_up.rival in {"chosen", "1 frame later"} and v.runner_up.confidence < CONFIDENCE


def test_a_rival_that_pairs_under_one_percent_differently_is_tolerated_not_refused():
    n = 200
    base = np.arange(n)
    rule = base.copy()
    rule[50] += 1  # one frame of 200 (0.5%) named differently, and content cannot tell there
    hyps = [_hyp("θ 0.50", base), _hyp("rounding up", rule)]
    costs = np.ones((2, n))
    v = decide(hyps, costs, block=10)
    c = v.comparisons[0]
    assert c.frames == 1 and c.differ == pytest.approx(0.005) and not c.ruled_out and c.tolerated and v.decided
    rule[60:63] += 1  # 4 frames (2%): more than a right pair may get wrong, so it must be ruled out
    v = decide([hyps[0], _hyp("rounding up", rule)], costs, block=10)
    assert not v.decided


def test_the_whole_picture_is_kept_unless_the_fitted_rectangle_is_surely_better():
    n = 100
    rng = np.random.default_rng(2)
    base = np.arange(n)
    hyps = [_hyp("chosen", base), _hyp("chosen, whole", base, timing="chosen", geometry="whole picture",
                                        box=(0.0, 0.0, 64.5, 36.0))]
    noisy = np.stack([np.full(n, 1.0), np.full(n, 1.0)]) + rng.normal(0, 0.2, (2, n))
    assert hyps[decide(hyps, noisy, block=10).chosen].geometry == "whole picture"
    better = np.stack([np.full(n, 1.0), np.full(n, 1.3)]) + rng.normal(0, 0.2, (2, n))
    assert hyps[decide(hyps, better, block=10).chosen].geometry == "fitted"


def test_rules_shifts_and_regions_worked_by_hand():
    # 25 → 20 fps: LQ frame j at HQ position 1.25 j = 0, 1.25, 2.5, 3.75, 5
    p = 1.25 * np.arange(5)
    assert rule_mapping(p, "nearest", 100).tolist() == [0, 1, 3, 4, 5]  # floor(p + 0.5)
    assert rule_mapping(p, "down", 100).tolist() == [0, 1, 2, 3, 5]
    assert rule_mapping(p, "up", 100).tolist() == [0, 2, 3, 4, 5]
    assert rule_mapping(np.array([1.9995, 3.0004]), "up", 100).tolist() == [2, 3]  # a millisecond clock's rounding
    assert shifted(np.array([0, 1, 2]), -1, 3).tolist() == [-1, 0, 1]
    assert shifted(np.array([0, 1, 2]), 1, 3).tolist() == [1, 2, -1]
    # a 100x50 LQ frame whose picture (bars 10 left and right) shows HQ box (0, 0, 160, 100): 2 HQ
    # pixels per LQ pixel; the region with 12-pixel side bars and a 1-pixel top bar shows 4 HQ pixels
    # less on each side and 2 less at the top
    assert box_inside((0.0, 0.0, 160.0, 100.0), (10, 0, 10, 0), (12, 1, 12, 0), (100, 50)) == (4.0, 2.0, 156.0, 100.0)
    a, b = _hyp("a", [0], bars=(10, 0, 10, 0)), _hyp("b", [0], bars=(12, 1, 8, 0))
    assert common_region([a, b]) == (12, 1, 10, 0)


def test_a_rectangle_cannot_stand_in_for_a_start_a_frame_away():
    """On a steady pan a start one frame later with its rectangle moved by one frame's pan fits about
    as well as the true start with the whole picture (costs equal within noise): the geometry is
    chosen for the share first (the whole picture, as no rectangle is surely better), and among
    whole-picture accounts the true start is clearly best."""
    n = 100
    rng = np.random.default_rng(3)
    base = np.arange(n)
    hyps = [_hyp("chosen", base, geometry="whole picture"), _hyp("1 frame later", base + 1),
            _hyp("1 frame later, whole", base + 1, timing="1 frame later", geometry="whole picture"),
            _hyp("chosen, fitted", base, timing="chosen", box=(0.5, 0.0, 64.5, 36.0))]
    costs = np.stack([np.full(n, 1.0), np.full(n, 0.98), np.full(n, 2.0), np.full(n, 1.0)]) + rng.normal(0, 0.3, (4, n))
    v = decide(hyps, costs, block=10)
    assert hyps[v.chosen].name == "chosen" and v.decided
    assert not v.geometry.ruled_out  # no rectangle surely beats the whole picture
    assert [c.rival for c in v.comparisons] == ["1 frame later, whole"]


def test_a_rival_whose_own_rectangle_explains_its_misfit_is_a_stand_in_and_refused():
    """A crop on a steady zoom: the start 2 frames later with its own rectangle (2 frames' zoom
    larger) costs 1.02 against the chosen 1.00, and 1.80 with the chosen rectangle. Its rectangle
    removes 0.78 of its excess and 0.02 remains: the rectangle, not the timing, explains it, so the
    start is not settled even though the chosen one is better in every resample. Where the rival's
    own rectangle removes only 0.1 of an excess of 0.7 (a rectangle cannot follow hand-held motion),
    it is ruled out as usual."""
    n = 100
    base = np.arange(n)
    grown = (-0.4, -0.2, 64.4, 36.2)
    hyps = [_hyp("chosen", base), _hyp("2 frames later", base + 2, box=grown),
            _hyp("2 frames later, chosen rectangle", base + 2, timing="2 frames later"),
            _hyp("chosen, whole", base, timing="chosen", geometry="whole picture", box=(0.0, 0.0, 80.0, 45.0)),
            _hyp("2 frames later, whole", base + 2, timing="2 frames later", geometry="whole picture",
                 box=(0.0, 0.0, 80.0, 45.0))]
    whole = [np.full(n, 3.0), np.full(n, 3.5)]
    rng = np.random.default_rng(4)
    zoom = np.stack([np.full(n, 1.00), np.full(n, 1.02), np.full(n, 1.80), *whole]) + rng.normal(0, 0.001, (5, n))
    v = decide(hyps, zoom, block=10)
    assert hyps[v.chosen].name == "chosen" and all(c.ruled_out for c in v.comparisons)
    assert [s.rival for s in v.stand_ins] == ["2 frames later"] and not v.decided
    assert v.stand_ins[0].held_cost == pytest.approx(1.80, abs=0.01)
    shake = np.stack([np.full(n, 1.00), np.full(n, 1.70), np.full(n, 1.80), *whole]) + rng.normal(0, 0.001, (5, n))
    v = decide(hyps, shake, block=10)
    assert v.stand_ins == () and v.decided
    # the whole picture chosen (it fits best): no rectangle is chosen, so none stands in
    zoom[3:] = zoom[:2] - 0.5
    v = decide(hyps, zoom, block=10)
    assert hyps[v.chosen].name == "chosen, whole" and v.stand_ins == () and v.decided


def test_a_fit_within_half_an_lq_pixel_of_the_whole_picture_is_the_whole_picture():
    """A 960x540 original scaled to 890x500. A fit at HQ box (0.04, 0, 959.96, 539.9) puts the
    original's edges at LQ x = −0.04 / (959.92 / 890) = −0.037 and (960 − 0.04) / 1.07856 = 890.04,
    y = 0 and 540 / (539.9 / 500) = 500.09: within half an LQ pixel of the whole picture's 0, 0, 890,
    500, so the same picture. A box 1.08 HQ pixels in from the left (one LQ pixel cut) puts the left
    edge at −1.08 / (958.92 / 890) = −1.002: another picture. Inside bars, edges count from the frame."""
    from uvssm.align.hypotheses import frame_edges, same_picture

    hq, lq, whole = (960, 540), (890, 500), (0.0, 0.0, 960.0, 540.0)
    assert np.allclose(frame_edges((0.04, 0.0, 959.96, 539.9), (0, 0, 0, 0), hq, lq),
                       [-0.0371, 0.0, 890.0371, 500.0926], atol=1e-3)
    assert same_picture((0.04, 0.0, 959.96, 539.9), (0, 0, 0, 0), whole, (0, 0, 0, 0), hq, lq)
    assert not same_picture((1.08, 0.0, 960.0, 540.0), (0, 0, 0, 0), whole, (0, 0, 0, 0), hq, lq)
    # pillarboxed in 20-pixel bars: the whole picture in (20, 0, 20, 0) (850 LQ px show 960: 1.1294
    # HQ px each) is the same as HQ box (−22.59, 0, 982.59, 540) seen through the whole 890-wide frame
    assert same_picture(whole, (20, 0, 20, 0), (-22.59, 0.0, 982.59, 540.0), (0, 0, 0, 0), hq, lq)
    assert not same_picture(whole, (20, 0, 20, 0), (-18.6, 0.0, 978.6, 540.0), (0, 0, 0, 0), hq, lq)


def test_theta_neighbours_worked_by_hand():
    """24 → 25 fps: LQ frame j at HQ position 0.96 j, whose fractions are 1 − 0.04 j mod 1. From θ
    0.5 upward, floor(p + 1 − θ) first names another frame at θ 0.53, for the fraction 0.52 (j = 12
    and 37 of 50: 4%, over the 1% tolerated): one frame earlier there. Downward, at θ 0.48 for the
    fraction 0.48 (j = 13, 38): one frame later. Frames the chosen pairing moved keep their move."""
    from uvssm.align.hypotheses import theta_neighbours

    p = 0.96 * np.arange(50)
    chosen = np.floor(p + 0.5 + 1e-9).astype(np.int64)
    chosen[30] += 1  # a content move the neighbours keep
    (up, m_up), (down, m_down) = theta_neighbours(chosen, p, 0.5, 0.01, 100)
    assert up == 0.53 and np.flatnonzero(m_up != chosen).tolist() == [12, 37] and (m_up - chosen).min() == -1
    assert down == 0.48 and np.flatnonzero(m_down != chosen).tolist() == [13, 38] and (m_down - chosen).max() == 1
    assert m_up[30] == chosen[30] == m_down[30]


def test_theta_neighbours_of_a_window_narrower_than_a_hundredth_worked_by_hand():
    """94 frames on whole positions, 3 at fraction 0.5825 and 3 at 0.5875: θ 0.583 lies in the window
    (0.5825, 0.5875], where floor(p + 1 − θ) names frame j for the first three and j + 1 for the last.
    Upward, the next window (0.5875, 1] starts re-pairing the 0.5875 frames (3%, over 1%): its θ
    nearest 0.583 in two decimals is 0.59, one frame earlier for them. Downward, (0, 0.5825]: 0.58
    (the last hundredth in it), one frame later for the 0.5825 frames."""
    from uvssm.align.hypotheses import theta_neighbours
    from uvssm.align.timing import named_by_theta

    p = np.arange(100, dtype=np.float64)
    p[[10, 40, 70]] += 0.5825
    p[[20, 50, 80]] += 0.5875
    chosen = named_by_theta(p, 0.583)
    (up, m_up), (down, m_down) = theta_neighbours(chosen, p, 0.583, 0.01, 200)
    assert up == 0.59 and np.flatnonzero(m_up != chosen).tolist() == [20, 50, 80]
    assert (m_up - chosen).min() == -1
    assert down == 0.58 and np.flatnonzero(m_down != chosen).tolist() == [10, 40, 70]
    assert (m_down - chosen).max() == 1


def test_picture_region_is_the_pad_that_ffmpeg_was_told(ffmpeg, tmp_path):
    """A testsrc2 picture scaled to 240x136 and padded to 320x180 with a colour at (36, 20), as a
    platform fills: the region is the pad's own numbers (left 36, top 20, right 320 − 240 − 36 = 44,
    bottom 180 − 136 − 20 = 24), and with black bars the same; a picture that reaches the edges has none."""
    import subprocess

    from uvssm.align.geometry import picture_region
    from uvssm.base.decode import gray_frames
    from uvssm.base.probe import probe

    for colour in ("0x336699", "black", "white"):
        out = tmp_path / f"pad-{colour}.mp4"
        subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25", "-frames:v", "8",
                        "-vf", f"scale=240:136,pad=320:180:36:20:{colour}", "-c:v", "libx264", "-crf", "30",
                        "-pix_fmt", "yuv420p", str(out)], check=True)
        frames = np.stack([f for _, f in gray_frames(ffmpeg, probe(out))])
        assert picture_region(frames) == (36, 20, 44, 24), colour
    plain = tmp_path / "plain.mp4"
    subprocess.run([ffmpeg.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25", "-frames:v", "8",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    assert picture_region(np.stack([f for _, f in gray_frames(ffmpeg, probe(plain))])) == (0, 0, 0, 0)
