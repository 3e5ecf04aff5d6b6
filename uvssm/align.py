"""Aligning a shared (LQ) video with its original (HQ): which HQ frame each LQ frame shows, and
which HQ rectangle the LQ picture covers.

Temporal (`temporal_match`): timestamps first, content to confirm. Every frame's presentation time
places each LQ frame in the original; content (luma thumbnails normalised per frame) picks the
start offset, and a monotonic dynamic programme banded around the timestamps moves a frame off
them only where the content clearly disagrees (drops and repeats the timestamps do not show).
The start offset's margin over the next best is the alignment's confidence.

Spatial: black bars (`black_bars`), a coarse HQ rectangle from time-averaged profiles
(`coarse_box`, for crops), then the rectangle the LQ picture shows, fitted one axis at a time on
matched frames near that guess (`spatial_fit`: mean luma profiles compared over a grid of scales
and sub-pixel offsets) and refined on whole blurred frames. `exact_geometry` turns the fit into the
integer-scale cut of the output frames (`Geometry`), and `hq_frame` cuts an original frame by it.
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

    mapping[j]: HQ index of LQ frame j (non-decreasing), for the LQ frames that fall inside the HQ
    video (`len(mapping)` may be below the LQ frame count when the share runs past the original).
    """

    mapping: np.ndarray
    cost: np.ndarray  # per LQ frame: 2 − 2·corr of its thumbnail with the chosen HQ one
    offset_frames: int  # HQ frame that LQ frame 0 shows, by content
    offset_seconds: float  # HQ time at LQ time 0
    offset_margin: float  # (next-best offset's cost − chosen's) / next-best's: how distinct the start is
    offset_cost: float
    next_offset_cost: float
    agreement: float  # share of LQ frames whose chosen HQ frame is also the best of its ±1 neighbours
    off_timing: int  # LQ frames mapped away from where the timestamps (after the offset) put them
    dropped: int  # HQ frames skipped beyond what the timestamps say
    repeated: int  # LQ frames that repeat an HQ frame although the timestamps say it moved on
    unmatched_tail: int  # LQ frames past the end of the HQ video (not mapped)
    motion_contrast: float  # median cost change between neighbouring HQ frames (the penalty's unit)


