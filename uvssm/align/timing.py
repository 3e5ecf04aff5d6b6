"""The rule that names each LQ frame's HQ frame from its timestamp: the rounding θ (`rounding_fit`), or
a chain of two conversions where the content supports one clearly (`timing_rule`, `rate_chain`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from uvssm.align.rate_chain import CAP, ChainFit, fit_chain, log_ratio_table


THETA_SPAN = (-2.5, 2.5)  # θ searched: up to two frames either side of a whole-frame start (a start a frame off)
THETA_STEP = 0.01  # θ's grid: a hundredth of an HQ frame


def named_by_theta(position, theta) -> np.ndarray:
    """The HQ frame a rounding θ names for each position: floor(p + 1 − θ) (positions and θ broadcast;
    1e-9 keeps a position exactly on a frame on it)."""
    return np.floor(np.asarray(position, np.float64) + 1 - theta + 1e-9).astype(np.int64)


def fit_rounding(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = THETA_SPAN, step: float = THETA_STEP) -> float:
    """The share's rounding θ (`rounding_fit`, whose docstring says how)."""
    return rounding_fit(errors, position, prior, span, step)[0]


def rounding_fit(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = THETA_SPAN, step: float = THETA_STEP) -> tuple[float, float]:
    """The share's rounding θ: LQ frame j shows HQ frame floor(p_j + 1 − θ), p_j its fractional
    position by the timestamps. Nearest-frame resampling is θ = 0.5, the frame on screen θ = 1, the
    next frame θ near 0, ffmpeg's constant-rate output (`-r`, which drops a frame only once it is 1.1
    frames late) θ a little above 1; a start offset that is a frame or two off shifts θ by as much.

    errors: per frame, {HQ index k: error at LQ size} (`lq_size_errors`). Every θ on a grid over
    `span` is scored by the sum over frames of log(error of the frame it names / the frame's smallest
    error) (capped at log 3, also where it names a frame not measured), plus `prior` for each frame
    that θ pairs differently from nearest (θ = 0.5): encoders make a frame look a little like the
    one before, so a content preference worth less than ~5% of error (log 1.05) on each frame it
    re-pairs does not move the rule off nearest. Counted per re-paired frame, not per frame of the
    share: where the LQ rate is not a multiple of the HQ rate, moving θ re-pairs only the frames whose
    positions lie between the two θ (a 24 → 29.97 fps share, θ 0.72 → 0.84: 10 of 145 frames, whose
    content preferred 0.84 clearly, while a per-frame prior charged all 145).
    Returns the best-scoring θ nearest 0.5 (every θ of one window between frames' positions pairs
    alike) and that score (0.5 and 0 when there are no frames).
    """
    n = len(errors)
    if not n:
        return 0.5, 0.0
    position = np.asarray(position[:n], np.float64)
    table, lo = log_ratio_table(errors)  # log error ratio of HQ frame lo + column, capped
    grid = np.arange(span[0], span[1], step)
    col = named_by_theta(position[None, :], grid[:, None]) - lo  # (grid, n)
    inside = (col >= 0) & (col < table.shape[1])
    total = np.where(inside, table[np.arange(n)[None, :], np.clip(col, 0, table.shape[1] - 1)], CAP).sum(axis=1)
    nearest = np.floor(position + 0.5 + 1e-9).astype(np.int64) - lo
    total += prior * (col != nearest[None, :]).sum(axis=1)
    best = grid[total <= total.min() + 1e-9]
    return float(best[np.argmin(np.abs(best - 0.5))]), float(total.min())


CHAIN_GAIN = 1.0  # a two-step chain replaces the rounding θ when its cost is at least this much below θ's
# and every one-step chain's ...
CHAIN_RIVAL = 0.5  # ... and a chain that pairs > 5% of the frames differently costs at least this much more
CHAIN_DIFFER = 0.05  # ... where it pairs more than this share of the frames differently from θ (else θ)


def timing_rule(errors: list[dict[int, float]], position: np.ndarray, rates: tuple[Fraction, Fraction] | None,
                n_hq: int) -> tuple[float, ChainFit | None]:
    """What names each LQ frame's HQ frame: the rounding θ (`rounding_fit`) and, where both videos
    run at a constant rate (`rates`: HQ, LQ) and a two-step conversion chain
    (`rate_chain.fit_chain`: a share of a share, an intermediate with millisecond times) explains
    the content clearly better than θ, than any one-step chain and than any chain that pairs
    differently (costs in the capped log error ratios all are scored by), that chain (else None).
    A one-step chain never replaces θ: without θ's prior it follows a codec's lag (a 25 → 60 fps
    share whose first copy of each frame lags fits "round up" far better than its true nearest).
    Nor does a chain that pairs all but a few frames as θ does: its gain is those frames' noise (an
    input seek's origin between two frames, which θ expresses and the chains' whole-frame origins
    do not, let a millisecond-clock chain pair 1.4% of a one-step share wrong)."""
    theta, cost = rounding_fit(errors, position)
    if rates is None or not len(errors):
        return theta, None
    fit = fit_chain(errors, position, rates[0], rates[1], n_hq)
    if (fit is None or fit.chain.one_step or fit.cost > min(cost, fit.one_step_cost) - CHAIN_GAIN
            or fit.rival_cost < fit.cost + CHAIN_RIVAL):
        return theta, None
    by_theta = named_by_theta(position[:len(errors)], theta)
    if np.mean(fit.mapping != by_theta) <= CHAIN_DIFFER:  # pairs as θ does: a few frames' noise
        return theta, None
    return theta, fit
