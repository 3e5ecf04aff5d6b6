"""Each LQ picture compared with HQ frames at LQ size (`lq_size_errors`): what the share's scaler made
of the HQ rectangle, both softened, as a mean squared difference per candidate HQ frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.base.errors import UvssmError


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
