"""Which frames form the input window of each output frame, at clip borders included."""

from __future__ import annotations


def reflection_circle(center: int, num_frames: int, window: int = 5) -> list[int]:
    """Frame indices of the `window`-frame window centred on `center` in a clip of `num_frames`.

    BasicSR/VOTES `padding: reflection_circle` (`data/data_util.py`): with p = window // 2, index i
    of [c−p, c+p] becomes c+p−i when i < 0, (c−p) − (i − (N−1)) when i > N−1, else i. So the
    window's out-of-clip frames are taken from its far side, in reverse:

    >>> reflection_circle(0, 100)
    [4, 3, 0, 1, 2]
    >>> reflection_circle(99, 100)
    [97, 98, 99, 96, 95]
    """
    if not 0 <= center < num_frames:
        raise ValueError(f"centre {center} outside a clip of {num_frames} frames")
    if num_frames < window:
        raise ValueError(f"a clip of {num_frames} frames is shorter than the {window}-frame window")
    p = window // 2
    out = []
    for i in range(center - p, center + p + 1):
        if i < 0:
            i = center + p - i
        elif i > num_frames - 1:
            i = (center - p) - (i - (num_frames - 1))
        out.append(i)
    return out


def evenly_spaced(n: int, k: int) -> list[int]:
    """k frame indices spread over 0..n-1 (all of them when k is 0 or ≥ n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n // 2]
