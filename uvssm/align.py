"""Aligning a shared (LQ) video with its original (HQ): which HQ frame each LQ frame shows, and
which HQ rectangle the LQ picture covers.

Temporal (`temporal_match`): timestamps first, content to confirm. Every frame's presentation time
places each LQ frame in the original; content (luma thumbnails normalised per frame) picks the
start offset (a late start, or an intro before the original), and a monotonic dynamic programme
banded around the timestamps moves a frame off them only where the content clearly disagrees. The
start offset's margin over the next best is the alignment's confidence.

Spatial: the picture located by content whatever surrounds it (`locate_picture`: masked
correlation over scales and placements), then the rectangle it shows, fitted one axis at a time on
matched frames near that guess (`spatial_fit`) and refined on whole blurred frames. `exact_geometry`
turns the fit into the integer-scale cut of the output frames (`Geometry`), and `hq_frame` cuts an
original frame by it.

Check (`refine_mapping`): every pairing to be written, compared at LQ size with its neighbours,
under the share's own rounding rule. `align_videos` runs all of it for one pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from uvssm.base.errors import UvssmError
from uvssm.base.probe import VideoProbe, probe
from uvssm.base.rate_chain import CAP, Chain, ChainFit, constant_rate, fit_chain, log_ratio_table


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
    hq_index = np.arange(n_hq, dtype=np.float64)

    def positions(offset_s: float) -> np.ndarray:  # fractional HQ index at each LQ time
        t = lq_times + offset_s
        pos = np.interp(t, hq_times, hq_index)
        step = (hq_times[-1] - hq_times[-2]) if n_hq > 1 else 1.0
        first = (hq_times[1] - hq_times[0]) if n_hq > 1 else 1.0
        pos = np.where(t < hq_times[0], (t - hq_times[0]) / max(first, 1e-9), pos)  # before the original
        return np.where(t > hq_times[-1], hq_index[-1] + (t - hq_times[-1]) / max(step, 1e-9), pos)

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

    a_all, lq_all = a, lq_times

    def programme(offset_s: float):
        """Section 2 for one start offset: (lead, n, pos, drift, chosen, cost, contrast, lam)."""
        nonlocal a, lq_times
        # LQ frames well before the original's first frame (an intro) are not matched; those just
        # before it go to the programme (the offset is known to a frame or two), and content decides
        lead = int(np.searchsorted(positions(offset_s), -0.5 - lead_slack))
        a, lq_times = a_all[lead:], lq_all[lead:]
        # the banded programme around the timestamp prior
        pos = positions(offset_s)
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
        lam, mu = change_penalty * contrast, off_penalty * contrast
        centre = np.zeros(n, dtype=np.int64)
        for _ in range(8):
            drift, chosen, total_cost = _banded_path(a, b, base, alt, tie, centre, band, lam, mu)
            if np.abs(drift - centre).max() < band or band >= n_hq:
                break
            centre = np.rint(_running_median(drift)).astype(np.int64)
        return lead, n, pos, drift, chosen, total_cost, contrast, lam

    lead, n, pos, drift, chosen, total_cost, contrast, lam = programme(offset_s)
    # the offset candidates lie on the frame grids; where the content moves the opening stretch off
    # the timestamps by whole frames, the offset was that far off: move it and run again
    opening = np.rint(np.median(drift[:15])) if len(drift) else 0
    if opening:
        offset_s += float(opening) * interval0
        lead, n, pos, drift, chosen, total_cost, contrast, lam = programme(offset_s)
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
    mid = _costs(a, b, rows, np.stack([mapping - 1, mapping, mapping + 1], axis=1))
    agree = float(np.mean(mid[:, 1] <= np.minimum(mid[:, 0], mid[:, 2]) + 1e-6))
    change = np.diff(drift)
    return TemporalMatch(
        mapping=mapping, cost=cost, offset_frames=int(np.rint(offset_s / max(interval0, 1e-9))), offset_seconds=offset_s,
        offset_margin=margin, offset_cost=float(scores[found]), next_offset_cost=float(next_best),
        agreement=agree, off_timing=int(np.count_nonzero(drift)), dropped=int(change[change > 0].sum()),
        repeated=int(-change[change < 0].sum()), unmatched_tail=len(lq) - lead - n + tail, motion_contrast=contrast,
        lq_first=lead + head, position=position, timing=pos[keep])


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


def black_bars(lq: np.ndarray, threshold: float = 24.0, share: float = 0.01) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) widths of black bars common to the frames lq (N, h, w): the outer
    rows and columns where fewer than `share` of the pixels reach `threshold` (a strict maximum would
    stop at the codec's ringing, which leaks a few bright pixels into the bar rows next to the picture)."""
    bright = lq >= threshold
    rows, cols = bright.mean(axis=(0, 2)), bright.mean(axis=(0, 1))

    def run(values):
        n = 0
        for v in values:
            if v >= share:
                break
            n += 1
        return n
    return run(cols), run(rows), run(cols[::-1]), run(rows[::-1])


