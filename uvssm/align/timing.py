"""The rule that names each LQ frame's HQ frame from its timestamp: the rounding θ (`rounding_fit`), or
a chain of two conversions where the content supports one clearly (`timing_rule`, `rate_chain`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from uvssm.align.rate_chain import CAP, ChainFit, fit_chain, log_ratio_table


THETA_SPAN = (-2.5, 2.5)  # θ searched: up to two frames either side of a whole-frame start (a start a frame off)
EPS = 1e-9  # keeps a position exactly on a frame on it (a time computed in floating point)


def named_by_theta(position, theta) -> np.ndarray:
    """The HQ frame a rounding θ names for each position: floor(p + 1 − θ) (positions and θ broadcast;
    `EPS` keeps a position exactly on a frame on it)."""
    return np.floor(np.asarray(position, np.float64) + 1 - theta + EPS).astype(np.int64)


def theta_cuts(position, lo: float, hi: float) -> np.ndarray:
    """The θ in (lo, hi) at which floor(p + 1 − θ) names another frame for some position: each
    position's fraction plus a whole number (sorted). Between two cuts every θ pairs alike, so the
    windows (cut, next cut] are every distinct pairing a θ makes: no grid is fine enough for all
    (a 25 → 59.94 fps share's fractions lie 0.0004 of a frame apart)."""
    p = np.asarray(position, np.float64)
    if not len(p):
        return np.array([], np.float64)
    fractions = np.unique(np.round(p - np.floor(p), 9))
    whole = np.arange(np.floor(lo) - 1, np.ceil(hi) + 2)
    cuts = np.unique(np.round((fractions[None, :] + whole[:, None]).ravel(), 9))
    return cuts[(cuts > lo + EPS) & (cuts < hi - EPS)]


def theta_windows(position, span: tuple[float, float] = THETA_SPAN) -> np.ndarray:
    """The bounds of every window of θ in `span` that pairs alike (`theta_cuts`): window w is
    (bounds[w], bounds[w + 1]]."""
    return np.r_[span[0], theta_cuts(position, *span), span[1]]


def nearest_half(bounds: np.ndarray, best: np.ndarray) -> float:
    """Of the windows `best` (indices into `theta_windows`' bounds), the θ nearest 0.5 (`theta_in`)."""
    distance = np.maximum(0.0, np.maximum(bounds[best] - 0.5, 0.5 - bounds[best + 1]))
    w = int(best[np.argmin(distance)])
    return theta_in(bounds[w], bounds[w + 1], 0.5)


def theta_in(a: float, b: float, toward: float) -> float:
    """The θ of the window (a, b] nearest `toward`, written with as few decimals as stay inside it
    (at least two: a window that holds a hundredth is named by it)."""
    for d in range(2, 10):
        s = 10.0 ** d
        if toward <= a:
            y = (np.floor(a * s + 1e-6) + 1) / s  # the first such decimal above a
        elif toward >= b:
            y = np.floor(b * s + 1e-6) / s  # the last at or below b
        else:
            y = round(toward, d)
        if a + EPS < y <= b + EPS:
            return round(float(y), d)
    return (a + b) / 2


def theta_text(theta: float) -> str:
    """θ as the rules are named: two decimals, more where the window needs them."""
    return f"{theta:.2f}" if round(theta, 2) == theta else f"{theta:.9f}".rstrip("0")


def fit_rounding(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = THETA_SPAN) -> float:
    """The share's rounding θ (`rounding_fit`, whose docstring says how)."""
    return rounding_fit(errors, position, prior, span)[0]


def rounding_fit(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = THETA_SPAN) -> tuple[float, float]:
    """The share's rounding θ: LQ frame j shows HQ frame floor(p_j + 1 − θ), p_j its fractional
    position by the timestamps. Nearest-frame resampling is θ = 0.5, the frame on screen θ = 1, the
    next frame θ near 0, ffmpeg's constant-rate output (`-r`, which drops a frame only once it is 1.1
    frames late) θ a little above 1; a start offset that is a frame or two off shifts θ by as much.

    errors: per frame, {HQ index k: error at LQ size} (`lq_size_errors`). Every distinct pairing a θ
    in `span` makes (`theta_cuts`' windows) is scored by the sum over frames of log(error of the
    frame it names / the frame's smallest error) (capped at log 3, also where it names a frame not
    measured), plus `prior` for each frame that θ pairs differently from nearest (θ = 0.5): encoders
    make a frame look a little like the one before, so a content preference worth less than ~5% of
    error (log 1.05) on each frame it re-pairs does not move the rule off nearest. Counted per
    re-paired frame, not per frame of the share: where the LQ rate is not a multiple of the HQ rate,
    moving θ re-pairs only the frames whose positions lie between the two θ (a 24 → 29.97 fps share,
    θ 0.72 → 0.84: 10 of 145 frames, whose content preferred 0.84 clearly, while a per-frame prior
    charged all 145). The windows are swept in order, each changing the frames whose cut it passes,
    so the cost is linear in the frames.
    Returns, of the best-scoring windows, the θ nearest 0.5 (`theta_in`) and that score (0.5 and 0
    when there are no frames).
    """
    n = len(errors)
    if not n:
        return 0.5, 0.0
    p = np.asarray(position[:n], np.float64)
    table, lo = log_ratio_table(errors)  # log error ratio of HQ frame lo + column, capped
    nearest = np.floor(p + 0.5 + EPS).astype(np.int64)

    def cost(rows: np.ndarray, frame: np.ndarray) -> np.ndarray:
        col = frame - lo
        inside = (col >= 0) & (col < table.shape[1])
        return (np.where(inside, table[rows, np.clip(col, 0, table.shape[1] - 1)], CAP)
                + prior * (frame != nearest[rows]))

    bounds = theta_windows(p, span)  # window w is (bounds[w], bounds[w + 1]]
    cuts = bounds[1:-1]
    first = named_by_theta(p, (bounds[0] + bounds[1]) / 2)
    score = float(cost(np.arange(n), first).sum())
    # each frame steps to the frame before at every cut of its own fraction: rows × steps events
    steps = named_by_theta(p, span[0] + EPS) - named_by_theta(p, span[1]) + 1
    rows = np.repeat(np.arange(n), steps)
    r = np.arange(len(rows)) - np.repeat(np.cumsum(steps) - steps, steps)  # 0, 1, … per frame
    at = np.round(p[rows] + 1 - (first[rows] - r), 9)  # the cut where frame first − r becomes first − r − 1
    keep = (at > span[0] + EPS) & (at < span[1] - EPS)
    rows, r, at = rows[keep], r[keep], at[keep]
    delta = cost(rows, first[rows] - r - 1) - cost(rows, first[rows] - r)
    window = np.searchsorted(cuts, at - 1e-9) + 1  # the window just above the cut
    totals = score + np.r_[0.0, np.cumsum(np.bincount(window, delta, minlength=len(bounds) - 1)[1:])]
    return nearest_half(bounds, np.flatnonzero(totals <= totals.min() + 1e-9)), float(totals.min())


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
