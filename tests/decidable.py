"""Whether a share's hash-true pairing can be told from its rivals by content (issue #24's question).

Test code. The truth (which original frame each share frame shows, from framemd5 hashes that plain
ffmpeg wrote) is weighed exactly as `uvssm build` weighs its own chosen account: against the same
pairing started one and two frames earlier and later and the rounding rules' pairings from the
share's timestamps (after the start offset build finds), and where a rounding θ names the truth's
frames, that θ's nearest neighbours that pair more than 1% differently, each with the rectangle fitted on the frames
it pairs and with the whole picture, by the same block bootstrap (`uvssm.align.decision`). A share
whose truth does not beat those rivals is undecidable: content cannot pair it, and the right answer
for it is a refusal.
"""

from __future__ import annotations

import numpy as np


def truth_mapping(truth: list[frozenset[int]]) -> tuple[int, np.ndarray, np.ndarray]:
    """(first LQ frame that shows an original frame, per LQ frame from it to the last such frame the
    original frame its hash names (cards between carry the previous one), and which of those are
    cards)."""
    shown = [(j, min(t)) for j, t in enumerate(truth) if t]
    first, last = shown[0][0], shown[-1][0]
    named = dict(shown)
    mapping = np.array([named.get(j, -1) for j in range(first, last + 1)], np.int64)
    card = mapping < 0
    for i in range(1, len(mapping)):
        mapping[i] = mapping[i] if mapping[i] >= 0 else mapping[i - 1]
    return first, mapping, card


def truth_theta(mapping: np.ndarray, position: np.ndarray) -> float | None:
    """The rounding θ (of the windows build fits it on, `timing.theta_windows`) whose floor(p + 1 − θ)
    names the truth's frames on all but at most 1% of them, nearest 0.5 (None where none does: the
    truth then has no θ neighbours among its rivals, as a conversion chain has none)."""
    from uvssm.align.decision import TOLERATED
    from uvssm.align.timing import named_by_theta, nearest_half, theta_windows

    p = np.asarray(position, np.float64)
    bounds = theta_windows(p)
    wrong = np.array([np.mean(named_by_theta(p, (a + b) / 2) != np.asarray(mapping))
                      for a, b in zip(bounds[:-1], bounds[1:])])
    if wrong.min() > TOLERATED:
        return None
    return nearest_half(bounds, np.flatnonzero(wrong == wrong.min()))


def truth_is_decidable(ffmpeg, made) -> tuple[bool, str]:
    """(whether the hash-true pairing beats its rivals, the runner-up's comparison)."""
    from uvssm.align.decision import decide, one_second
    from uvssm.align.hypotheses import costs
    from uvssm.align.pair import align_videos, rivals, timestamps
    from uvssm.align.temporal import _positions
    from uvssm.base.decode import gray_frames
    from uvssm.base.probe import probe

    hq_info, lq_info = probe(made.hq), probe(made.lq)
    a = align_videos(ffmpeg, hq_info, lq_info, frames=None, check=False)  # the picture's place only
    first, mapping, _ = truth_mapping(made.truth)
    n = len(mapping)
    n_hq = len(list(gray_frames(ffmpeg, hq_info, (8, 8))))
    n_lq = len(list(gray_frames(ffmpeg, lq_info, (8, 8))))
    hq_times, _ = timestamps(hq_info, n_hq)
    lq_times, _ = timestamps(lq_info, n_lq)
    position = _positions(lq_times, a.match.offset_seconds, hq_times)[first:first + n]
    sample = sorted(set(np.linspace(0, n - 1, min(8, n)).round().astype(int).tolist()))
    lq_full = dict(gray_frames(ffmpeg, lq_info, None, {first + j for j in sample}))
    hyps = rivals(ffmpeg, hq_info, lq_info, first, mapping, position, (a.fit.hq_box, a.fit.bars),
                  "truth", sample, lq_full, n_hq, starts=(a.frame_map.hq_box(a.fit.bars),),
                  theta=truth_theta(mapping, position))
    c = costs(gray_frames(ffmpeg, hq_info, None), gray_frames(ffmpeg, lq_info, None, set(range(first, first + n))),
              first, hyps, lq_info.display_size)
    verdict = decide(hyps, c, one_second(lq_times))
    runner = verdict.runner_up
    return (hyps[verdict.chosen].timing == "truth" and verdict.decided,
            f"best: {hyps[verdict.chosen].name}; " + (runner.describe() if runner else ""))
