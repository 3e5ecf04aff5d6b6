"""Aligning a shared (LQ) video with its original (HQ): which HQ frame each LQ frame shows, and
which HQ rectangle the LQ picture covers.

Temporal: both videos are decoded to small luma thumbnails, normalised per frame (zero mean, unit
variance, so scaling, range and small crops matter little). A dynamic programme then picks, for
every LQ frame in order, an HQ frame that never goes backwards (a repeated LQ frame may map to the
same HQ frame, a dropped one is a skipped HQ frame), minimising the thumbnail distance plus a small
penalty for steps that differ from the frame-rate ratio. The start offset falls out of the same
programme (the first LQ frame may match any of the first `max_offset` HQ frames).

Spatial: black bars are found from the LQ frames' row and column means. The HQ rectangle is then
fitted one axis at a time: the LQ picture's mean luma profile along x (and y) is compared with the
HQ profile resampled at `offset + u·scale`, over a grid of scales around the size ratio and
sub-pixel offsets, on the matched frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from uvssm.errors import UvssmError
from uvssm.probe import probe


def luma_frames(path: str | Path, size: tuple[int, int] | None = None, rotation: int = 0,
                indices: set[int] | None = None) -> np.ndarray:
    """Luma of every frame (or of `indices`) as (N, h, w) float32, resized to `size` (w, h) if given,
    rotated by the display rotation (degrees counter-clockwise)."""
    out = []
    last = max(indices, default=-1) if indices is not None else None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if indices is not None and i not in indices:
                    if i > last:
                        break  # every wanted frame is decoded
                    continue
                w, h = (frame.width, frame.height)
                if size is not None:
                    w, h = (size[1], size[0]) if rotation in (90, 270) else size
                y = frame.reformat(width=w, height=h, format="gray").to_ndarray().astype(np.float32)
                out.append(np.rot90(y, rotation // 90) if rotation else y)
    except av.error.FFmpegError as exc:
        raise UvssmError(f"{path}: decoding failed ({str(exc).splitlines()[0]})") from None
    if not out:
        raise UvssmError(f"{path}: no frames decoded")
    return np.stack(out)


def _normalise(frames: np.ndarray) -> np.ndarray:
    flat = frames.reshape(len(frames), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (flat.std(axis=1, keepdims=True) + 1e-3)


def temporal_match(hq: np.ndarray, lq: np.ndarray, fps_hq: float, fps_lq: float, *, max_offset: int = 60,
                   max_step: int | None = None, step_penalty: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Map LQ frames to HQ frames. hq, lq: thumbnails (N, h, w) of one size.

    Returns (mapping, cost): mapping[j] is the HQ index of LQ frame j (non-decreasing), cost[j]
    its normalised squared distance (0 = identical up to brightness and contrast).
    """
    a, b = _normalise(lq), _normalise(hq)
    # distance of every LQ frame to every HQ frame: mean((a - b)²) = 2 − 2·corr
    cost = 2.0 - 2.0 * (a @ b.T) / a.shape[1]  # (N_lq, N_hq)
    ratio = fps_hq / fps_lq
    max_step = max_step or int(np.ceil(ratio * 2)) + 2
    n_lq, n_hq = cost.shape
    inf = np.inf
    total = np.full((n_lq, n_hq), inf)
    back = np.zeros((n_lq, n_hq), dtype=np.int64)
    total[0, :min(max_offset + 1, n_hq)] = cost[0, :min(max_offset + 1, n_hq)]
    steps = np.arange(0, max_step + 1)
    penalty = step_penalty * np.abs(steps - ratio) / max(ratio, 1.0)
    for j in range(1, n_lq):
        best = np.full(n_hq, inf)
        arg = np.zeros(n_hq, dtype=np.int64)
        for step, pen in zip(steps, penalty):
            prev = np.full(n_hq, inf)
            prev[step:] = total[j - 1, :n_hq - step] + pen
            better = prev < best
            best[better] = prev[better]
            arg[better] = step
        total[j] = best + cost[j]
        back[j] = arg
    end = int(np.argmin(total[-1]))
    if not np.isfinite(total[-1, end]):
        raise UvssmError("no monotonic frame mapping fits (the LQ video is longer than the HQ video allows)")
    mapping = np.zeros(n_lq, dtype=np.int64)
    mapping[-1] = end
    for j in range(n_lq - 1, 0, -1):
        mapping[j - 1] = mapping[j] - back[j, mapping[j]]
    return mapping, cost[np.arange(n_lq), mapping]