def _fit_axis(lq_profile: np.ndarray, hq_profile: np.ndarray, nominal: float,
              scale_range: tuple[float, float] = (0.97, 1.03),
              offset_range: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Best (offset, scale) with lq[u] ≈ hq(offset + (u + 0.5)·scale − 0.5), both profiles compared
    after removing their mean and contrast: grid search over scales nominal × `scale_range` and
    offsets `offset_range` (default: the whole room the HQ profile leaves), then refine."""
    n = len(lq_profile)
    x = np.arange(n) + 0.5
    lq_c = (lq_profile - lq_profile.mean()) / (lq_profile.std() + 1e-6)
    grid = np.arange(len(hq_profile))

    def score(offset, scale):
        pos = offset + x * scale - 0.5
        if pos[0] < -0.5 or pos[-1] > len(hq_profile) - 0.5:
            return np.inf
        sampled = np.interp(pos, grid, hq_profile)
        sampled = (sampled - sampled.mean()) / (sampled.std() + 1e-6)
        return float(np.mean((lq_c - sampled) ** 2))

    best = (np.inf, 0.0, nominal)
    lo, hi = scale_range
    for scale in nominal * np.geomspace(lo, hi, max(61, int(np.ceil(np.log(hi / lo) / 0.001)))):
        first, last = offset_range if offset_range else (-2.0, max(len(hq_profile) - n * scale, 0) + 2)
        for offset in np.arange(first, last + 1e-9, 1.0):
            sc = score(offset, scale)
            if sc < best[0]:
                best = (sc, offset, scale)
    _, offset, scale = best
    for step_o, step_s in ((0.5, nominal * 0.0025), (0.1, nominal * 0.0005), (0.02, nominal * 0.0001)):
        candidates = [(score(offset + do, scale + ds), offset + do, scale + ds)
                      for do in np.arange(-5, 6) * step_o for ds in np.arange(-5, 6) * step_s]
        best = min(candidates)
        _, offset, scale = best
    return offset, scale, best[0]


def resample_box(frames: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """frames (N, H, W) sampled bilinearly at the centres of a (w, h) = `size` grid over `box`."""
    w, h = size
    x0, y0, x1, y1 = box
    xs = np.clip(x0 + (np.arange(w) + 0.5) * (x1 - x0) / w - 0.5, 0, frames.shape[2] - 1)
    ys = np.clip(y0 + (np.arange(h) + 0.5) * (y1 - y0) / h - 0.5, 0, frames.shape[1] - 1)
    xi, yi = np.minimum(xs.astype(int), frames.shape[2] - 2), np.minimum(ys.astype(int), frames.shape[1] - 2)
    fx, fy = (xs - xi)[None, None, :], (ys - yi)[None, :, None]
    out = np.empty((len(frames), h, w), np.float32)
    for lo in range(0, len(frames), 1024):
        f = frames[lo:lo + 1024].astype(np.float32)
        top = f[:, yi][:, :, xi] * (1 - fx) + f[:, yi][:, :, xi + 1] * fx
        bottom = f[:, yi + 1][:, :, xi] * (1 - fx) + f[:, yi + 1][:, :, xi + 1] * fx
        out[lo:lo + 1024] = top * (1 - fy) + bottom * fy
    return out


@dataclass(frozen=True)
class SpatialFit:
    bars: tuple[int, int, int, int]  # LQ black bars (left, top, right, bottom)
    hq_box: tuple[float, float, float, float]  # HQ rectangle (x0, y0, x1, y1) shown by the LQ picture
    scale: tuple[float, float]  # HQ pixels per LQ pixel (x, y)


def spatial_fit(hq: np.ndarray, lq: np.ndarray, guess: tuple[float, float, float, float] | None = None,
                bars: tuple[int, int, int, int] | None = None) -> SpatialFit:
    """Fit the HQ rectangle that matched frames hq (N, H, W) and lq (N, h, w) show (full resolution
    luma), searching near `guess` (an HQ box of the picture, e.g. from `locate_picture`) when given;
    the picture is the LQ frame less `bars` (left, top, right, bottom; default: its black bars)."""
    bars = black_bars(lq) if bars is None else bars
    l, t, r, b = bars
    pic = lq[:, t:lq.shape[1] - b, l:lq.shape[2] - r]
    if pic.shape[1] < 8 or pic.shape[2] < 8:
        raise UvssmError(f"the LQ picture inside bars {tuple(bars)} (left, top, right, bottom) is "
                         f"{pic.shape[2]}x{pic.shape[1]} pixels: too small to align")
    if guess is None:
        guess = (0.0, 0.0, float(hq.shape[2]), float(hq.shape[1]))
    fits = []
    for axis, (g0, g1) in ((2, (guess[0], guess[2])), (1, (guess[1], guess[3]))):
        other = 1 if axis == 2 else 2
        room = 0.03 * hq.shape[axis] + 8
        fits.append(_fit_axis(pic.mean(axis=(0, other)), hq.mean(axis=(0, other)), (g1 - g0) / pic.shape[axis],
                              offset_range=(g0 - room, g0 + room)))
    (ox, sx, _), (oy, sy, _) = fits
    ox, oy, sx, sy = _refine_2d(hq, pic, (ox, oy, sx, sy))
    box = (ox, oy, ox + pic.shape[2] * sx, oy + pic.shape[1] * sy)
    return SpatialFit(bars, box, (sx, sy))


def _refine_2d(hq: np.ndarray, pic: np.ndarray, start: tuple[float, float, float, float],
               frames: int = 3) -> tuple[float, float, float, float]:
    """Refine (offset_x, offset_y, scale_x, scale_y) on whole pictures: the HQ frames, blurred like a
    down-scaler would, are sampled at the LQ pixel centres; minimise the mean squared difference
    (both sides zero-mean) with Nelder-Mead, starting from the per-axis fit."""
    import torch
    from scipy.ndimage import gaussian_filter
    from scipy.optimize import minimize
    from torch.nn import functional as F

    pick = np.linspace(0, len(pic) - 1, min(frames, len(pic))).round().astype(int)
    sigma = (0.45 * start[3], 0.45 * start[2])
    blurred = torch.from_numpy(np.stack([gaussian_filter(hq[i], sigma) for i in pick]).astype(np.float32))[:, None]
    big_h, big_w = blurred.shape[-2:]
    h, w = pic.shape[1:]
    margin = 4  # LQ pixels near the picture's border sample outside a cropped HQ; leave them out
    targets = torch.from_numpy(np.stack([pic[i][margin:h - margin, margin:w - margin] for i in pick]).astype(np.float32))
    targets = targets - targets.mean(dim=(1, 2), keepdim=True)
    u = torch.arange(margin, w - margin, dtype=torch.float64) + 0.5
    v = torch.arange(margin, h - margin, dtype=torch.float64) + 0.5

    def cost(p):
        ox, oy, sx, sy = (float(x) for x in p)
        # HQ pixel coordinates of the LQ pixel centres, normalised for grid_sample (align_corners=True)
        gx = (ox + u * sx - 0.5) * (2.0 / (big_w - 1)) - 1.0
        gy = (oy + v * sy - 0.5) * (2.0 / (big_h - 1)) - 1.0
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).float()
        sampled = F.grid_sample(blurred, grid.expand(len(pick), -1, -1, -1), mode="bilinear",
                                padding_mode="border", align_corners=True)[:, 0]
        sampled = sampled - sampled.mean(dim=(1, 2), keepdim=True)
        return float(((sampled - targets) ** 2).mean(dim=(1, 2)).sum())

    x0 = np.array(start, dtype=np.float64)
    simplex = np.vstack([x0, x0 + np.diag([0.5, 0.5, 0.002 * x0[2], 0.002 * x0[3]])])
    result = minimize(cost, x0, method="Nelder-Mead",
                      options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400, "initial_simplex": simplex})
    return tuple(float(x) for x in result.x)


@dataclass(frozen=True)
class Geometry:
    """How a pair's frames are cut: the HQ frame is exactly `scale` × the LQ crop."""

    scale: int
    hq_resampled: bool  # the HQ rectangle is resampled (Lanczos); False: a plain crop
    lq_crop: tuple[int, int, int, int]  # x, y, w, h in the decoded LQ frame (bars excluded, even sizes)
    hq_box: tuple[float, float, float, float]  # x0, y0, x1, y1: the HQ rectangle the LQ crop shows

    @property
    def lq_size(self) -> tuple[int, int]:
        return self.lq_crop[2], self.lq_crop[3]

    @property
    def hq_size(self) -> tuple[int, int]:
        return self.scale * self.lq_crop[2], self.scale * self.lq_crop[3]


def exact_geometry(fit: SpatialFit, pic: tuple[int, int], hq_size: tuple[int, int]) -> Geometry:
    """The integer-scale cut of a fitted pair (`pic`: the LQ picture size without bars).

    The scale is the nearest integer when the fitted one is within 5% of it, else the integer below
    (HQ is never upsampled much). A plain crop when the fitted extent is within 0.1% or one HQ pixel of
    the integer scale's, else a resample. LQ columns and rows whose HQ footprint lies inside the HQ
    frame (half an HQ pixel of slack) are kept, in even numbers.
    """
    sx, sy = fit.scale
    mean = (sx + sy) / 2
    scale = max(1, round(mean) if abs(mean - round(mean)) <= 0.05 * round(mean) else int(mean))
    exact = all(abs(f - scale) * n <= max(1.0, 1e-3 * scale * n) for f, n in ((sx, pic[0]), (sy, pic[1])))
    x0, y0 = fit.hq_box[0], fit.hq_box[1]
    u0 = max(0, int(np.ceil((-x0 - 0.5) / sx)))
    v0 = max(0, int(np.ceil((-y0 - 0.5) / sy)))
    u1 = min(pic[0], int(np.floor((hq_size[0] + 0.5 - x0) / sx)))
    v1 = min(pic[1], int(np.floor((hq_size[1] + 0.5 - y0) / sy)))
    w, h = u1 - u0, v1 - v0
    w, h = w - w % 2, h - h % 2
    box = (x0 + u0 * sx, y0 + v0 * sy, x0 + (u0 + w) * sx, y0 + (v0 + h) * sy)
    return Geometry(scale, not exact, (u0 + fit.bars[0], v0 + fit.bars[1], w, h), box)


def hq_frame(rgb: np.ndarray, geo: Geometry) -> np.ndarray:
    """The HQ output frame (H, W, 3) of a decoded original frame: its crop, or its rectangle resampled."""
    from PIL import Image

    s, (w, h) = geo.scale, geo.lq_size
    x0, y0, x1, y1 = geo.hq_box
    if not geo.hq_resampled:
        x = min(max(int(round(x0)), 0), rgb.shape[1] - s * w)
        y = min(max(int(round(y0)), 0), rgb.shape[0] - s * h)
        return rgb[y:y + s * h, x:x + s * w]
    # the fitted box may overshoot the frame by up to half an HQ pixel (see exact_geometry); PIL wants it inside
    box = (max(0.0, x0), max(0.0, y0), min(float(rgb.shape[1]), x1), min(float(rgb.shape[0]), y1))
    return np.asarray(Image.fromarray(rgb).resize((s * w, s * h), Image.Resampling.LANCZOS, box=box))


# --- the picture's place by content -----------------------------------------------------------------

@dataclass(frozen=True)
class FrameMap:
    """Where the LQ frame lies in the original: the HQ rectangle (x0, y0, x1, y1, HQ display pixels)
    that the *whole* LQ frame (w, h LQ display pixels) would show. The part of the LQ frame that shows
    the original is where that rectangle overlaps the HQ frame (`picture`), less what content trims."""

    box: tuple[float, float, float, float]
    lq_size: tuple[int, int]
    score: float = float("nan")  # the content search's correlation

    @property
    def scale(self) -> tuple[float, float]:  # HQ pixels per LQ pixel
        x0, y0, x1, y1 = self.box
        return (x1 - x0) / self.lq_size[0], (y1 - y0) / self.lq_size[1]

    def picture(self, hq_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) LQ pixels outside the HQ frame's image (whole pixels, rounded inward)."""
        (sx, sy), (x0, y0, _, _) = self.scale, self.box
        w, h = self.lq_size
        left = max(0, int(np.ceil(-x0 / sx - 0.25)))
        top = max(0, int(np.ceil(-y0 / sy - 0.25)))
        right = max(0, w - int(np.floor((hq_size[0] - x0) / sx + 0.25)))
        bottom = max(0, h - int(np.floor((hq_size[1] - y0) / sy + 0.25)))
        return left, top, right, bottom

    def hq_box(self, bars: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """The HQ rectangle the LQ picture inside `bars` shows."""
        (sx, sy), (x0, y0, _, _) = self.scale, self.box
        l, t, r, b = bars
        w, h = self.lq_size
        return x0 + l * sx, y0 + t * sy, x0 + (w - r) * sx, y0 + (h - b) * sy


def _band_pass(x, sigma: float = 1.0):
    """Frames (N, h, w) torch float minus their Gaussian blur: edges and texture, not fills or blur."""
    import torch
    from torch.nn import functional as F

    radius = max(1, int(3 * sigma))
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    y = F.pad(x[:, None], (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))[:, 0]
    return x - y


def _masked_ncc(fixed, moving, min_overlap: float):
    """Normalised cross-correlation of one fixed image (h, w) with moving images (C, hm, wm) at every
    placement of their top-left corner (dy, dx) ∈ [−hm+1, h−1] × [−wm+1, w−1], over their overlap
    only (Padfield's masked NCC, by FFT). Placements whose overlap is under `min_overlap` of the
    smaller image are −1. Returns (C, h + hm − 1, w + wm − 1), index (dy + hm − 1, dx + wm − 1)."""
    import torch

    h, w = fixed.shape
    c, hm, wm = moving.shape
    P, Q = h + hm - 1, w + wm - 1
    fft, ifft = torch.fft.rfft2, torch.fft.irfft2

    def corr(a_hat, b):  # Σ_u A(u) B(u − d), for d laid out as in the docstring
        full = ifft(a_hat * torch.conj(fft(b, s=(P, Q))), s=(P, Q))
        return torch.roll(full, shifts=(hm - 1, wm - 1), dims=(-2, -1))

    ones_f, ones_m = torch.ones_like(fixed), torch.ones((1, hm, wm))
    f_hat, f2_hat, one_hat = fft(fixed, s=(P, Q)), fft(fixed * fixed, s=(P, Q)), fft(ones_f, s=(P, Q))
    overlap = corr(one_hat, ones_m)
    sum_f, sum_f2 = corr(f_hat, ones_m), corr(f2_hat, ones_m)
    sum_m, sum_m2 = corr(one_hat, moving), corr(one_hat, moving * moving)
    sum_fm = corr(f_hat, moving)
    n = overlap.clamp(min=1.0)
    num = sum_fm - sum_f * sum_m / n
    den = ((sum_f2 - sum_f**2 / n).clamp(min=0) * (sum_m2 - sum_m**2 / n).clamp(min=0)).sqrt()
    ncc = num / (den + 1e-3 * n)
    return torch.where(overlap >= min_overlap * min(h * w, hm * wm), ncc, torch.full_like(ncc, -1.0))


# the share shows the original's picture wholly inside its frame, or its frame wholly inside the
# picture (a crop), give or take a little of both: placements that overlap less are not considered
# (the correlation of a small overlap is noisy, and a pattern repeats)
MIN_OVERLAP = 0.85


def _place(fixed, movers, hq_size, fractions):
    """Best (score, fraction, dx, dy, per-frame best candidate) of scaled HQ frames in LQ frames.

    fixed (F, h, w): band-passed LQ frames; movers: per LQ frame, HQ thumbnails (C, H', W') torch."""
    from torch.nn import functional as F

    lh, lw = fixed.shape[1:]
    hw, hh = hq_size
    base = min(lw / hw, lh / hh)
    best = (-np.inf, None, 0, 0, None)
    for f in fractions:
        wm, hm = max(4, int(round(hw * base * f))), max(4, int(round(hh * base * f)))
        total, which = None, []
        for row, hq in enumerate(movers):
            mode = {"mode": "area"} if wm <= hq.shape[2] and hm <= hq.shape[1] else {"mode": "bilinear",
                                                                                      "align_corners": False}
            moving = _band_pass(F.interpolate(hq[:, None], size=(hm, wm), **mode)[:, 0])
            ncc = _masked_ncc(fixed[row], moving, MIN_OVERLAP)
            top, arg = ncc.max(dim=0)
            total = top if total is None else total + top
            which.append(arg)
        score = float(total.max())
        if score > best[0]:
            flat = int(total.argmax())
            dy, dx = divmod(flat, total.shape[1])
            per_frame = [int(a.view(-1)[flat]) for a in which]
            best = (score, (wm, hm), dx - (wm - 1), dy - (hm - 1), per_frame, f)
    return best


def locate_picture(hq: np.ndarray, hq_times: np.ndarray, lq: np.ndarray, lq_times: np.ndarray,
                   hq_size: tuple[int, int], lq_size: tuple[int, int], max_offset_s: float = 4.0,
                   frames: int = 4, candidates: int = 16, fill: tuple[float, float] = (0.45, 1.75)) -> FrameMap:
    """Where the original's picture lies in the share, by content, whatever surrounds it (black bars,
    a colour, a blurred enlarged copy) and whether it is cropped.

    hq (N, H', W') and lq (M, h', w'): thumbnails of the whole display frames (any sizes); *_times their
    presentation times. For `frames` LQ frames spread over the first seconds, HQ frames the start
    offset allows (`max_offset_s` either way, `candidates` of them) are scaled so that they fill `fill`
    of the LQ frame (the larger of the two fractions) and correlated with the LQ frame at every
    placement, band-passed (a blurred copy correlates little) and over their overlap only. Each LQ
    frame's best candidate at each placement counts; the placement with the best sum over the LQ
    frames wins. Coarse first (LQ frames at 64 pixels, 5% scale steps), then finer around it (the
    given thumbnails, 1.5% steps, the coarse stage's best candidates and their neighbours). Aspect
    ratio is kept (per-axis differences are the fine fit's)."""
    import torch
    from torch.nn import functional as F

    hq_t = torch.from_numpy(np.ascontiguousarray(hq, dtype=np.float32))
    window = min(float(lq_times[-1]), 10.0)
    picks = sorted({int(np.argmin(np.abs(lq_times - window * q))) for q in np.linspace(0.15, 0.9, frames)})
    lq_t = torch.from_numpy(np.ascontiguousarray(lq[picks], dtype=np.float32))
    lh, lw = lq.shape[1:]
    near = []
    for j in picks:
        allowed = np.flatnonzero(np.abs(hq_times - lq_times[j]) <= max_offset_s + 1e-6)
        near.append(allowed if len(allowed) else np.array([int(np.argmin(np.abs(hq_times - lq_times[j])))]))
    # coarse
    k = 64 / max(lh, lw)
    small = F.interpolate(lq_t[:, None], size=(max(8, round(lh * k)), max(8, round(lw * k))), mode="area")[:, 0]
    sub = [n[np.linspace(0, len(n) - 1, min(candidates, len(n))).round().astype(int)] for n in near]
    steps = np.exp(np.arange(np.log(fill[0]), np.log(fill[1]) + 1e-9, 0.05))
    _, _, _, _, per_frame, f = _place(_band_pass(small), [hq_t[s] for s in sub], hq_size, steps)
    # fine, around the coarse answer
    fine = []
    for n, s, c in zip(near, sub, per_frame):
        at = int(np.searchsorted(n, s[c]))
        fine.append(n[max(0, at - 3):at + 4])
    steps = f * np.exp(np.arange(-0.06, 0.06 + 1e-9, 0.015))
    fixed = _band_pass(lq_t)
    score, (wm, hm), dx, dy, _, _ = _place(fixed, [hq_t[s] for s in fine], hq_size, steps)
    # the plainest hypothesis, scored alike: the whole original fills the frame inside its black bars
    # (kept unless the search found clearly better: a pattern can repeat at another place or scale)
    l, t, r, b = black_bars(lq[picks].astype(np.float32))
    pw, ph = lw - l - r, lh - t - b
    if pw >= 8 and ph >= 8:
        plain = 0.0
        for row, n in enumerate(fine):
            moving = _band_pass(F.interpolate(hq_t[n][:, None], size=(ph, pw), mode="area" if pw <= hq.shape[2]
                                              else "bilinear")[:, 0])
            plain += float(_masked_ncc(fixed[row], moving, MIN_OVERLAP)[:, t + ph - 1, l + pw - 1].max())
        if plain >= score - 0.15 * len(picks):  # crops score the plain hypothesis near 0
            score, wm, hm, dx, dy = plain, pw, ph, l, t
    # LQ thumbnail pixel u (centre u + 0.5) shows scaled-HQ pixel u − dx, i.e. HQ x = (u − dx)·hw/wm
    hw, hh = hq_size
    sx_t, sy_t = hw / wm, hh / hm  # HQ pixels per LQ thumbnail pixel
    box = (-dx * sx_t, -dy * sy_t, (lw - dx) * sx_t, (lh - dy) * sy_t)
    return FrameMap(box, lq_size, score / len(picks))


# --- checking each pairing at LQ resolution ---------------------------------------------------------

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


def _pic_luma(frame: np.ndarray, bars: tuple[int, int, int, int]) -> np.ndarray:
    l, t, r, b = bars
    return frame[t:frame.shape[0] - b, l:frame.shape[1] - r].astype(np.float32)


def hq_at_lq_size(frame: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """An HQ luma frame's `box` area-averaged to `size` (w, h): what the share's scaler made of it."""
    from PIL import Image

    h, w = frame.shape
    x0, y0, x1, y1 = box
    clipped = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX, box=clipped), np.float32)


def _soften(picture: np.ndarray, margin: int = 2) -> np.ndarray:
    """A picture slightly blurred, its border cut, its mean removed: what differs between neighbouring
    frames (motion) stays; the codec's noise and the scaler's kernel weigh less."""
    from scipy.ndimage import gaussian_filter

    a = gaussian_filter(picture, 0.7)[margin:picture.shape[0] - margin, margin:picture.shape[1] - margin]
    return a - a.mean()


def _error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def _residual(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - (a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))


def fit_rounding(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = (-2.5, 2.5), step: float = 0.01) -> float:
    """The share's rounding θ (`rounding_fit`, whose docstring says how)."""
    return rounding_fit(errors, position, prior, span, step)[0]


def rounding_fit(errors: list[dict[int, float]], position: np.ndarray, prior: float = 0.05,
                 span: tuple[float, float] = (-2.5, 2.5), step: float = 0.01) -> tuple[float, float]:
    """The share's rounding θ: LQ frame j shows HQ frame floor(p_j + 1 − θ), p_j its fractional
    position by the timestamps. Nearest-frame resampling is θ = 0.5, the frame on screen θ = 1, the
    next frame θ near 0, ffmpeg's constant-rate output (`-r`, which drops a frame only once it is 1.1
    frames late) θ a little above 1; a start offset that is a frame or two off shifts θ by as much.

    errors: per frame, {HQ index k: error at LQ size} (`lq_size_errors`). Every θ on a grid over
    `span` is scored by the sum over frames of log(error of the frame it names / the frame's smallest
    error) (capped at log 3, also where it names a frame not measured), plus `prior` per frame times
    |θ − 0.5| / 0.5 (capped at 1): encoders make a frame look a little like the one before, so a
    content preference worth less than ~5% of error per frame does not move the rule off nearest.
    Returns the middle of the first run of best-scoring θ and that score (0.5 and 0 when there are
    no frames).
    """
    n = len(errors)
    if not n:
        return 0.5, 0.0
    position = np.asarray(position[:n], np.float64)
    table, lo = log_ratio_table(errors)  # log error ratio of HQ frame lo + column, capped
    grid = np.arange(span[0], span[1], step)
    col = np.floor(position[None, :] + 1 - grid[:, None] + 1e-9).astype(np.int64) - lo  # (grid, n)
    inside = (col >= 0) & (col < table.shape[1])
    total = np.where(inside, table[np.arange(n)[None, :], np.clip(col, 0, table.shape[1] - 1)], CAP).sum(axis=1)
    total += n * prior * np.minimum(np.abs(grid - 0.5), 0.5) / 0.5
    best = np.flatnonzero(total <= total.min() + 1e-9)
    run = best[:np.argmax(np.diff(np.concatenate([best, [best[-1] + 2]])) > 1) + 1]
    return float(grid[run].mean()), float(total.min())


@dataclass(frozen=True)
class FrameErrors:
    """What the LQ-size comparison measured, per mapped LQ frame j (`lq_size_errors`)."""

    errors: list[dict[int, float]]  # {HQ index k: mean squared difference with HQ frame k at LQ size}
    residuals: list[dict[int, float]]  # {k: 1 − correlation}
    lq_step: np.ndarray  # mean squared difference with LQ frame j − 1 (inf for the first): small where it repeats


def lq_size_errors(hq_frames, lq_frames, mapping: np.ndarray, lq_first: int, box, bars,
                   reach: int = 3, also: np.ndarray | None = None) -> FrameErrors:
    """Per LQ frame lq_first + j: {HQ index k: error} and {k: residual} for k = mapping[j] − reach …
    + reach (those in the video), and as far as also[j] ± reach where `also` (e.g. the frame the
    timestamps name) is given and within 8 frames, compared at LQ size, and the difference from
    the LQ frame before.

    hq_frames / lq_frames: iterators of (index, full-resolution luma) in display order (both videos
    decoded once, side by side; 2·reach + 1 HQ frames are held). Each HQ frame is cut to `box` and
    area-averaged to the LQ picture (the frame less `bars`); both are slightly blurred, their borders
    cut and their means removed (`_soften`); the error is the mean squared difference, the residual
    1 − their correlation."""
    mapping = np.asarray(mapping, np.int64)
    n = len(mapping)
    other = mapping if also is None else np.clip(np.asarray(also[:n], np.int64), mapping - 8, mapping + 8)
    lows, highs = np.minimum(mapping, other) - reach, np.maximum(mapping, other) + reach
    keep_from = np.minimum.accumulate(lows[::-1])[::-1]  # HQ frames below this are not needed again
    cache: dict[int, np.ndarray] = {}
    hq_iter = iter(hq_frames)
    next_hq, exhausted = 0, False
    errors, residuals, steps = [], [], []
    previous = None
    last = lq_first + n - 1
    try:
        for i, lq in lq_frames:
            if i < lq_first:
                continue
            if i > last:
                break
            pic = _pic_luma(lq, bars)
            size = (pic.shape[1], pic.shape[0])
            pic = _soften(pic)
            steps.append(np.inf if previous is None else _error(pic, previous))
            previous = pic
            j = i - lq_first
            m, lo, hi = int(mapping[j]), int(lows[j]), int(highs[j])
            while not exhausted and next_hq <= hi:
                try:
                    k, frame = next(hq_iter)
                except StopIteration:
                    exhausted = True
                    break
                cache[k] = _soften(hq_at_lq_size(frame, box, size))
                next_hq = k + 1
            for k in [k for k in cache if k < keep_from[j]]:
                del cache[k]
            if m not in cache:
                raise UvssmError(f"HQ frame {m} is not in the HQ video")
            candidates = [k for k in range(lo, hi + 1) if k in cache]
            errors.append({k: _error(pic, cache[k]) for k in candidates})
            residuals.append({k: _residual(pic, cache[k]) for k in candidates})
    finally:
        for stream in (hq_frames, lq_frames):
            if hasattr(stream, "close"):
                stream.close()
    if len(errors) < n:
        raise UvssmError(f"{len(errors)} LQ frames decoded for the check, {n} expected")
    return FrameErrors(errors, residuals, np.array(steps))


def refine_mapping(hq_frames, lq_frames, mapping: np.ndarray, lq_first: int, box, bars,
                   position: np.ndarray | None = None, ratio: float = 0.5,
                   rates: tuple[Fraction, Fraction] | None = None, n_hq: int = 0) -> tuple[np.ndarray, SelfCheck]:
    """Check, and where the content is clear correct, each pairing at LQ resolution
    (`lq_size_errors`, then `choose_frames`)."""
    # around the programme's choice and the frame the timestamps name (they differ where the programme
    # started a few frames off after an intro)
    also = None if position is None else np.rint(np.asarray(position, np.float64)[:len(mapping)])
    measured = lq_size_errors(hq_frames, lq_frames, mapping, lq_first, box, bars, also=also)
    return choose_frames(measured.errors, measured.residuals, mapping, position, ratio, rates, n_hq)


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
    by_theta = np.floor(np.asarray(position[:len(errors)], np.float64) + 1 - theta + 1e-9)
    if np.mean(fit.mapping != by_theta) <= CHAIN_DIFFER:  # pairs as θ does: a few frames' noise
        return theta, None
    return theta, fit


def choose_frames(errors: list[dict[int, float]], residuals: list[dict[int, float]], mapping: np.ndarray,
                  position: np.ndarray | None = None, ratio: float = 0.5,
                  rates: tuple[Fraction, Fraction] | None = None, n_hq: int = 0) -> tuple[np.ndarray, SelfCheck]:
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
    theta, chain = timing_rule(errors, pos, rates if position is not None else None, n_hq)
    chained = None if chain is None else chain.mapping
    advance = rates is None or rates[1] <= rates[0]
    moved = flagged = ahead = behind = 0
    previous = timed = -1
    for j in range(n):
        e, m = errors[j], int(mapping[j])
        if chained is not None:  # the chain's drops and repeats are its own
            timed = int(chained[j])
        else:
            choice = int(np.floor(pos[j] + 1 - theta + 1e-9))
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
    rule = f"rounding θ {theta:.2f}" if chain is None else chain.chain.describe(rates[1])
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


# --- one pair, end to end ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AlignOptions:
    """How far `align_pair` looks and when it refuses (the `uvssm build` options of the same names)."""

    frames: int | None = 100  # LQ frames checked at LQ size from the first matched one (None: all)
    max_offset_s: float = 4.0  # the share may start this far into the original, or this much intro before it
    min_margin: float = 0.10  # the start offset's cost margin over the next best (on thumbnails) ...
    confirm_distinct: float = 0.20  # ... unless the check at LQ size fits at least this distinctly
    max_neighbour_better: float = 0.05  # check: share of frames a neighbouring HQ frame may fit clearly better
    max_next_better: float = 0.15  # check: share of frames the next HQ frame may fit better at all (1: off) ...
    confirm_next_distinct: float = 0.05  # ... unless the chosen frames fit at least this distinctly (median)
    min_distinct: float = 0.0  # check: how much better chosen frames must fit than their neighbours (median)
    max_residual: float = 0.5  # check: 1 − correlation of the LQ picture with its HQ box (median)
    allow_hdr: bool = False  # accept 10-bit / HDR sources


NEXT_BETTER_FRAMES = 3  # the next-frame check refuses only when at least this many frames fit the next frame better
THUMB = (64, 36)  # compared in time
HQ_THUMB = (128, 72)  # kept per HQ frame: the picture's place is searched in these, the match resampled from them
LQ_THUMB = 160  # the LQ frames' longer side, aspect kept (the picture may be a part of the frame)


@dataclass(frozen=True)
class PairAlignment:
    hq: VideoProbe
    lq: VideoProbe
    match: TemporalMatch
    fit: SpatialFit
    pic: tuple[int, int]  # LQ picture size without bars
    timing: str  # where the timestamps came from
    frame_map: FrameMap  # where the content search put the picture (before the fine fit)
    check: SelfCheck | None = None  # None: not checked
    rounds: int = 1  # offset/box rounds until both were stable


def timestamps(info, n_decoded: int) -> tuple[np.ndarray, str]:
    """Presentation times of the decoded frames: the container's, or a constant rate where they disagree."""
    from uvssm.base.probe import decoded_frame_times, frame_times

    times = frame_times(info.path)
    if len(times) == n_decoded:
        return times, "container timestamps"
    decoded = decoded_frame_times(info.path)  # some packets decode to nothing: the frames' own times
    if len(decoded) == n_decoded and np.isfinite(decoded).all() and np.all(np.diff(decoded) > 0):
        return decoded, f"decoded frames' timestamps ({len(times)} packets for {n_decoded} frames)"
    rate = info.avg_fps or info.real_fps or 25.0
    return np.arange(n_decoded) / rate, f"constant {rate:.3f} fps ({len(times)} timestamps for {n_decoded} frames)"


def _rates(hq_times: np.ndarray, lq_times: np.ndarray) -> tuple[Fraction, Fraction] | None:
    """(HQ rate, LQ rate) where both videos run at a constant rate (`rate_chain.constant_rate`), else None."""
    hq_rate, lq_rate = constant_rate(hq_times), constant_rate(lq_times)
    return (hq_rate, lq_rate) if hq_rate and lq_rate else None


def _thumb_box(box, size_from: tuple[int, int], size_to: tuple[int, int]):
    fx, fy = size_to[0] / size_from[0], size_to[1] / size_from[1]
    return box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy


def align_videos(ffmpeg, hq_info, lq_info, **options) -> PairAlignment:
    """`_align_videos` (its docstring says how), with every failure naming the share's file."""
    try:
        return _align_videos(ffmpeg, hq_info, lq_info, **options)
    except UvssmError as exc:
        if str(exc).startswith((str(lq_info.path), str(hq_info.path))):
            raise
        raise UvssmError(f"{lq_info.path}: {exc}") from None


def _align_videos(ffmpeg, hq_info, lq_info, *, max_offset_s: float = 4.0, frames: int | None = None,
                  check: bool = True, rounds: int = 4) -> PairAlignment:
    """Match an original (HQ) and its share (LQ) in time and space (raises UvssmError when it fails).

    1. One streaming pass per video keeps thumbnails (HQ 128×72, LQ at 160 pixels, aspect kept).
    2. `locate_picture`: where the picture lies in the share and at what scale, by content.
    3. Rounds of: the temporal match on thumbnails of that rectangle (`temporal_match`), then the
       fine spatial fit on full-resolution matched frames (`spatial_fit`) and the picture's extent
       from it, until the start offset and the rectangle stop changing: the offset never rests on a
       rectangle found before it.
    4. `refine_mapping` on the frames to be written (`frames`; None: all), at LQ size: ties moved to
       the clearly better neighbour, and the self-check.
    """
    from dataclasses import replace
    from fractions import Fraction

    from uvssm.base.decode import gray_frames

    hq_size, lq_size = hq_info.display_size, lq_info.display_size
    k = LQ_THUMB / max(lq_size)
    lq_thumb_size = (max(8, round(lq_size[0] * k)), max(8, round(lq_size[1] * k)))
    hq_big = np.stack([f for _, f in gray_frames(ffmpeg, hq_info, HQ_THUMB)])
    lq_big = np.stack([f for _, f in gray_frames(ffmpeg, lq_info, lq_thumb_size)])
    hq_times, hq_timing = timestamps(hq_info, len(hq_big))
    lq_times, lq_timing = timestamps(lq_info, len(lq_big))
    frame_map = locate_picture(hq_big, hq_times, lq_big, lq_times, hq_size, lq_size, max_offset_s)
    bars = frame_map.picture(hq_size)
    if lq_size[0] - bars[0] - bars[2] < 16 or lq_size[1] - bars[1] - bars[3] < 16:
        raise UvssmError(f"{lq_info.path}: the picture found is only {lq_size[0] - bars[0] - bars[2]}x"
                         f"{lq_size[1] - bars[1] - bars[3]} LQ pixels: too small to align")
    box = frame_map.hq_box(bars)
    time_bases = (float(Fraction(hq_info.time_base)), float(Fraction(lq_info.time_base)))
    seen = []
    for round_ in range(1, rounds + 1):
        l, t, r, b = bars
        hq_thumb = resample_box(hq_big, _thumb_box(box, hq_size, HQ_THUMB), THUMB)
        lq_thumb = resample_box(lq_big, _thumb_box((l, t, lq_size[0] - r, lq_size[1] - b), lq_size, lq_thumb_size),
                                THUMB)
        match = temporal_match(hq_thumb, lq_thumb, hq_times, lq_times, max_offset_s=max_offset_s,
                               time_bases=time_bases)
        n = len(match.mapping) if frames is None else min(frames, len(match.mapping))
        sample = sorted(set(np.linspace(0, n - 1, min(8, n)).round().astype(int).tolist()))
        hq_full = dict(gray_frames(ffmpeg, hq_info, None, {int(match.mapping[j]) for j in sample}))
        lq_full = dict(gray_frames(ffmpeg, lq_info, None, {match.lq_first + j for j in sample}))
        fit = spatial_fit(np.stack([hq_full[int(match.mapping[j])] for j in sample]).astype(np.float32),
                          np.stack([lq_full[match.lq_first + j] for j in sample]).astype(np.float32), box, bars)
        # the whole LQ frame's rectangle, from the fit of the picture; the picture's extent from it
        (sx, sy), (x0, y0, _, _) = fit.scale, fit.hq_box
        whole = FrameMap((x0 - l * sx, y0 - t * sy, x0 + (lq_size[0] - l) * sx, y0 + (lq_size[1] - t) * sy),
                         lq_size, frame_map.score)
        new_bars = whole.picture(hq_size)
        state = (match.offset_seconds, match.lq_first, new_bars)
        if state in seen or round_ == rounds:
            break
        seen.append(state)
        bars, box = new_bars, whole.hq_box(new_bars)
    x0, y0, x1, y1 = fit.hq_box
    hw, hh = hq_size
    if not (x1 - x0 > 8 and y1 - y0 > 8 and x0 < hw and y0 < hh and x1 > 0 and y1 > 0):
        raise UvssmError(f"{lq_info.path}: the spatial fit failed: the LQ picture would show HQ box "
                         f"({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) of a {hw}x{hh} frame")
    pic = (lq_size[0] - fit.bars[0] - fit.bars[2], lq_size[1] - fit.bars[1] - fit.bars[3])
    result = PairAlignment(hq_info, lq_info, match, fit, pic, f"HQ: {hq_timing}; LQ: {lq_timing}", frame_map,
                           None, round_)
    if not check:
        return result
    last = match.lq_first + n - 1
    mapping, report = refine_mapping(gray_frames(ffmpeg, hq_info, None), gray_frames(ffmpeg, lq_info, None,
                                                                                      set(range(match.lq_first, last + 1))),
                                     match.mapping[:n], match.lq_first, fit.hq_box, fit.bars,
                                     match.timing, rates=_rates(hq_times, lq_times), n_hq=len(hq_times))
    full = match.mapping.copy()
    full[:n] = mapping
    full = np.maximum.accumulate(full)
    # how the final pairing departs from the timestamps under the share's rounding
    rule = np.floor(match.timing[:n] + 1 - report.rounding + 1e-9).astype(np.int64)
    departs = mapping - rule
    change = np.diff(departs)
    match = replace(match, off_timing=int(np.count_nonzero(departs)), dropped=int(change[change > 0].sum()),
                    repeated=int(-change[change < 0].sum()))
    return replace(result, match=replace(match, mapping=full), check=report)


def align_pair(pair, ffmpeg, options: AlignOptions = AlignOptions()) -> PairAlignment:
    """Probe, match in time and fit in space one video pair (`uvssm.base.pairs.Pair`: its .hq and .lq
    paths), then check it; raises UvssmError naming the measured cause when a source is 10-bit/HDR
    (unless allowed), or the pairing is not distinct or does not hold up at LQ resolution."""
    hq_info, lq_info = probe(pair.hq), probe(pair.lq)
    for info in (hq_info, lq_info):
        if (info.bit_depth > 8 or info.is_hdr) and not options.allow_hdr:
            raise UvssmError(f"{info.path}: {info.bit_depth}-bit {info.color_transfer} source (pass --allow-hdr to accept)")
    a = align_videos(ffmpeg, hq_info, lq_info, max_offset_s=options.max_offset_s, frames=options.frames)
    m, box = a.match, ", ".join(f"{x:.1f}" for x in a.fit.hq_box)
    found = f"picture {a.pic[0]}x{a.pic[1]} at LQ bars {a.fit.bars} showing HQ box ({box}), start offset {m.offset_seconds:+.3f} s"
    c = a.check
    # the start offset is chosen on thumbnails; the check at LQ size is the stronger witness: an
    # offset the thumbnails barely prefer is kept when at LQ size its frames fit clearly better than
    # their neighbours (a start a frame or more off fits a neighbour better on most frames)
    confirmed = c is not None and c.distinct >= options.confirm_distinct
    if m.offset_margin < options.min_margin and not confirmed:
        at_lq = "" if c is None else (f"; at LQ size its frames fit only {c.distinct:+.1%} better than their "
                                       f"neighbours (--confirm-distinct is {options.confirm_distinct:.0%})")
        raise UvssmError(
            f"{pair.lq}: alignment not distinct: the chosen start offset ({m.offset_seconds:+.3f} s, cost "
            f"{m.offset_cost:.3f}) is only {m.offset_margin:.1%} better than the next best "
            f"({m.next_offset_cost:.3f}); --min-margin is {options.min_margin:.0%}{at_lq} ({found})")
    if c is None:  # not checked
        return a
    if c.neighbour_better > options.max_neighbour_better:
        raise UvssmError(
            f"{pair.lq}: self-check failed: in {c.neighbour_better:.1%} of {c.frames} frames a neighbouring HQ frame "
            f"fits the LQ frame better than the chosen one (limit {options.max_neighbour_better:.0%}; box residual "
            f"{c.residual:.3f}; {found})")
    # a frame or two of a short clip is noise (a still stretch, a scene's first frame): the count counts too.
    # Where the picture barely changes between frames (a small, slow clip), noise makes the next frame fit
    # a little better on both sides of the chosen one alike; the pairing stands where its chosen frames
    # still fit clearly better than their neighbours overall (a pairing that runs behind fits them worse)
    if (c.next_better > options.max_next_better and round(c.next_better * c.frames) >= NEXT_BETTER_FRAMES
            and not c.distinct >= options.confirm_next_distinct):
        raise UvssmError(
            f"{pair.lq}: self-check failed: in {c.next_better:.1%} of {c.frames} frames the next HQ frame fits the "
            f"LQ frame better than the chosen one (limit {options.max_next_better:.0%}, and {NEXT_BETTER_FRAMES} "
            f"frames), and the chosen frames fit only {c.distinct:+.1%} better than their neighbours (median; "
            f"--confirm-next-distinct is {options.confirm_next_distinct:.0%}): codecs lag, they do not lead, so the "
            f"content does not confirm this pairing ({found})")
    if not c.distinct >= options.min_distinct:
        raise UvssmError(
            f"{pair.lq}: self-check failed: at LQ size the chosen HQ frames fit their LQ frames by {c.distinct:+.1%} "
            f"better than their neighbours (median over {c.frames} frames; at least {options.min_distinct:.0%} "
            f"needed): the pairing cannot be told from its neighbours ({found})")
    if c.residual > options.max_residual:
        raise UvssmError(
            f"{pair.lq}: self-check failed: the HQ box fits the LQ picture with residual {c.residual:.3f} "
            f"(1 − correlation, median over {c.frames} frames; limit {options.max_residual}; {found})")
    return a
