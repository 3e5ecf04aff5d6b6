"""Which HQ frame each LQ frame shows, on thumbnails: the start offset by content, then a monotonic
dynamic programme banded around the timestamps (`temporal_match`).

Every frame's presentation time places each LQ frame in the original; content (luma thumbnails
normalised per frame) picks the start offset (a late start, or an intro before the original), and
the programme moves a frame off the timestamps only where the content clearly disagrees. The start
offset's margin over the next best is its confidence on thumbnails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.base.errors import UvssmError


def normalise(frames: np.ndarray) -> np.ndarray:
    """Thumbnails (N, h, w) → (N, h·w) float32 rows of zero mean and unit variance."""
    flat = frames.reshape(len(frames), -1).astype(np.float32)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (flat.std(axis=1, keepdims=True) + 1e-3)


def _costs(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Normalised squared distance 2 − 2·corr between LQ rows a[rows[j]] and HQ rows b[cols[j, k]]
    (inf where cols is out of range), in chunks so memory stays bounded."""
    out = np.full(cols.shape, np.inf, dtype=np.float32)
    valid = (cols >= 0) & (cols < len(b))
    safe = np.clip(cols, 0, len(b) - 1)
    d = a.shape[1]
    for lo in range(0, len(rows), chunk):
        hi = min(lo + chunk, len(rows))
        corr = np.einsum("nd,nkd->nk", a[rows[lo:hi]], b[safe[lo:hi]], optimize=True) / d
        out[lo:hi] = 2.0 - 2.0 * corr
    out[~valid] = np.inf
    return out


@dataclass(frozen=True)
class TemporalMatch:
    """Which HQ frame each LQ frame shows, and how sure the content is of it.

    mapping[j]: HQ index of LQ frame lq_first + j (non-decreasing), for the LQ frames that show the
    HQ video: LQ frames before `lq_first` (an intro, or a share that starts before the original) and
    the `unmatched_tail` after the last mapped one (an outro, or a share that runs past the original)
    are left out.
    """

    mapping: np.ndarray
    cost: np.ndarray  # per LQ frame: 2 − 2·corr of its thumbnail with the chosen HQ one
    offset_frames: int  # HQ frame that LQ frame 0 shows, by content
    offset_seconds: float  # HQ time at LQ time 0
    offset_margin: float  # (next-best offset's cost − chosen's) / next-best's: how distinct the start is
    offset_cost: float  # the best start's (before an intro's step back over ties to the first that shows HQ frame 0)
    next_offset_cost: float  # the best start's ≥ 1.5 frames away
    agreement: float  # share of LQ frames whose chosen HQ frame is also the best of its ±1 neighbours
    off_timing: int  # LQ frames mapped away from where the timestamps (after the offset) put them
    dropped: int  # HQ frames skipped beyond what the timestamps say
    repeated: int  # LQ frames that repeat an HQ frame although the timestamps say it moved on
    unmatched_tail: int  # LQ frames past the end of the HQ video (not mapped)
    motion_contrast: float  # median cost change between neighbouring HQ frames (the penalty's unit)
    lq_first: int = 0  # LQ frame that mapping[0] belongs to: the LQ frames before it show no HQ frame (an intro)
    # per mapped frame: its fractional HQ position by the timestamps, plus the programme's lasting drift
    position: np.ndarray | None = None
    timing: np.ndarray | None = None  # the same by the timestamps alone