def temporal_match(hq: np.ndarray, lq: np.ndarray, hq_times: np.ndarray, lq_times: np.ndarray, *,
                   max_offset_s: float = 4.0, band: int = 12, change_penalty: float = 2.0, off_penalty: float = 0.5,
                   time_bases: tuple[float, float] = (0.0, 0.0), offset_frames_used: int = 150) -> TemporalMatch:
    """Map LQ frames to HQ frames: timestamps first, content to find the start and to confirm.

    hq, lq: thumbnails (N, h, w) of one size; *_times: each frame's presentation time (seconds).
    1. Start offset: for each HQ frame k within `max_offset_s`, LQ frame j is put at HQ time
       t_hq[k] + t_lq[j]; the mean thumbnail cost over the first `offset_frames_used` LQ frames
       scores k. The chosen offset's margin over the best one at least 2 frames away is the
       offset confidence.
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
        return np.where(t > hq_times[-1], hq_index[-1] + (t - hq_times[-1]) / max(step, 1e-9), pos)

    # 1. the start offset, by content
    candidates = [k for k in range(n_hq) if hq_times[k] <= max_offset_s + 1e-9] or [0]
    used = np.arange(min(len(a), offset_frames_used))
    scores = []
    for k in candidates:
        idx = np.rint(positions(hq_times[k])[used]).astype(np.int64)[:, None]
        c = _costs(a, b, used, idx)[:, 0]
        c = c[np.isfinite(c)]
        scores.append(float(c.mean()) if len(c) else np.inf)
    scores = np.array(scores)
    best = int(np.argmin(scores))
    others = [s for k, s in enumerate(scores) if abs(k - best) >= 2 and np.isfinite(s)]
    next_best = min(others) if others else np.inf
    margin = 1.0 if not np.isfinite(next_best) else float((next_best - scores[best]) / max(next_best, 1e-9))
    offset_s = float(hq_times[candidates[best]])

    # 2. the banded programme around the timestamp prior
    pos = positions(offset_s)
    # LQ frames the band can still place inside the HQ video (repeats that the timestamps do not
    # show make a share run past the original's end by timing, not by content)
    n = int(np.count_nonzero(pos <= n_hq - 1 + band - 1))
    if n == 0:
        raise UvssmError("no LQ frame falls inside the HQ video after the start offset")
    pos = pos[:n]
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
    sides = [neighbour[:, k] - neighbour[:, 1] for k in (0, 2)]
    medians = [float(np.median(d[np.isfinite(d)])) for d in sides if np.isfinite(d).any()]
    contrast = max(max(medians, default=0.0), 1e-4)
    lam, mu = change_penalty * contrast, off_penalty * contrast

    centre = np.zeros(n, dtype=np.int64)
    for _ in range(8):
        drift, chosen, total_cost = _banded_path(a, b, base, alt, tie, centre, band, lam, mu)
        rel = drift - centre
        if np.abs(rel).max() < band or band >= n_hq:
            break
        centre = np.rint(_running_median(drift)).astype(np.int64)
    # a share that runs past the original: trailing frames held on its last frame that the content
    # does not support are left unmatched
    typical = float(np.median(total_cost))
    while n > 1 and chosen[n - 1] == n_hq - 1 and chosen[n - 2] == n_hq - 1 and total_cost[n - 1] > 2 * typical + lam:
        n -= 1
    mapping, cost, drift, rows = chosen[:n], total_cost[:n], drift[:n], rows[:n]
    mid = _costs(a, b, rows, np.stack([mapping - 1, mapping, mapping + 1], axis=1))
    agree = float(np.mean(mid[:, 1] <= np.minimum(mid[:, 0], mid[:, 2]) + 1e-6))
    change = np.diff(drift)
    return TemporalMatch(
        mapping=mapping, cost=cost, offset_frames=int(candidates[best]), offset_seconds=offset_s,
        offset_margin=margin, offset_cost=float(scores[best]), next_offset_cost=float(next_best),
        agreement=agree, off_timing=int(np.count_nonzero(drift)), dropped=int(change[change > 0].sum()),
        repeated=int(-change[change < 0].sum()), unmatched_tail=len(lq) - n, motion_contrast=contrast)


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


def coarse_box(hq: np.ndarray, lq: np.ndarray) -> tuple[float, float, float, float]:
    """The HQ rectangle (x0, y0, x1, y1, in hq's pixels) that the LQ picture shows, from frames of one
    stretch of both videos, hq (N, H, W) and lq (M, h, w), not matched frame for frame: their mean row
    and column profiles barely depend on the start offset. Crops of up to 40% of an axis are found."""
    boxes = []
    for axis in (1, 0):  # x from column profiles, then y from row profiles
        h_prof, l_prof = hq.mean(axis=(0, 1 + (1 - axis))), lq.mean(axis=(0, 1 + (1 - axis)))
        offset, scale, _ = _fit_axis(l_prof, h_prof, len(h_prof) / len(l_prof), scale_range=(0.6, 1.03))
        boxes.append((offset, offset + len(l_prof) * scale))
    (x0, x1), (y0, y1) = boxes
    return x0, y0, x1, y1


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


def spatial_fit(hq: np.ndarray, lq: np.ndarray, guess: tuple[float, float, float, float] | None = None) -> SpatialFit:
    """Fit the HQ rectangle that matched frames hq (N, H, W) and lq (N, h, w) show (full resolution
    luma), searching near `guess` (an HQ box, e.g. from `coarse_box`) when given."""
    bars = black_bars(lq)
    l, t, r, b = bars
    pic = lq[:, t:lq.shape[1] - b, l:lq.shape[2] - r]
    if pic.shape[1] < 8 or pic.shape[2] < 8:
        raise UvssmError("the LQ picture is black or too small to align")
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
