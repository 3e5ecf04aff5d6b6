"""One pair, end to end: probe, thumbnails, the picture's place, rounds of temporal match and spatial
fit, the check at LQ size, and the gates that refuse (`align_pair`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from uvssm.align.check import SelfCheck, refine_mapping
from uvssm.align.decision import CONFIDENCE, TOLERATED, Verdict, decide, one_second
from uvssm.align.geometry import SpatialFit, picture_region, resample_box, spatial_fit
from uvssm.align.hypotheses import (RULE_THETA, RULES, SHIFTS, Hypothesis, rule_mapping, same_picture, shifted,
                                    theta_neighbours, whole_box)
from uvssm.align.hypotheses import costs as hypothesis_costs
from uvssm.align.held import HeldFrames
from uvssm.align.hypotheses import sample_cost
from uvssm.align.picture import FrameMap, locate_picture
from uvssm.align.rate_chain import constant_rate
from uvssm.align.timing import named_by_theta, theta_text
from uvssm.align.temporal import TemporalMatch, temporal_match
from uvssm.base.errors import UvssmError
from uvssm.base.probe import VideoProbe, probe


@dataclass(frozen=True)
class AlignOptions:
    """How far `align_pair` looks and when it refuses (the `uvssm build` options of the same names)."""

    frames: int | None = 100  # LQ frames checked at LQ size from the first matched one (None: all)
    max_offset_s: float = 4.0  # the share may start this far into the original, or this much intro before it
    min_margin: float = 0.0  # the start offset's cost margin over the next best (on thumbnails; 0: off) ...
    confirm_distinct: float = 0.20  # ... unless the check at LQ size fits at least this distinctly
    max_neighbour_better: float = 0.05  # check: share of frames a neighbouring HQ frame may fit clearly better
    max_next_better: float = 1.0  # check: share of frames the next HQ frame may fit better at all (1: off) ...
    confirm_next_distinct: float = 0.05  # ... unless the chosen frames fit at least this distinctly (median)
    min_distinct: float = 0.0  # check: how much better chosen frames must fit than their neighbours (median)
    max_residual: float = 0.5  # check: 1 − correlation of the LQ picture with its HQ box (median)
    allow_hdr: bool = False  # accept 10-bit / HDR sources


NEXT_BETTER_FRAMES = 3  # the next-frame check refuses only when at least this many frames fit the next frame better
THUMB = (64, 36)  # compared in time
HQ_THUMB = (128, 72)  # kept per HQ frame: the picture's place is searched in these, the match resampled from them
LQ_THUMB = 160  # the LQ frames' longer side, aspect kept (the picture may be a part of the frame)
SPAN = 16  # HQ frames held around those the check names: its reach 3 + the timestamps' frame ≤ 8 away + a start 2
# away + a rounding 1 = 14, and 2 to spare (a reader that goes past them is served by a new decoding)


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
    verdict: Verdict | None = None  # the chosen account against its rivals (None: not checked)
    rival_won: bool = False  # a rival of the first chosen account won, and was checked in its place
    stable: bool = True  # the account checked last is the one its rivals' weighing chose
    weighed: tuple[str, ...] = ()  # per weighing: which hypothesis won over which checked account


def timestamps(info, n_decoded: int) -> tuple[np.ndarray, str]:
    """Presentation times of the decoded frames (seconds from the first): the container's, or a
    constant rate where they disagree. Where the stamps lie on a constant-rate grid to within a
    millisecond clock's rounding (`rate_chain.constant_rate`), the grid's exact times: Matroska and
    WebM store times in milliseconds (and a stream copied from them keeps the rounded times), which
    moves a frame's position by up to half a millisecond, 0.03 of a frame at 60 fps, frame by frame,
    and a rounding rule would name the wrong frame wherever an exact time lies that close to a
    frame's boundary."""
    from uvssm.base.probe import decoded_frame_times, frame_times

    times = frame_times(info.path)
    if len(times) == n_decoded:
        return _on_grid(times, "container timestamps")
    decoded = decoded_frame_times(info.path)  # some packets decode to nothing: the frames' own times
    if len(decoded) == n_decoded and np.isfinite(decoded).all() and np.all(np.diff(decoded) > 0):
        return _on_grid(decoded, f"decoded frames' timestamps ({len(times)} packets for {n_decoded} frames)")
    rate = info.avg_fps or info.real_fps or 25.0
    return np.arange(n_decoded) / rate, f"constant {rate:.3f} fps ({len(times)} timestamps for {n_decoded} frames)"