def temporal_match(hq: np.ndarray, lq: np.ndarray, hq_times: np.ndarray, lq_times: np.ndarray, *,
                   max_offset_s: float = 4.0, band: int = 12, change_penalty: float = 2.0, off_penalty: float = 0.5,
                   time_bases: tuple[float, float] = (0.0, 0.0), offset_seconds_used: float = 6.0,
                   unmatched_cost: float = 0.8, lead_slack: float = 3.0) -> TemporalMatch:
    """Map LQ frames to HQ frames: timestamps first, content to find the start and to confirm.

    hq, lq: thumbnails (N, h, w) of one size; *_times: each frame's presentation time (seconds).
    1. Start offset: candidates are each HQ frame k within `max_offset_s` at LQ time 0 (a late
       start) and each LQ frame m within it at HQ time 0 (an intro); LQ frame j is put at HQ time
       t_lq[j] + offset; the mean thumbnail cost (capped at `unmatched_cost`) over
       `offset_seconds_used` of LQ frames from the first one inside the original scores it. The
       chosen offset's margin over the best one at least 1.5 frames away is the offset confidence.
    2. Each LQ frame's fractional HQ position p_j follows from the timestamps. Where p_j is an
       integer (to within the timestamps' rounding, see `timestamp_rounding`; equal rates), the
       timestamps name one HQ frame; where it
       falls between two, timing cannot tell which one a platform's resampler showed (nearest,
       the one on screen, its own rounding), and both are free. A monotonic dynamic programme over
       an integer drift d_j ∈ [−band, band] picks that frame (or one of the two) + d_j, minimising thumbnail
       cost plus, in units of the pair's median neighbour contrast c (how much the cost changes
       between neighbouring HQ frames), `change_penalty`·c per frame of drift change and
       `off_penalty`·c per frame and HQ frame that the choice lies outside what the timestamps allow.
       A real drop or repeat that the timestamps do
       not show gains about c on every later frame and is followed; a codec's lag (a heavily
       compressed share that looks a little like the previous frame) gains a fraction of c and is
       not: a pair whose timing says identity stays identity unless the content clearly disagrees.
       When the path reaches the band's edge the band is re-centred on it and the programme rerun,
       so time and memory grow linearly with length.
    """
    hq_times, lq_times = np.asarray(hq_times, np.float64), np.asarray(lq_times, np.float64)
    if len(hq_times) != len(hq) or len(lq_times) != len(lq):
        raise ValueError("one timestamp per thumbnail expected")
    a, b = normalise(lq), normalise(hq)
    n_hq = len(b)

    def positions(offset_s: float) -> np.ndarray:  # fractional HQ index at each LQ time
        return _positions(lq_times, offset_s, hq_times)

    # 1. the start offset, by content. Candidates: HQ frame k at LQ time 0 (a share that starts k
    # frames into the original), or LQ frame m at HQ time 0 (an intro before the original's first
    # frame). Each is scored by its mean cost over the same number of LQ frames from the first one
    # inside the original (where a time falls between two HQ frames, the better of the two), each
    # cost capped at `unmatched_cost`: frames that match nothing (cards) weigh the same everywhere.
    window = max(8, int(np.count_nonzero(lq_times - lq_times[0] <= offset_seconds_used + 1e-9)))
    candidates = [float(hq_times[k]) for k in range(n_hq) if hq_times[k] <= max_offset_s + 1e-9] or [0.0]
    n_late = len(candidates)  # then candidate n_late + m − 1 puts LQ frame m at HQ time 0
    candidates += [-float(t) for t in lq_times[1:] if t <= max_offset_s + 1e-9]
    scores = []
    for offset in candidates:
        pos_all = positions(offset)
        first = int(np.searchsorted(pos_all, -0.5))
        used = np.arange(first, min(len(a), first + window))
        if len(used) < 4:
            scores.append(np.inf)
            continue
        p = pos_all[used]  # either neighbour where the time falls between two frames (resamplers differ)
        c = _costs(a, b, used, np.stack([np.floor(p + 1e-6), np.ceil(p - 1e-6)], axis=1).astype(np.int64)).min(axis=1)
        c = np.minimum(c[np.isfinite(c)], unmatched_cost)  # a card costs every candidate the same
        scores.append(float(c.mean()) if len(c) >= 4 else np.inf)
    scores = np.array(scores)
    best = int(np.argmin(scores))
    # an intro: the original starts at the first LQ frame that shows it. Where the share repeats
    # frames (a higher rate than the original's), the frames before the chosen one may show HQ frame
    # 0 as well, and the candidates tie within noise: step back to the first of them
    # (from LQ frame 1 at HQ time 0, the step back is to no intro at all, candidate 0, and needs no
    # tie: a first LQ frame that looks like HQ frame 0 is no card, and nothing else comes before it.
    # A share at a lower rate made by dropping frames late, as ffmpeg's `-r`, fits a start one LQ
    # frame late better on average, as it lags by up to two frames)
    found = best
    while best >= n_late:
        m = best - n_late + 1  # the LQ frame the candidate puts at HQ time 0
        previous = best - 1 if m > 1 else 0
        tied = np.isfinite(scores[previous]) and scores[previous] <= scores[best] * 1.1 + 1e-3
        if not (tied or previous == 0):
            break
        c = _costs(a, b, np.array([m - 1, m]), np.zeros((2, 1), np.int64))[:, 0]
        if not c[0] <= min(c[1] + 0.1, unmatched_cost / 2):
            break
        best = previous
    offset_s = candidates[best]
    interval0 = float(np.median(np.diff(hq_times))) if n_hq > 1 else 1.0
    # the margin: the best score against the best of the starts ≥ 1.5 frames from those stepped over
    lo, hi = min(offset_s, candidates[found]) - 1.5 * interval0, max(offset_s, candidates[found]) + 1.5 * interval0
    others = [sc for o, sc in zip(candidates, scores) if not lo < o < hi and np.isfinite(sc)]
    next_best = min(others) if others else np.inf
    margin = 1.0 if not np.isfinite(next_best) else float((next_best - scores[found]) / max(next_best, 1e-9))

    def programme(offset_s: float):
        return _programme(a, b, lq_times, hq_times, offset_s, band=band, lam_unit=change_penalty,
                          mu_unit=off_penalty, time_bases=time_bases, lead_slack=lead_slack)

    lead, n, pos, drift, chosen, total_cost, contrast, lam = programme(offset_s)
    a_used = a[lead:]
    # the offset candidates lie on the frame grids; where the content moves the opening stretch off
    # the timestamps by whole frames, the offset was that far off: move it and run again
    opening = np.rint(np.median(drift[:15])) if len(drift) else 0
    if opening:
        offset_s += float(opening) * interval0
        lead, n, pos, drift, chosen, total_cost, contrast, lam = programme(offset_s)
    a_used = a[lead:]
    rows = np.arange(n)
    # a share that runs past the original: trailing frames held on its last frame that the content
    # does not support are left unmatched
    typical = float(np.median(total_cost))
    while n > 1 and chosen[n - 1] == n_hq - 1 and chosen[n - 2] == n_hq - 1 and total_cost[n - 1] > 2 * typical + lam:
        n -= 1
    # cards: leading and trailing LQ frames that look like no HQ frame the band allows
    unlike = total_cost[:n] > max(unmatched_cost, 3 * typical + lam)
    head = int(np.argmin(unlike)) if not unlike.all() else n
    tail = int(np.argmin(unlike[::-1])) if not unlike.all() else 0
    if head >= n - tail:
        raise UvssmError("no LQ frame looks like the HQ frames its timing allows")
    keep = slice(head, n - tail)
    mapping, cost, drift, rows = chosen[keep], total_cost[keep], drift[keep], rows[keep]
    # where the timestamps fall between two HQ frames: the earlier one (with the drift) and how far past it
    # where the timestamps put each frame, with the programme's drift where it lasts (a drop or repeat
    # the timestamps do not show); a blip of a frame or two is the thumbnails' noise, not the share's
    position = pos[keep] + np.rint(_running_median(drift, 5))
    mid = _costs(a_used, b, rows, np.stack([mapping - 1, mapping, mapping + 1], axis=1))
    agree = float(np.mean(mid[:, 1] <= np.minimum(mid[:, 0], mid[:, 2]) + 1e-6))
    change = np.diff(drift)
    return TemporalMatch(
        mapping=mapping, cost=cost, offset_frames=int(np.rint(offset_s / max(interval0, 1e-9))), offset_seconds=offset_s,
        offset_margin=margin, offset_cost=float(scores[found]), next_offset_cost=float(next_best),
        agreement=agree, off_timing=int(np.count_nonzero(drift)), dropped=int(change[change > 0].sum()),
        repeated=int(-change[change < 0].sum()), unmatched_tail=len(lq) - lead - n + tail, motion_contrast=contrast,
        lq_first=lead + head, position=position, timing=pos[keep])


