"""Which original frame each frame of a share shows after one or two frame-rate conversions made the
way ffmpeg makes them, and the search for the conversion chain that a share's content supports.

A share of a share went through two conversions: the first platform's (an `fps` filter, a
constant-rate `-r` output, or none) into an intermediate file whose container may keep time in
milliseconds (Matroska, WebM), then the second platform's `fps` filter. The final timestamps say
when each LQ frame is shown, not which HQ frame the first step kept, and one rounding rule
(`uvssm.align.timing.fit_rounding`) cannot express two roundings in a row: a share of a share at a rate
between (29.97 → 24 → 25 fps), or one whose intermediate file rounded its times to milliseconds
(29.97 → WebM → 29.97 with `round=down` drops and repeats frames), pairs a third of its frames
wrong under any single rule.

These functions reproduce the steps exactly: libavfilter's `fps` filter (each input time rescaled
to the output rate with its rounding mode; output slot t shows the last frame whose rescaled time is
≤ t), ffmpeg's constant-rate output sync (`-r`: a frame more than 1.1 frames early is dropped, one
more than 1.1 late is repeated), and a container's millisecond clock. `fit_chain` scores every chain
on a small grid (first step, its rate and rounding, millisecond times or not, the second step's
rounding, the intermediate's origin) against the content errors at LQ size, as `fit_rounding`
scores its rules, and says how far the best is from the best that pairs differently and from the
best with one step only.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# the frame rates platforms and cameras use (the first step's candidates)
RATES = tuple(Fraction(r) for r in ("15", "24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60"))
MODES = ("near", "down", "up")  # the fps filter's rounding modes (libavfilter's default is near)
CAP = float(np.log(3.0))  # a frame's log error ratio counts at most this much (as in fit_rounding)


def as_rate(fps: float) -> Fraction | None:
    """A measured frame rate as the exact fraction it stands for (29.97002997 → 30000/1001), or None."""
    if not fps or not np.isfinite(fps) or fps <= 0:
        return None
    return Fraction(fps).limit_denominator(1001)


def constant_rate(times: np.ndarray, tolerance_s: float = 0.0011) -> Fraction | None:
    """The exact rate of frames shown at `times` (seconds) when every frame lies within
    `tolerance_s` of a constant-rate grid from the first (a millisecond clock rounds by half a
    millisecond), else None. The rates of RATES are tried first, nearest the measured one first."""
    times = np.asarray(times, np.float64)
    if len(times) < 3 or not times[-1] > times[0]:
        return None
    measured = (len(times) - 1) / float(times[-1] - times[0])
    guess = as_rate(measured)
    near = sorted((r for r in RATES if abs(float(r) - measured) <= 0.01 * measured), key=lambda r: abs(float(r) - measured))
    for rate in [*near, *([guess] if guess else [])]:
        grid = np.arange(len(times)) * float(1 / rate)
        if float(np.max(np.abs(times - times[0] - grid))) <= tolerance_s:
            return rate
    return None


def rescale(num, den: int, mode: str) -> np.ndarray:
    """num / den rounded as av_rescale_q_rnd does (near: half away from zero), integers throughout."""
    num = np.asarray(num, np.int64)
    if mode == "down":
        return num // den
    if mode == "up":
        return -((-num) // den)
    return np.where(num >= 0, (2 * num + den) // (2 * den), -((-2 * num + den) // (2 * den)))


def fps_filter(times_num: np.ndarray, times_den: int, rate: Fraction, mode: str) -> tuple[np.ndarray, int]:
    """libavfilter's `fps=rate:round=mode` on frames at times times_num / times_den seconds
    (non-decreasing): (for each output slot from the first, the input frame it shows; the first
    slot's number, i.e. its time × rate). Slot t shows the last frame whose time × rate, rounded, is
    ≤ t; the first slot is the first frame's."""
    slots = rescale(np.asarray(times_num, np.int64) * rate.numerator, times_den * rate.denominator, mode)
    first = int(slots[0])
    shown = np.searchsorted(slots, np.arange(first, int(slots[-1]) + 1), side="right") - 1
    return shown, first


def cfr_output(n_frames: int, in_rate: Fraction, out_rate: Fraction) -> np.ndarray:
    """ffmpeg's constant-rate output sync (`-r out_rate`, vsync cfr) on n_frames frames at in_rate
    from time 0: for each output frame, the input frame it shows. A frame's lateness is measured in
    output frames including its duration: below −1.1 it is dropped, above 1.1 repeated; a frame a
    little early is moved onto the next output time."""
    shown: list[int] = []
    step = float(out_rate / in_rate)  # input frame duration in output frames
    next_pts, last = 0.0, None
    for i in range(n_frames):
        delta0 = i * step - next_pts
        duration = step
        delta = delta0 + duration
        if delta0 < 0 < delta:
            duration += delta0
            delta0, delta = 0.0, duration
        count, of_last = 1, 0
        if delta < -1.1:
            count = 0
        elif delta > 1.1:
            count = int(np.rint(delta))
            if delta0 > 1.1:
                of_last = int(np.rint(delta0 - 0.6))
        shown += [last if (k < of_last and last is not None) else i for k in range(count)]
        next_pts += count
        last = i
    return np.asarray(shown, np.int64)


@dataclass(frozen=True)
class Chain:
    """Two conversions: `first` ("none", "fps" or "-r") at `rate` (rounding `mode` for fps) from HQ
    frame `origin` (the intermediate's time 0), the intermediate's times kept in milliseconds or
    exactly, then the share's own `fps` filter with rounding `second`; LQ frame 0 is the slot
    `slot_shift` away from the one its time names (a start offset a frame off)."""

    first: str
    rate: Fraction | None
    mode: str | None
    milliseconds: bool
    second: str
    origin: int = 0
    slot_shift: int = 0

    @property
    def one_step(self) -> bool:
        """Only the share's own fps filter: one rounding of exact times, which `fit_rounding`'s θ
        expresses too (with its prior against a codec's lag)."""
        return self.first == "none" and not self.milliseconds

    def describe(self, lq_rate: Fraction) -> str:
        first = {"none": "none", "fps": f"fps={self.rate}:round={self.mode}", "-r": f"-r {self.rate}"}[self.first]
        clock = "millisecond times" if self.milliseconds else "exact times"
        return f"{first} from HQ frame {self.origin}, {clock}, then fps={lq_rate}:round={self.second}"


def first_step(first: str, rate: Fraction | None, mode: str | None, hq_rate: Fraction, n_hq: int):
    """The intermediate after the first step, from the origin on: (HQ frame per intermediate frame,
    counted from the origin; the intermediate frames' times in seconds as (numerators, denominator))."""
    i = np.arange(n_hq, dtype=np.int64)
    if first == "none":
        return i, (i * hq_rate.denominator, hq_rate.numerator)
    if first == "fps":
        shown, start = fps_filter(i * hq_rate.denominator, hq_rate.numerator, rate, mode)
    elif first == "-r":
        shown, start = cfr_output(n_hq, hq_rate, rate), 0
    else:
        raise ValueError(f"unknown first step {first!r}")
    slots = np.arange(start, start + len(shown), dtype=np.int64)
    return shown, (slots * rate.denominator, rate.numerator)


def second_slots(times: tuple[np.ndarray, int], milliseconds: bool, lq_rate: Fraction, second: str) -> np.ndarray:
    """The share's fps filter: each intermediate frame's output slot (its time, in milliseconds when
    the intermediate's container kept them so, × the LQ rate, rounded by `second`)."""
    num, den = times
    if milliseconds:
        num, den = rescale(num * 1000, den, "near"), 1000
    return rescale(num * lq_rate.numerator, den * lq_rate.denominator, second)


def _mappings(shown, slots, origins, shifts, position, hq_rate: Fraction, lq_rate: Fraction, n_hq: int):
    lq_step = float(lq_rate / hq_rate)  # LQ slots per HQ frame
    relative = np.rint((position - position[0]) * lq_step).astype(np.int64)
    for origin in origins:
        usable = int(np.searchsorted(shown, n_hq - origin))  # intermediate frames whose HQ frame exists
        if usable == 0:
            continue
        named = int(np.rint((position[0] - origin) * lq_step))  # LQ frame 0's slot by its time
        for shift in shifts:
            t = named + shift + relative
            if t[0] < slots[0]:
                continue
            # past the intermediate's last frame the filter repeats it (as at its end of file)
            yield origin, shift, origin + shown[np.searchsorted(slots[:usable], t, side="right") - 1]


def chain_mapping(chain: Chain, position: np.ndarray, hq_rate: Fraction, lq_rate: Fraction,
                  n_hq: int) -> np.ndarray | None:
    """HQ frame per LQ frame under `chain` (None where LQ frame 0 lies before the intermediate's
    first slot). position: each LQ frame's fractional HQ position by the timestamps and the start
    offset (HQ frame k at k)."""
    shown, times = first_step(chain.first, chain.rate, chain.mode, hq_rate, n_hq)
    slots = second_slots(times, chain.milliseconds, lq_rate, chain.second)
    found = list(_mappings(shown, slots, [chain.origin], [chain.slot_shift], np.asarray(position, np.float64),
                           hq_rate, lq_rate, n_hq))
    return found[0][2] if found else None


def chain_mappings(position: np.ndarray, hq_rate: Fraction, lq_rate: Fraction, n_hq: int, window: int = 60):
    """(Chain, HQ frame per LQ frame) for every chain on the grid: each first step (none; fps at
    each rate of RATES with each rounding; -r at each rate), millisecond or exact times, each
    rounding of the share's fps filter, origins from `window` HQ frames before the first LQ frame's
    position to 2 after it, and LQ frame 0 in the slot its time names or one either side."""
    position = np.asarray(position, np.float64)
    start = int(np.floor(position[0]))
    origins = range(max(0, start - window), min(n_hq - 1, start + 2) + 1)
    steps = [("none", None, None)] + [("fps", r, m) for r in RATES for m in MODES] + [("-r", r, None) for r in RATES]
    for first, rate, mode in steps:
        shown, times = first_step(first, rate, mode, hq_rate, n_hq)
        for milliseconds in (False, True):
            for second in MODES:
                slots = second_slots(times, milliseconds, lq_rate, second)
                for origin, shift, mapping in _mappings(shown, slots, origins, (-1, 0, 1), position, hq_rate,
                                                        lq_rate, n_hq):
                    yield Chain(first, rate, mode, milliseconds, second, origin, shift), mapping


def log_ratio_table(errors: list[dict[int, float]]) -> tuple[np.ndarray, int]:
    """Per frame and HQ index lo + c: log(error / the frame's smallest error), capped at log 3 (also
    where the index was not measured)."""
    lo = min(min(e) for e in errors)
    hi = max(max(e) for e in errors)
    table = np.full((len(errors), hi - lo + 1), CAP)
    for j, e in enumerate(errors):
        smallest = max(min(e.values()), 1e-9)
        for k, v in e.items():
            table[j, k - lo] = min(np.log(max(v, 1e-9) / smallest), CAP)
    return table, lo


def mapping_cost(table: np.ndarray, lo: int, mapping: np.ndarray) -> float:
    """The summed capped log error ratio of a mapping (`log_ratio_table`)."""
    col = np.asarray(mapping, np.int64) - lo
    inside = (col >= 0) & (col < table.shape[1])
    return float(np.where(inside, table[np.arange(len(col)), np.clip(col, 0, table.shape[1] - 1)], CAP).sum())


@dataclass(frozen=True)
class ChainFit:
    chain: Chain
    mapping: np.ndarray  # HQ frame per LQ frame under the chain
    cost: float  # its summed capped log error ratio
    rival_cost: float  # the best chain's that pairs more than `differ` of the frames differently (inf: none)
    one_step_cost: float  # the best one-step chain's (no first step, exact times: one rounding; inf: none)


def fit_chain(errors: list[dict[int, float]], position: np.ndarray, hq_rate: Fraction, lq_rate: Fraction,
              n_hq: int, differ: float = 0.05) -> ChainFit | None:
    """The chain (`chain_mappings`) whose mapping the content errors at LQ size support best, and
    the cost of its best rival (a chain pairing more than `differ` of the frames differently); None
    when no chain maps the frames."""
    n = len(errors)
    if not n:
        return None
    table, lo = log_ratio_table(errors)
    scored = [(mapping_cost(table, lo, mapping), chain, mapping)
              for chain, mapping in chain_mappings(position[:n], hq_rate, lq_rate, n_hq)]
    if not scored:
        return None
    scored.sort(key=lambda s: s[0])
    cost, chain, best = scored[0]
    rival = next((c for c, _, m in scored[1:] if np.mean(m != best) > differ), float("inf"))
    one_step = next((c for c, ch, _ in scored if ch.one_step), float("inf"))
    return ChainFit(chain, best, cost, rival, one_step)