def _on_grid(times: np.ndarray, how: str) -> tuple[np.ndarray, str]:
    """`times` (from 0), or the exact times of the constant-rate grid they lie on (`timestamps`)."""
    rate = constant_rate(times)
    if rate is None:
        return times, how
    exact = np.arange(len(times), dtype=np.float64) * rate.denominator / rate.numerator
    moved = float(np.abs(exact - (times - times[0])).max())
    return exact + times[0], how + (f" on a constant {rate} fps grid (moved up to {moved * 1e3:.2f} ms)" if moved > 1e-7
                                    else "")


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
        raise UvssmError(f"{lq_info.path}: the original's picture was not found in the share: the best place "
                         f"content gives it is {lq_size[0] - bars[0] - bars[2]}x{lq_size[1] - bars[1] - bars[3]} LQ "
                         f"pixels (the whole LQ frame would show HQ box "
                         f"({', '.join(f'{x:.1f}' for x in frame_map.box)}), band-passed correlation "
                         f"{frame_map.score:.2f}): too small to align")
    box = frame_map.hq_box(bars)
    located = box  # where content put the picture, before any timing: a neutral start for every fit
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
                         f"({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) of a {hw}x{hh} frame, which is not a picture of "
                         f"the original (content located it at HQ box "
                         f"({', '.join(f'{x:.1f}' for x in frame_map.box)}) for the whole LQ frame)")
    pic = (lq_size[0] - fit.bars[0] - fit.bars[2], lq_size[1] - fit.bars[1] - fit.bars[3])
    result = PairAlignment(hq_info, lq_info, match, fit, pic, f"HQ: {hq_timing}; LQ: {lq_timing}", frame_map,
                           None, round_)
    if not check:
        return result
    rates = _rates(hq_times, lq_times)
    # the share's own picture region (solid fills), where the whole-picture hypotheses put the original
    found = picture_region(np.stack([lq_full[k] for k in sorted(lq_full)]))
    region = found if any(found) else None
    block = one_second(lq_times)
    position, geometry, tried, winners = match.timing[:n], (fit.hq_box, fit.bars), [], []
    mapping_in = match.mapping[:n]
    # the span every pass below reads, decoded once (`held`): the HQ frames any account names (the
    # check's reach, a start 2 frames away, the timestamps' frame up to 8 away, a rounding: `SPAN`)
    named = np.r_[mapping_in, np.rint(position)]
    hq_held = HeldFrames(ffmpeg, hq_info, int(named.min()) - SPAN, min(int(named.max()) + SPAN, len(hq_times) - 1))
    lq_held = HeldFrames(ffmpeg, lq_info, match.lq_first, match.lq_first + n - 1)
    fixed_theta = None  # a rounding θ that won a weighing, checked as it is
    for weighing in range(2):  # check, weigh the rivals; once more where a rival won, around it
        mapping, report = refine_mapping(hq_held.frames(), lq_held.frames(match.lq_first),
                                         mapping_in, match.lq_first, geometry[0], geometry[1], position, rates=rates,
                                         n_hq=len(hq_times), theta=fixed_theta)
        # rivals with the whole picture first; each with its own fitted rectangle only where the chosen
        # account's rectangle surely beats the whole picture (a crop): no rectangle can win otherwise
        fits: dict = {}  # rectangles already fitted, shared by the two calls
        for fit_rivals in (False, True):
            hyps = rivals(ffmpeg, hq_info, lq_info, match.lq_first, mapping, position, geometry, report.timing_rule,
                          sample, lq_full, len(hq_times), starts=(located,), region=region, fit_rivals=fit_rivals,
                          fits=fits, held=hq_held, theta=report.rounding if report.chain is None else None)
            costs = hypothesis_costs(hq_held.frames(), lq_held.frames(match.lq_first), match.lq_first, hyps, lq_size)
            verdict = decide(hyps, costs, block)
            if not (verdict.geometry and verdict.geometry.ruled_out):
                break
        won = hyps[verdict.chosen]
        tried.append(verdict)
        winners.append(f"{won.name} over {report.timing_rule}")
        if won.timing == report.timing_rule or weighing == 1:  # chosen, or a rival won twice (refused)
            geometry = (won.box, won.bars) if won.timing == report.timing_rule else geometry
            break
        geometry = (won.box, won.bars)
        # a rival won: check it as the chosen one (its frames, its rectangle), and weigh its own rivals.
        # LQ frames it puts before the HQ video's first frame show none (an intro), nor those after its last
        inside = np.flatnonzero(won.mapping >= 0)
        lo, hi = int(inside[0]), int(inside[-1]) + 1
        shift = float(np.rint(np.median((won.mapping - mapping)[lo:hi])))
        mapping_in, position = won.mapping[lo:hi], (position + shift)[lo:hi]
        fixed_theta = won.theta if won.theta is not None and shift == 0 else None
        sample = [j - lo for j in sample if lo <= j < hi] or [0]
        kept = match.mapping[lo:] if hi == n else match.mapping[lo:hi]
        match = replace(match, lq_first=match.lq_first + lo, mapping=kept, timing=match.timing[lo:lo + len(kept)],
                        unmatched_tail=match.unmatched_tail + len(match.mapping) - lo - len(kept))
        n = hi - lo
    sx, sy = ((geometry[0][2] - geometry[0][0]) / (lq_size[0] - geometry[1][0] - geometry[1][2]),
              (geometry[0][3] - geometry[0][1]) / (lq_size[1] - geometry[1][1] - geometry[1][3]))
    fit = SpatialFit(geometry[1], geometry[0], (sx, sy))
    pic = (lq_size[0] - fit.bars[0] - fit.bars[2], lq_size[1] - fit.bars[1] - fit.bars[3])
    full = match.mapping.copy()
    shift = int(np.rint(np.median(mapping - match.mapping[:n]))) if n else 0
    full[n:] = np.clip(full[n:] + shift, 0, len(hq_times) - 1)  # frames past the check: the same start
    full[:n] = mapping
    full = np.maximum.accumulate(full)
    # how the final pairing departs from the timestamps under the share's rounding
    rule = named_by_theta(position, report.rounding)
    departs = mapping - rule
    change = np.diff(departs)
    match = replace(match, off_timing=int(np.count_nonzero(departs)), dropped=int(change[change > 0].sum()),
                    repeated=int(-change[change < 0].sum()))
    return replace(result, match=replace(match, mapping=full), fit=fit, pic=pic, check=report,
                   verdict=tried[-1], rival_won=len(tried) > 1,
                   stable=hyps[tried[-1].chosen].timing == report.timing_rule, weighed=tuple(winners))