def _positions(lq_times: np.ndarray, offset_s: float, hq_times: np.ndarray) -> np.ndarray:
    """Fractional HQ index at each LQ time shifted by `offset_s` (extrapolated at the HQ video's rate
    before its first frame and after its last)."""
    n_hq = len(hq_times)
    t = lq_times + offset_s
    pos = np.interp(t, hq_times, np.arange(n_hq, dtype=np.float64))
    step = (hq_times[-1] - hq_times[-2]) if n_hq > 1 else 1.0
    first = (hq_times[1] - hq_times[0]) if n_hq > 1 else 1.0
    pos = np.where(t < hq_times[0], (t - hq_times[0]) / max(first, 1e-9), pos)  # before the original
    return np.where(t > hq_times[-1], n_hq - 1 + (t - hq_times[-1]) / max(step, 1e-9), pos)


def _programme(a: np.ndarray, b: np.ndarray, lq_times: np.ndarray, hq_times: np.ndarray, offset_s: float, *,
               band: int, lam_unit: float, mu_unit: float, time_bases: tuple[float, float], lead_slack: float):
    """Section 2 of `temporal_match` for one start offset, on all LQ rows `a` (normalised thumbnails)
    and times: (lead, n, pos, drift, chosen, cost, contrast, lam) for LQ frames lead … lead + n − 1."""
    n_hq = len(b)
    # LQ frames well before the original's first frame (an intro) are not matched; those just
    # before it go to the programme (the offset is known to a frame or two), and content decides
    lead = int(np.searchsorted(_positions(lq_times, offset_s, hq_times), -0.5 - lead_slack))
    a, lq_times = a[lead:], lq_times[lead:]
    # the banded programme around the timestamp prior
    pos = _positions(lq_times, offset_s, hq_times)
    # LQ frames the band can still place inside the HQ video (repeats that the timestamps do not
    # show make a share run past the original's end by timing, not by content)
    n = int(np.count_nonzero(pos <= n_hq - 1 + band - 1))
    if n == 0:
        raise UvssmError("no LQ frame falls inside the HQ video after the start offset")
    pos = np.maximum(pos[:n], 0.0)
    interval = float(np.median(np.diff(hq_times))) if n_hq > 1 else 1.0
    rounding = timestamp_rounding(hq_times, time_bases[0]) + timestamp_rounding(lq_times, time_bases[1])
    tolerance = 0.002 + rounding / max(interval, 1e-9)  # in HQ frames
    near_integer = np.abs(pos - np.rint(pos)) <= tolerance
    base = np.where(near_integer, np.rint(pos), np.floor(pos)).astype(np.int64)
    tie = ~near_integer
    alt = base + 1  # where the position falls between base and base + 1
    rows = np.arange(n)
    # the contrast unit: how much worse the cost gets one HQ frame off, in the clearer direction (a
    # heavily compressed share lags: it looks almost as much like the previous frame as like its own)
    neighbour = _costs(a, b, rows, np.stack([base - 1, base, base + 1], axis=1))
    with np.errstate(invalid="ignore"):  # inf − inf at the video's ends
        sides = [neighbour[:, k] - neighbour[:, 1] for k in (0, 2)]
    medians = [float(np.median(d[np.isfinite(d)])) for d in sides if np.isfinite(d).any()]
    contrast = max(max(medians, default=0.0), 1e-4)
    lam, mu = lam_unit * contrast, mu_unit * contrast
    centre = np.zeros(n, dtype=np.int64)
    for _ in range(8):
        drift, chosen, total_cost = _banded_path(a, b, base, alt, tie, centre, band, lam, mu)
        if np.abs(drift - centre).max() < band or band >= n_hq:
            break
        centre = np.rint(_running_median(drift)).astype(np.int64)
    return lead, n, pos, drift, chosen, total_cost, contrast, lam


