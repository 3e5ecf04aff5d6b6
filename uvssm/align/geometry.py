"""Which HQ rectangle the LQ picture shows: black bars, the per-axis and whole-frame fits on matched
full-resolution frames (`spatial_fit`), and the integer-scale cut of the output frames
(`exact_geometry`, `hq_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.base.errors import UvssmError


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


def picture_region(frames: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) LQ pixels of solid fill around the picture, found from the share's
    own frames (N, h, w) as ffmpeg's cropdetect finds black bars, for any fill colour: from each side
    inward, the columns (rows) that hold the fill value of that side's outermost one on all but 1% of
    their pixels in every frame (the codec's ringing leaks a little picture into the fill next to it).
    The fill's value is the outermost line's median; "holds" is within 3 standard deviations of the
    outermost line's own noise, and at least 2 levels (8-bit rounding of the colour conversion); then,
    as the codec blurs the edge over its blocks, the edge is where the mean deviation from the fill
    crosses halfway from the fill's to the picture's (8-16 lines inside the fill's end). A
    side whose outermost line varies like a picture (its noise above 8 levels, a JPEG-like codec's
    at its worst on a flat area) has no fill. A blurred fill is not solid: it is found by content
    (`picture.locate_picture`)."""
    f = np.asarray(frames, np.float32)
    _, h, w = f.shape

    def run(lines: np.ndarray) -> int:  # lines: (L, N, n) outermost first
        outer = lines[0]
        noise = float(outer.std())
        if noise > 8.0:
            return 0
        value, tol = float(np.median(outer)), max(3.0 * noise, 2.0)
        n = 0
        for line in lines:
            if np.mean(np.abs(line - value) > tol) > 0.01:
                break
            n += 1
        if n == 0 or n >= len(lines):
            return 0
        # the codec blurs the edge over a few lines (its blocks straddle it): the edge is where the mean
        # deviation from the fill crosses halfway from the fill's to the picture's, 8-16 lines inside
        dev = np.abs(lines[:n + 16] - value).mean(axis=(1, 2))
        inside = float(np.median(dev[n + 8:n + 16])) if len(dev) > n + 8 else float(dev[-1])
        half = (float(dev[:n].mean()) + inside) / 2
        edge = n + int(np.argmax(dev[n:] >= half)) if (dev[n:] >= half).any() else n
        return edge

    cols = np.moveaxis(f, 2, 0)  # (w, N, h)
    rows = np.moveaxis(f, 1, 0)  # (h, N, w)
    return run(cols), run(rows), run(cols[::-1]), run(rows[::-1])
