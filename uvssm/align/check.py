"""Each pairing checked at LQ size against its neighbours, under the share's timing rule
(`choose_frames`), and the measures of that check (`SelfCheck`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from uvssm.align.frame_errors import lq_size_errors
from uvssm.align.rate_chain import Chain
from uvssm.align.timing import named_by_theta, theta_text, timing_rule


@dataclass(frozen=True)
class SelfCheck:
    """What comparing each LQ picture with its HQ frame and that frame's neighbours, at LQ size, says."""

    frames: int  # LQ frames checked
    moved: int  # pairings moved to a neighbour that fits clearly better (timing ties, rounding)
    neighbour_better: float  # after that: share of frames where the next or previous HQ frame still fits better
    residual: float  # median over frames of 1 − corr(LQ picture, HQ box at LQ size): how well the box fits
    distinct: float  # per HQ frame shown, how much worse its LQ frames fit its better neighbour (relative; median)
    ratio: float = 0.5  # "clearly better": an error at most this fraction of the chosen one's (half: an
    # SVT-AV1 share, whose temporal filter blends in the next frame and which may leave a frame as it
    # was, makes the neighbour of the frame its hash names fit up to ~0.6× as well)
    rounding: float = 0.5  # θ: LQ frame j shows HQ frame floor(position_j + 1 − θ) (see fit_rounding)
    next_better: float = float("nan")  # share of frames where the next HQ frame fits better at all: codecs
    # lag (a frame looks a little like the one before), they do not lead, so where the next frame often
    # fits better the content does not confirm the pairing (it runs behind, or cannot be told apart)
    previous_better: float = float("nan")  # share of frames where the previous HQ frame fits better at all
    # (a lagging codec raises it on a right pairing; a pairing a frame late raises it on most frames)
    timing_rule: str = ""  # what named each frame's HQ frame: the rounding θ, or a conversion chain (rate_chain)
    chain: Chain | None = None  # that chain, where one named them


def refine_mapping(hq_frames, lq_frames, mapping: np.ndarray, lq_first: int, box, bars,
                   position: np.ndarray | None = None, ratio: float = 0.5,
                   rates: tuple[Fraction, Fraction] | None = None, n_hq: int = 0,
                   theta: float | None = None) -> tuple[np.ndarray, SelfCheck]:
    """Check, and where the content is clear correct, each pairing at LQ resolution
    (`lq_size_errors`, then `choose_frames`; `theta`: the rounding θ to check, not fitted)."""
    # around the programme's choice and the frame the timestamps name (they differ where the programme
    # started a few frames off after an intro)
    also = None if position is None else np.rint(np.asarray(position, np.float64)[:len(mapping)])
    measured = lq_size_errors(hq_frames, lq_frames, mapping, lq_first, box, bars, also=also)
    return choose_frames(measured.errors, measured.residuals, mapping, position, ratio, rates, n_hq, theta)