def black_bars(lq: np.ndarray, threshold: float = 24.0) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) widths of black bars common to all frames (luma below threshold)."""
    rows, cols = lq.max(axis=(0, 2)), lq.max(axis=(0, 1))
    def run(values):
        n = 0
        for v in values:
            if v >= threshold:
                break
            n += 1
        return n
    return run(cols), run(rows), run(cols[::-1]), run(rows[::-1])


def _fit_axis(lq_profile: np.ndarray, hq_profile: np.ndarray, nominal: float) -> tuple[float, float, float]:
    """Best (offset, scale) with lq[u] ≈ hq(offset + (u + 0.5)·scale − 0.5): grid search, then refine."""
    n = len(lq_profile)
    x = np.arange(n) + 0.5
    lq_c = lq_profile - lq_profile.mean()

    def score(offset, scale):
        pos = offset + x * scale - 0.5
        if pos[0] < -0.5 or pos[-1] > len(hq_profile) - 0.5:
            return np.inf
        sampled = np.interp(pos, np.arange(len(hq_profile)), hq_profile)
        return float(np.mean((lq_c - (sampled - sampled.mean())) ** 2))

    best = (np.inf, 0.0, nominal)
    span = len(hq_profile) - n * nominal
    for scale in nominal * (1 + np.linspace(-0.03, 0.03, 61)):
        for offset in np.arange(-2.0, max(span, 0) + 24, 1.0):
            s = score(offset, scale)
            if s < best[0]:
                best = (s, offset, scale)
    _, offset, scale = best
    for step_o, step_s in ((0.5, nominal * 0.0025), (0.1, nominal * 0.0005), (0.02, nominal * 0.0001)):
        candidates = [(score(offset + do, scale + ds), offset + do, scale + ds)
                      for do in np.arange(-5, 6) * step_o for ds in np.arange(-5, 6) * step_s]
        best = min(candidates)
        _, offset, scale = best
    return offset, scale, best[0]


@dataclass(frozen=True)
class SpatialFit:
    bars: tuple[int, int, int, int]  # LQ black bars (left, top, right, bottom)
    hq_box: tuple[float, float, float, float]  # HQ rectangle (x0, y0, x1, y1) shown by the LQ picture
    scale: tuple[float, float]  # HQ pixels per LQ pixel (x, y)


def spatial_fit(hq: np.ndarray, lq: np.ndarray) -> SpatialFit:
    """Fit the HQ rectangle that matched frames hq (N, H, W) and lq (N, h, w) show (full resolution luma)."""
    bars = black_bars(lq)
    l, t, r, b = bars
    pic = lq[:, t:lq.shape[1] - b, l:lq.shape[2] - r]
    if pic.shape[1] < 8 or pic.shape[2] < 8:
        raise UvssmError("the LQ picture is black or too small to align")
    nominal_x, nominal_y = hq.shape[2] / pic.shape[2], hq.shape[1] / pic.shape[1]
    ox, sx, _ = _fit_axis(pic.mean(axis=(0, 1)), hq.mean(axis=(0, 1)), nominal_x)
    oy, sy, _ = _fit_axis(pic.mean(axis=(0, 2)), hq.mean(axis=(0, 2)), nominal_y)
    ox, oy, sx, sy = _refine_2d(hq, pic, (ox, oy, sx, sy))
    box = (ox, oy, ox + pic.shape[2] * sx, oy + pic.shape[1] * sy)
    return SpatialFit(bars, box, (sx, sy))


def _refine_2d(hq: np.ndarray, pic: np.ndarray, start: tuple[float, float, float, float],
               frames: int = 3) -> tuple[float, float, float, float]:
    """Refine (offset_x, offset_y, scale_x, scale_y) on whole pictures: the HQ frames, blurred like a
    down-scaler would, are sampled at the LQ pixel centres; minimise the mean squared difference
    (both sides zero-mean) with Nelder-Mead, starting from the per-axis fit."""
    from scipy.ndimage import gaussian_filter, map_coordinates
    from scipy.optimize import minimize

    pick = np.linspace(0, len(pic) - 1, min(frames, len(pic))).round().astype(int)
    sigma = (0.45 * start[3], 0.45 * start[2])
    blurred = [gaussian_filter(hq[i], sigma) for i in pick]
    targets = [pic[i] - pic[i].mean() for i in pick]
    h, w = pic.shape[1:]
    margin = 4  # LQ pixels near the picture's border sample outside a cropped HQ; leave them out
    v, u = np.mgrid[margin:h - margin, margin:w - margin].astype(np.float64) + 0.5

    def cost(p):
        ox, oy, sx, sy = p
        coords = [oy + v * sy - 0.5, ox + u * sx - 0.5]
        total = 0.0
        for img, target in zip(blurred, targets):
            sampled = map_coordinates(img, coords, order=1, mode="nearest")
            t = target[margin:h - margin, margin:w - margin]
            total += np.mean(((sampled - sampled.mean()) - (t - t.mean())) ** 2)
        return total

    x0 = np.array(start, dtype=np.float64)
    simplex = np.vstack([x0, x0 + np.diag([0.5, 0.5, 0.002 * x0[2], 0.002 * x0[3]])])
    result = minimize(cost, x0, method="Nelder-Mead",
                      options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400, "initial_simplex": simplex})
    return tuple(float(x) for x in result.x)


def hq_in_lq_geometry(path: str | Path, fit: SpatialFit, pic_size: tuple[int, int], rotation: int = 0,
                      reduce: int = 2, indices: set[int] | None = None) -> np.ndarray:
    """HQ luma resampled onto the LQ picture grid (pic_size = (w, h) without bars), divided by `reduce`.

    Each HQ frame is scaled by 1/(scale·reduce) while decoding (swscale, area-like), then the fitted
    box is cut out with sub-pixel bilinear sampling.
    """
    import torch
    from torch.nn import functional as F

    sx, sy = fit.scale
    x0, y0 = fit.hq_box[0], fit.hq_box[1]
    w, h = pic_size[0] // reduce, pic_size[1] // reduce
    hq_w, hq_h = probe(path).display_size
    scaled = (max(1, round(hq_w / (sx * reduce))), max(1, round(hq_h / (sy * reduce))))
    frames = torch.from_numpy(luma_frames(path, scaled, rotation, indices)).unsqueeze(1)
    fx, fy = hq_w / scaled[0], hq_h / scaled[1]  # HQ pixels per scaled pixel (≈ s·reduce)
    # output pixel (u, v) centre ↔ HQ point x0 + (u + 0.5)·sx·reduce ↔ scaled pixel coordinate
    u = (x0 + (torch.arange(w, dtype=torch.float64) + 0.5) * sx * reduce) / fx - 0.5
    v = (y0 + (torch.arange(h, dtype=torch.float64) + 0.5) * sy * reduce) / fy - 0.5
    gx = (2 * u + 1) / scaled[0] - 1
    gy = (2 * v + 1) / scaled[1] - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).float()
    out = F.grid_sample(frames, grid.expand(len(frames), h, w, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[:, 0].numpy()