def timestamp_rounding(times: np.ndarray, time_base: float) -> float:
    """How far (seconds) a stream's timestamps may sit from the times they stand for: their largest
    deviation from the stream's own constant-rate grid (0 for exact multiples of the frame interval,
    as AVI or a 1/12800 MP4 at 25 fps store them; up to half a tick for rounded ones, e.g. 29.97 fps
    in milliseconds), at most half the time base (a variable frame rate is off any grid)."""
    if len(times) < 3:
        return time_base / 2
    interval = float(np.median(np.diff(times)))
    rel = (times - times[0]) / max(interval, 1e-12)
    deviation = float(np.max(np.abs(rel - np.rint(rel)))) * interval
    return min(deviation, time_base / 2)


def _running_median(x: np.ndarray, window: int = 31) -> np.ndarray:
    """Running median (odd window), used to re-centre the band on a path that reached its edge."""
    import pandas as pd

    return pd.Series(x).rolling(window, center=True, min_periods=1).median().to_numpy()


def _banded_path(a, b, base, alt, tie, centre, band, lam, mu):
    """One pass of the drift programme; returns (drift, HQ index, cost) per LQ frame."""
    n = len(base)
    offs = np.arange(-band, band + 1)
    drift_of = centre[:, None] + offs[None, :]  # (n, W) candidate drifts
    rows = np.arange(n)
    c_base = _costs(a, b, rows, base[:, None] + drift_of)
    c_alt = _costs(a, b, rows, alt[:, None] + drift_of)
    c_alt[~tie] = np.inf
    use_alt = c_alt < c_base
    content = np.where(use_alt, c_alt, c_base)
    index = np.where(use_alt, alt[:, None], base[:, None]) + drift_of
    # how many HQ frames the choice lies outside the frame(s) the timestamps allow
    outside = np.maximum(0, np.maximum(base[:, None] - index, index - np.where(tie, alt, base)[:, None]))
    unary = content + mu * outside
    w = len(offs)
    back = np.zeros((n, w), dtype=np.int16)
    total = unary[0].astype(np.float64)
    for j in range(1, n):
        # candidate (new state s, previous state r): drift change and monotonicity
        change = np.abs(drift_of[j][:, None] - drift_of[j - 1][None, :])
        step = index[j][:, None] - index[j - 1][None, :]
        cand = total[None, :] + lam * change
        cand[step < 0] = np.inf
        arg = np.argmin(cand, axis=1)
        total = cand[np.arange(w), arg] + unary[j]
        back[j] = arg
    state = int(np.argmin(total))
    if not np.isfinite(total[state]):
        raise UvssmError("no monotonic frame mapping fits within the timing band")
    states = np.zeros(n, dtype=np.int64)
    states[-1] = state
    for j in range(n - 1, 0, -1):
        states[j - 1] = back[j, states[j]]
    return drift_of[rows, states], index[rows, states], content[rows, states]