def choose_frames(errors: list[dict[int, float]], residuals: list[dict[int, float]], mapping: np.ndarray,
                  position: np.ndarray | None = None, ratio: float = 0.5,
                  rates: tuple[Fraction, Fraction] | None = None, n_hq: int = 0,
                  theta: float | None = None) -> tuple[np.ndarray, SelfCheck]:
    """Each LQ frame's HQ frame from its errors at LQ size (`lq_size_errors`):
    - the share's rounding θ (`fit_rounding`, weighing every frame's errors), and every frame at
      floor(position + 1 − θ) (position: by the timestamps and the start offset): where a time falls
      between two HQ frames the share's resampler decides, consistently, and the frames whose content
      cannot tell (a heavily compressed share lags and looks a little like the previous frame;
      near-duplicate frames look alike) follow that rule; where consecutive LQ frames lie an HQ
      frame interval or more apart (a lower or the same rate), the rule's choices advance by at
      least one frame, as each such LQ frame shows a new one; or, where both videos run at a
      constant rate (`rates`) and a chain of conversions explains the content clearly better
      (`timing_rule`), every frame at the HQ frame that chain names;
    - a neighbour that fits clearly better (error ≤ `ratio` × the chosen one's) is taken (a drop or
      repeat the timestamps do not show), the mapping kept non-decreasing.
    The share of frames whose chosen HQ frame still has a neighbour fitting clearly better is the
    pair's self-check: near 0 for a right pairing; a wrong start offset or frame rate shows on most
    frames."""
    mapping = np.asarray(mapping, np.int64).copy()
    n = len(mapping)
    pos = mapping.astype(np.float64) if position is None else np.asarray(position[:n], np.float64)
    if theta is None:
        theta, chain = timing_rule(errors, pos, rates if position is not None else None, n_hq)
    else:  # a rounding θ that won the weighing (`pair.rivals`), checked as it is
        chain = None
    chained = None if chain is None else chain.mapping
    advance = rates is None or rates[1] <= rates[0]
    moved = flagged = ahead = behind = 0
    previous = timed = -1
    by_theta = named_by_theta(pos, theta)
    for j in range(n):
        e, m = errors[j], int(mapping[j])
        if chained is not None:  # the chain's drops and repeats are its own
            timed = int(chained[j])
        else:
            choice = int(by_theta[j])
            # two LQ frames an HQ frame interval or more apart never show one HQ frame (at a lower or
            # the same rate each LQ frame is a new one; a higher rate repeats): the timing's choices
            # advance. Kept apart from the content's moves below, so that one wrong move does not carry
            # on. Not where the LQ rate is known to be higher, however little (30 fps of 29.97 repeats a
            # frame every 33 s, and its steps of 0.999 HQ frames would otherwise shift every frame after)
            timed = max(choice, timed + 1 if j and advance and pos[j] - pos[j - 1] >= 0.95 else timed)
        if timed not in e:  # outside the frames measured (before the first): the programme's choice
            timed = m
        choice = timed
        better = [k for k in (choice - 1, choice + 1) if k in e and e[k] <= ratio * e[choice]]
        if better:
            choice = min(better, key=e.get)
        choice = max(choice, previous)
        if choice not in e:
            choice = min(e, key=lambda k: (k < previous, abs(k - choice)))
        moved += choice != m
        mapping[j] = previous = choice
        if any(k in e and e[k] <= ratio * e[choice] for k in (choice - 1, choice + 1)):
            flagged += 1
        ahead += choice + 1 in e and e[choice + 1] < e[choice]
        behind += choice - 1 in e and e[choice - 1] < e[choice]
    residual = float(np.median([residuals[j][int(mapping[j])] for j in range(n)]))
    distinct = _distinct(errors, mapping)
    rule = f"rounding θ {theta_text(theta)}" if chain is None else chain.chain.describe(rates[1])
    return mapping, SelfCheck(n, moved, flagged / max(n, 1), residual, distinct, ratio, theta, ahead / max(n, 1),
                              behind / max(n, 1), rule, None if chain is None else chain.chain)


def _distinct(errors: list[dict[int, float]], mapping: np.ndarray) -> float:
    """How much better the chosen HQ frames fit than their neighbours: per HQ frame k shown, the
    summed error of the LQ frames paired with it, against the same LQ frames paired with k − 1 or
    k + 1 (the better of the two), relative; the median over HQ frames (nan when none can be told).
    Taken per HQ frame, not per LQ frame: where a share repeats frames (a higher rate), the first
    copy of a new frame lags (the codec keeps a little of the previous one) and the later copies do
    not, so a right pairing can fit its first copies a little worse than their neighbours."""
    groups: dict[int, list[int]] = {}
    for j, k in enumerate(np.asarray(mapping[:len(errors)], np.int64)):
        groups.setdefault(int(k), []).append(j)
    margins = []
    for k, rows in groups.items():
        if not all(k in errors[j] for j in rows):
            continue
        chosen = sum(errors[j][k] for j in rows)
        near = [sum(errors[j][k2] for j in rows) for k2 in (k - 1, k + 1) if all(k2 in errors[j] for j in rows)]
        if near:
            margins.append((min(near) - chosen) / max(chosen, 1e-6))
    return float(np.median(margins)) if margins else float("nan")