def rivals(ffmpeg, hq_info, lq_info, lq_first: int, mapping: np.ndarray, position: np.ndarray, geometry,
           rule_name: str, sample: list[int], lq_full: dict, n_hq: int, starts: tuple = (),
           region: tuple[int, int, int, int] | None = None, fit_rivals: bool = True,
           fits: dict | None = None, held: HeldFrames | None = None,
           theta: float | None = None) -> list[Hypothesis]:
    """The chosen account and its rivals (`hypotheses`), each timing with its own rectangle and with
    the whole picture. Every timing's rectangle is found by one procedure, the chosen one's included:
    `spatial_fit` on the frames it pairs (the same sampled LQ frames) from each start (`geometry`'s
    box, and `starts`, e.g. where content located the picture: the fit is local, and one start can
    favour the timing fitted from it), and the candidate that fits the sampled frames best at LQ size
    is kept (the chosen account's own rectangle is a candidate for it). Without `fit_rivals` only the
    chosen timing gets a rectangle; the rivals are tried with the whole picture. `fits` (rectangles by
    the sampled HQ frames a timing pairs) may be shared between calls with the same frames and starts,
    so a second call fits only what the first did not; `held`: the HQ frames already decoded. The whole picture
    lies in `region` (the share's own picture region, `geometry.picture_region`; default: the
    chosen rectangle's bars) for every timing; a fitted rectangle that puts every edge of the original
    within half an LQ pixel of where the whole picture does is the whole picture. Where the chosen
    timing is a rounding θ (`theta`), its nearest neighbours that pair more than `TOLERATED` of the
    frames differently are rivals too (`hypotheses.theta_neighbours`). Each fitted rival timing whose rectangle differs from
    the chosen timing's is also tried with the chosen timing's rectangle (`decision.StandIn`)."""
    from uvssm.base.decode import gray_frames

    box, bars = geometry
    timings = [(rule_name, np.asarray(mapping, np.int64))]
    timings += [(f"{abs(d)} frame{'s' * (abs(d) > 1)} {'later' if d > 0 else 'earlier'}", shifted(mapping, d, n_hq))
                for d in SHIFTS]
    thetas = {rule_name: theta}
    for rule in RULES:
        m = rule_mapping(position, rule, n_hq)
        if not any(np.array_equal(m, t) for _, t in timings):
            timings.append((f"rounding {rule}", m))
            thetas[f"rounding {rule}"] = RULE_THETA[rule]
    if theta is not None:  # the chosen θ's nearest neighbours that pair more than a tolerated share differently
        for t, m in theta_neighbours(mapping, position, theta, TOLERATED, n_hq):
            if not any(np.array_equal(m, x) for _, x in timings):
                timings.append((f"rounding θ {theta_text(t)}", m))
                thetas[f"rounding θ {theta_text(t)}"] = t
    usable = [j for j in sample if all(t[j] >= 0 for _, t in timings)] or sample
    fitted = {name for name, _ in timings if fit_rivals or name == rule_name}  # the timings given a rectangle
    wanted = {int(t[j]) for name, t in timings if name in fitted for j in usable if t[j] >= 0}
    hq_full = held.pick(wanted) if held is not None else dict(gray_frames(ffmpeg, hq_info, None, wanted))
    lq = np.stack([lq_full[lq_first + j] for j in usable]).astype(np.float32)
    fits = {} if fits is None else fits
    whole = whole_box(hq_info.display_size)
    whole_bars = bars if region is None else region
    hyps, chosen_box = [], box
    for name, m in timings:
        if name not in fitted:
            fbox = whole
        else:
            key = tuple(int(m[j]) for j in usable)
            if key not in fits:
                if min(key) < 0:
                    fits[key] = box
                else:
                    hq = np.stack([hq_full[k] for k in key]).astype(np.float32)
                    candidates = [spatial_fit(hq, lq, start, bars).hq_box for start in (box, *starts)]
                    candidates += [box] if name == rule_name else []
                    fits[key] = min(candidates, key=lambda b: sample_cost(hq, lq, b, bars))
            fbox = fits[key]
            if fbox != whole and same_picture(fbox, bars, whole, whole_bars, hq_info.display_size,
                                              lq_info.display_size):
                fbox = whole  # the fit found the whole picture, to within half an LQ pixel
        if name == rule_name:
            chosen_box = fbox
        th = thetas.get(name)
        if fbox != whole:
            hyps.append(Hypothesis(name, m, fbox, bars, name, "fitted", th))
        if name != rule_name and name in fitted and fbox != chosen_box and chosen_box != whole:
            # the rival timing with the chosen account's rectangle: whether its own stands in for it
            hyps.append(Hypothesis(f"{name}, chosen rectangle", m, chosen_box, bars, name, "fitted", th))
        hyps.append(Hypothesis(f"{name}, whole picture" if fbox != whole else name, m, whole, whole_bars, name,
                               "whole picture", th))
    return hyps


