"""The chosen account of a share against its rivals, with a margin measured in the share's own noise.

Each hypothesis has a cost per LQ frame (the log of its error at LQ size, `hypotheses.costs`). Two
hypotheses are compared on the frames where they differ, by the mean of the per-frame cost
differences; how sure that comparison is comes from a circular block bootstrap of those differences
over the share's own frames (blocks of one second: frames within a second share their motion and the
encoder's rate control, so they are not independent draws). No threshold is fitted to a share:

- `CONFIDENCE`: a rival is ruled out when the chosen hypothesis is better in at least 99% of the
  resamples (a one-sided 99% confidence level, the usual one for a claim that is written as data);
- `TOLERATED`: a rival that cannot be ruled out but pairs at most 1% of the frames differently is
  tolerated, since a pair is allowed that 1% (a pair counts as right at 99% of its frames right);
- a fitted rectangle must not stand in for a timing (`StandIn`): where a rival timing's own
  rectangle removes more of its excess cost (over the chosen one's rectangle) than the excess that
  remains, the rectangle explains the difference better than the timing does, as on a steady zoom or
  pan in a crop (a box one frame's motion larger stands in for a frame later), and content cannot
  settle the start. No constant: it compares the two parts of one excess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.99  # one-sided confidence that the chosen hypothesis is better than a rival
TOLERATED = 0.01  # share of frames a rival that is not ruled out may pair differently
RESAMPLES = 2000  # bootstrap resamples: the 1% tail is then estimated from ~20 of them
SEED = 0  # the bootstrap's generator: the same share gives the same decision


@dataclass(frozen=True)
class Comparison:
    """The chosen hypothesis against one rival."""

    rival: str
    frames: int  # frames on which the two differ
    differ: float  # ... as a share of the frames compared
    chosen_cost: float  # mean cost (log error at LQ size) over those frames
    rival_cost: float
    confidence: float  # share of bootstrap resamples in which the chosen one is better

    @property
    def ruled_out(self) -> bool:
        return self.confidence >= CONFIDENCE

    @property
    def tolerated(self) -> bool:
        return self.ruled_out or self.differ <= TOLERATED

    def describe(self) -> str:
        return (f"{self.rival}: cost {self.rival_cost:.4f} against {self.chosen_cost:.4f} on {self.frames} frames "
                f"({self.differ:.0%}), chosen better in {self.confidence:.1%} of resamples")


def one_second(times: np.ndarray) -> int:
    """The bootstrap's block: one second of frames at the stream's median frame interval."""
    times = np.asarray(times, np.float64)
    return max(1, round(1.0 / float(np.median(np.diff(times))))) if len(times) > 1 else 1


def block_bootstrap(differences: np.ndarray, block: int, resamples: int = RESAMPLES, seed: int = SEED) -> float:
    """Share of circular block-bootstrap resamples of `differences` (rival − chosen, per frame, in
    order) whose mean is above 0 (ties count half): the one-sided confidence that the chosen
    hypothesis is the better. 0.5 for no frames."""
    d = np.asarray(differences, np.float64)
    n = len(d)
    if n == 0:
        return 0.5
    block = int(min(max(1, block), n))
    blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(resamples, -1)[:, :n] % n
    means = d[idx].mean(axis=1)
    return float(np.mean(means > 0) + 0.5 * np.mean(means == 0))


def compare(chosen_costs: np.ndarray, rival_costs: np.ndarray, differs: np.ndarray, block: int,
            rival: str) -> Comparison:
    """The chosen hypothesis against a rival, on the frames where `differs` (they name another HQ
    frame, or cut it from another rectangle). The bootstrap's block (`block` frames of the share, one
    second) holds the compared frames of one second: `block` × the share of frames compared (a rival
    that differs on one frame a second compares independent frames)."""
    differs = np.asarray(differs, bool)
    d = (np.asarray(rival_costs) - np.asarray(chosen_costs))[differs]
    # a block is one second of the share: of the frames compared, those that fall in one second
    block = max(1, round(block * float(differs.mean()))) if len(differs) else block
    chosen = float(np.mean(np.asarray(chosen_costs)[differs])) if differs.any() else float("nan")
    other = float(np.mean(np.asarray(rival_costs)[differs])) if differs.any() else float("nan")
    return Comparison(rival, int(differs.sum()), float(differs.mean()) if len(differs) else 0.0, chosen, other,
                      block_bootstrap(d, block) if differs.any() else 1.0)


@dataclass(frozen=True)
class StandIn:
    """A rival timing whose own rectangle stands in for its timing (on the frames it pairs differently)."""

    rival: str
    frames: int
    chosen_cost: float  # the chosen account's mean cost on those frames
    rival_cost: float  # the rival timing with its own rectangle
    held_cost: float  # the rival timing with the chosen account's rectangle

    def describe(self) -> str:
        return (f"\"{self.rival}\" with its own rectangle costs {self.rival_cost:.4f} against the chosen "
                f"{self.chosen_cost:.4f}, and {self.held_cost:.4f} with the chosen rectangle, on the {self.frames} "
                f"frames where they differ")


@dataclass(frozen=True)
class Verdict:
    """Which hypothesis the costs choose, and how it fares against each rival."""

    chosen: int  # index into the hypotheses
    comparisons: tuple[Comparison, ...]  # the chosen one against every other timing of its geometry
    geometry: Comparison | None  # the best fitted account against the best whole-picture one
    stand_ins: tuple[StandIn, ...] = ()  # rival timings whose own rectangle stands in for their timing

    @property
    def decided(self) -> bool:
        return all(c.tolerated for c in self.comparisons) and not self.stand_ins

    @property
    def runner_up(self) -> Comparison | None:
        """The rival the chosen one is least sure to beat."""
        return min(self.comparisons, key=lambda c: (c.tolerated, c.confidence), default=None)


def decide(hyps, costs: np.ndarray, block: int) -> Verdict:
    """Choose among hypotheses (`hypotheses.Hypothesis`, with `costs` (hypotheses, frames)).

    First the geometry, for the share as a whole: the simplest (the whole picture) unless the best
    fitted account beats the best whole-picture account with `CONFIDENCE`. A fitted rectangle has
    four free numbers, and on a steady pan or zoom they can stand in for a start a frame away (a box
    1 px over on a 1 px/frame pan), so a rectangle is chosen only where the data demand one, and never
    per timing. Then, among the accounts of that geometry, the timing of least mean cost over the
    frames every hypothesis names, compared with each other timing on the frames where they differ.
    Where the chosen account's rectangle is fitted, each rival timing that also has that rectangle
    among its hypotheses is checked for a `StandIn`."""
    costs = np.asarray(costs, np.float64)
    valid = np.isfinite(costs).all(axis=0)
    c = costs[:, valid]
    everywhere = np.ones(c.shape[1], bool)

    def mean(i: int) -> float:
        return float(np.mean(c[i])) if c.shape[1] else 0.0

    fitted = [i for i, h in enumerate(hyps) if h.geometry == "fitted"]
    whole = [i for i, h in enumerate(hyps) if h.geometry != "fitted"]
    geometry = None
    family = list(range(len(hyps)))
    if fitted and whole:
        best_fitted, best_whole = min(fitted, key=lambda i: (mean(i), i)), min(whole, key=lambda i: (mean(i), i))
        geometry = compare(c[best_fitted], c[best_whole], everywhere, block, hyps[best_whole].name)
        family = fitted if geometry.ruled_out else whole
    chosen = min(family, key=lambda i: (mean(i), i))
    comparisons = []
    for other in family:
        if other == chosen or hyps[other].timing == hyps[chosen].timing:
            continue
        pairs = np.asarray(hyps[chosen].mapping)[valid] != np.asarray(hyps[other].mapping)[valid]
        same_box = hyps[chosen].box == hyps[other].box and hyps[chosen].bars == hyps[other].bars
        comp = compare(c[chosen], c[other], pairs if same_box else everywhere, block, hyps[other].name)
        comparisons.append(Comparison(comp.rival, comp.frames, float(pairs.mean()) if len(pairs) else 0.0,
                                      comp.chosen_cost, comp.rival_cost, comp.confidence))
    return Verdict(chosen, tuple(comparisons), geometry, _stand_ins(hyps, c, valid, chosen, family))


def _stand_ins(hyps, c: np.ndarray, valid: np.ndarray, chosen: int, family: list[int]) -> tuple[StandIn, ...]:
    """Rival timings (of the chosen geometry family, fitted) whose cheapest own rectangle removes more
    of their cost over the chosen account than remains: held = the timing with the chosen rectangle,
    own = its cheapest hypothesis; gain = held − own, gap = own − chosen, means over the frames where
    the timing pairs differently; a stand-in where gain > gap."""
    ch = hyps[chosen]
    if ch.geometry != "fitted":
        return ()
    out = []
    for timing in dict.fromkeys(hyps[i].timing for i in family):
        if timing == ch.timing:
            continue
        mine = [i for i in family if hyps[i].timing == timing]
        held = [i for i in mine if hyps[i].box == ch.box and hyps[i].bars == ch.bars]
        own = min(mine, key=lambda i: (float(np.mean(c[i])) if c.shape[1] else 0.0, i))
        if not held or own in held:
            continue
        pairs = np.asarray(hyps[own].mapping)[valid] != np.asarray(ch.mapping)[valid]
        if not pairs.any():
            continue
        mean = {i: float(np.mean(c[i][pairs])) for i in (chosen, own, held[0])}
        if mean[held[0]] - mean[own] > mean[own] - mean[chosen]:
            out.append(StandIn(hyps[own].name, int(pairs.sum()), mean[chosen], mean[own], mean[held[0]]))
    return tuple(out)
