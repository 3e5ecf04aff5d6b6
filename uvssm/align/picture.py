"""Where the original's picture lies in the share, by content, whatever surrounds it: masked
band-passed correlation over scales and placements (`locate_picture`), as a `FrameMap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.align.geometry import black_bars


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
        left = min(w, max(0, int(np.ceil(-x0 / sx - 0.25))))
        top = min(h, max(0, int(np.ceil(-y0 / sy - 0.25))))
        right = min(w - left, max(0, w - int(np.floor((hq_size[0] - x0) / sx + 0.25))))
        bottom = min(h - top, max(0, h - int(np.floor((hq_size[1] - y0) / sy + 0.25))))
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