def align_pair(pair, ffmpeg, options: AlignOptions = AlignOptions()) -> PairAlignment:
    """Probe, match in time and fit in space one video pair (`uvssm.base.pairs.Pair`: its .hq and .lq
    paths), then check it; raises UvssmError naming the measured cause when a source is 10-bit/HDR
    (unless allowed), or the pairing is not distinct or does not hold up at LQ resolution."""
    hq_info, lq_info = probe(pair.hq), probe(pair.lq)
    for info in (hq_info, lq_info):
        if (info.bit_depth > 8 or info.is_hdr) and not options.allow_hdr:
            raise UvssmError(f"{info.path}: {info.bit_depth}-bit {info.color_transfer} source (pass --allow-hdr to accept)")
    a = align_videos(ffmpeg, hq_info, lq_info, max_offset_s=options.max_offset_s, frames=options.frames)
    judge(pair, a, options)
    return a


def judge(pair, a: PairAlignment, options: AlignOptions = AlignOptions()) -> None:
    """Raise UvssmError naming the measured cause where an alignment (`align_videos`) must be refused."""
    m, box = a.match, ", ".join(f"{x:.1f}" for x in a.fit.hq_box)
    found = f"picture {a.pic[0]}x{a.pic[1]} at LQ bars {a.fit.bars} showing HQ box ({box}), start offset {m.offset_seconds:+.3f} s"
    c = a.check
    # first whether the rectangle fits the picture at all (unrelated content fits no account)
    if c is not None and c.residual > options.max_residual:
        raise UvssmError(
            f"{pair.lq}: self-check failed: the HQ box fits the LQ picture with residual {c.residual:.3f} "
            f"(1 − correlation, median over {c.frames} frames; limit {options.max_residual}; {found})")
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
        return
    v = a.verdict
    if not a.stable:
        raise UvssmError(f"{pair.lq}: alignment not distinct: a rival won each of two weighings "
                         f"({'; then '.join(a.weighed)}): the content does not settle the account ({found})")
    if v.stand_ins:
        raise UvssmError(
            f"{pair.lq}: alignment not distinct: the fitted rectangle stands in for the start: "
            f"{v.stand_ins[0].describe()}: the rectangle explains more of the difference than the timing does "
            f"(a steady zoom or pan in a crop), so the content does not settle the start ({found})")
    if not v.decided:
        r = v.runner_up
        raise UvssmError(
            f"{pair.lq}: alignment not distinct: the chosen account ({c.timing_rule}) is not distinguishable from "
            f"the rival \"{r.rival}\": mean log error {r.chosen_cost:.4f} against {r.rival_cost:.4f} on the {r.frames} "
            f"frames where they differ, better in only {r.confidence:.1%} of 1 s block-bootstrap resamples "
            f"(needed {CONFIDENCE:.0%}) ({found})")
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
