"""Whole accounts of a share, each fitted on its own terms, and their costs at LQ size.

A hypothesis names, for every checked LQ frame, the HQ frame it shows (its start and its timing
rule), and the HQ rectangle the LQ picture shows (its geometry). The rivals of the chosen account:

- the same timing started 1 and 2 frames earlier and later (`shifted`);
- the other rounding rules of a frame-rate conversion: nearest, down, up (`rule_mapping`), where
  they pair frames differently;
- for each timing, the simplest geometry: the whole original inside the picture region, beside the
  rectangle fitted under that timing (`spatial_fit` on the frames that timing pairs, never the
  chosen timing's frames: a rectangle fitted under one pairing can only agree with it).

`costs` scores them all in one decoding pass of both videos: per LQ frame, the log of the mean
squared difference between the softened LQ picture and the hypothesis's HQ rectangle at LQ size,
over the same LQ pixels for every hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.align.frame_errors import _error, _pic_luma, _soften, hq_at_lq_size
from uvssm.align.timing import EPS, named_by_theta, theta_cuts, theta_in

SHIFTS = (-2, -1, 1, 2)  # starts one and two frames either side


@dataclass(frozen=True)
class Hypothesis:
    name: str
    mapping: np.ndarray  # HQ frame per checked LQ frame lq_first + j (−1: outside the HQ video)
    box: tuple[float, float, float, float]  # HQ rectangle the LQ picture inside `bars` shows
    bars: tuple[int, int, int, int]  # LQ picture region: (left, top, right, bottom) pixels left out
    timing: str  # the timing's name ("chosen", "1 frame later", "rounding down", ...)
    geometry: str  # "fitted" or "whole picture"
    theta: float | None = None  # the rounding θ that names its frames from their positions, where one does


def shifted(mapping: np.ndarray, d: int, n_hq: int) -> np.ndarray:
    """The same pairing started `d` HQ frames later (−1 where it leaves the HQ video)."""
    out = np.asarray(mapping, np.int64) + d
    return np.where((out >= 0) & (out < n_hq), out, -1)


RULES = {"nearest": lambda p: np.floor(p + 0.5), "down": np.floor, "up": np.ceil}
RULE_TOLERANCE = 1e-3  # HQ frames: timestamps stored in milliseconds or ticks put an exact frame time this close


def rule_mapping(position: np.ndarray, rule: str, n_hq: int) -> np.ndarray:
    """Each LQ frame at the HQ frame a rounding rule names from its fractional position (positions
    within `RULE_TOLERANCE` of a whole frame are that frame under every rule)."""
    p = np.asarray(position, np.float64)
    whole = np.abs(p - np.rint(p)) <= RULE_TOLERANCE
    out = np.where(whole, np.rint(p), RULES[rule](p)).astype(np.int64)
    out = np.maximum.accumulate(out)  # a rule never steps back
    return np.where((out >= 0) & (out < n_hq), out, -1)


RULE_THETA = {"nearest": 0.5, "down": 1.0, "up": 0.0}  # each rule as a rounding θ: floor(p + 1 − θ)


def theta_neighbours(mapping: np.ndarray, position: np.ndarray, theta: float, tolerated: float,
                     n_hq: int) -> list[tuple[float, np.ndarray]]:
    """The nearest rounding θ either side of `theta` (within one frame; of each window of θ that
    pair alike, `timing.theta_cuts`, the θ nearest `theta`) that names the HQ frame differently for
    more than `tolerated` of the frames, each with its pairing: `mapping` changed on the frames
    where that θ names another frame than `theta` does. Where the LQ rate is not a multiple of the
    HQ rate, positions between two θ are few and a start between two frames moves them: these are
    the accounts a fitted θ stands closest to."""
    p = np.asarray(position[:len(mapping)], np.float64)
    base, out = named_by_theta(p, theta), []
    cuts = theta_cuts(p, theta - 1, theta + 1)
    above = [(c, d) for c, d in zip(cuts, [*cuts[1:], theta + 1]) if c >= theta - EPS]
    below = [(c, d) for c, d in zip([theta - 1, *cuts[:-1]], cuts) if d < theta - EPS][::-1]
    for windows in (above, below):
        for a, b in windows:
            t = theta_in(a, b, theta)
            moved = named_by_theta(p, t) - base
            if np.count_nonzero(moved) > tolerated * len(p):
                m = np.asarray(mapping, np.int64) + moved
                out.append((t, np.where((m >= 0) & (m < n_hq), np.maximum.accumulate(m), -1)))
                break
    return out


def whole_box(hq_size: tuple[int, int]) -> tuple[float, float, float, float]:
    return 0.0, 0.0, float(hq_size[0]), float(hq_size[1])


HALF_PIXEL = 0.5  # LQ pixels: rectangles whose HQ frame edges land this close show one picture on the share's grid


def frame_edges(box, bars, hq_size: tuple[int, int], lq_size: tuple[int, int]) -> np.ndarray:
    """Where the HQ frame's left, top, right and bottom edges land in the LQ frame (LQ pixels), given
    that the region inside `bars` shows HQ rectangle `box`."""
    sx = (box[2] - box[0]) / (lq_size[0] - bars[0] - bars[2])
    sy = (box[3] - box[1]) / (lq_size[1] - bars[1] - bars[3])
    return np.array([bars[0] - box[0] / sx, bars[1] - box[1] / sy,
                     bars[0] + (hq_size[0] - box[0]) / sx, bars[1] + (hq_size[1] - box[1]) / sy])


def same_picture(a, a_bars, b, b_bars, hq_size: tuple[int, int], lq_size: tuple[int, int]) -> bool:
    """Whether two placements put every edge of the HQ frame within `HALF_PIXEL` of each other (a fit
    that moves an edge less than half an LQ pixel has found no other picture, only the resampler's)."""
    return bool(np.abs(frame_edges(a, a_bars, hq_size, lq_size)
                       - frame_edges(b, b_bars, hq_size, lq_size)).max() <= HALF_PIXEL)


def box_inside(box, bars, inner, lq_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The HQ rectangle that the smaller picture region `inner` shows, given that the region `bars`
    shows `box` (the same scale)."""
    w, h = lq_size[0] - bars[0] - bars[2], lq_size[1] - bars[1] - bars[3]
    sx, sy = (box[2] - box[0]) / w, (box[3] - box[1]) / h
    return (box[0] + (inner[0] - bars[0]) * sx, box[1] + (inner[1] - bars[1]) * sy,
            box[2] - (inner[2] - bars[2]) * sx, box[3] - (inner[3] - bars[3]) * sy)


def common_region(hyps: list[Hypothesis]) -> tuple[int, int, int, int]:
    """The LQ pixels every hypothesis's picture covers (each side: the widest bar)."""
    return tuple(int(max(h.bars[i] for h in hyps)) for i in range(4))


def sample_cost(hq: np.ndarray, lq: np.ndarray, box, bars) -> float:
    """Mean log error at LQ size of paired full-resolution frames hq (N, H, W) and lq (N, h, w), the HQ
    frames cut to `box` and the LQ frames to the region inside `bars` (as `costs` measures)."""
    total = 0.0
    for h, l in zip(hq, lq):
        pic = _pic_luma(l, bars)
        size = (pic.shape[1], pic.shape[0])
        total += np.log(_error(_soften(pic), _soften(hq_at_lq_size(h.astype(np.uint8), box, size))) + 1e-6)
    return total / max(len(hq), 1)


def costs(hq_frames, lq_frames, lq_first: int, hyps: list[Hypothesis], lq_size: tuple[int, int]) -> np.ndarray:
    """(hypotheses, frames) log mean squared difference of LQ frame lq_first + j with the HQ frame
    each hypothesis names, cut to its rectangle and area-averaged to LQ size, both softened as the
    check compares them (`frame_errors._soften`), over the LQ pixels all hypotheses cover (inf where
    a hypothesis names no HQ frame). One pass over both frame iterators ((index, luma), in order)."""
    n = len(hyps[0].mapping)
    region = common_region(hyps)
    boxes = [box_inside(h.box, h.bars, region, lq_size) for h in hyps]
    geometries = {b: g for g, b in enumerate(dict.fromkeys(boxes))}  # distinct rectangles
    which = [geometries[b] for b in boxes]
    maps = np.stack([np.asarray(h.mapping, np.int64) for h in hyps])
    valid = maps >= 0
    lows = np.where(valid, maps, np.iinfo(np.int64).max).min(axis=0)
    keep_from = np.minimum.accumulate(lows[::-1])[::-1]
    highs = np.where(valid, maps, -1).max(axis=0)
    out = np.full((len(hyps), n), np.inf)
    raw: dict[int, np.ndarray] = {}
    soft: dict[tuple[int, int], np.ndarray] = {}
    hq_iter = iter(hq_frames)
    next_hq, exhausted = 0, False
    try:
        for i, lq in lq_frames:
            j = i - lq_first
            if j < 0:
                continue
            if j >= n:
                break
            pic = _pic_luma(lq, region)
            size = (pic.shape[1], pic.shape[0])
            pic = _soften(pic)
            while not exhausted and next_hq <= highs[j]:
                try:
                    k, frame = next(hq_iter)
                except StopIteration:
                    exhausted = True
                    break
                raw[k] = frame
                next_hq = k + 1
            for k in [k for k in raw if k < keep_from[j]]:
                del raw[k]
            for key in [key for key in soft if key[1] < keep_from[j]]:
                del soft[key]
            for h, k in enumerate(maps[:, j]):
                if k < 0 or k not in raw:
                    continue
                key = (which[h], int(k))
                if key not in soft:
                    soft[key] = _soften(hq_at_lq_size(raw[k], boxes[h], size))
                out[h, j] = np.log(_error(pic, soft[key]) + 1e-6)
    finally:
        for stream in (hq_frames, lq_frames):
            if hasattr(stream, "close"):
                stream.close()
    return out
