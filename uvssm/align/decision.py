"""The chosen account of a share against its rivals, with a margin measured in the share's own noise.

Each hypothesis has a cost per LQ frame (the log of its error at LQ size, `hypotheses.costs`). Two
hypotheses are compared on the frames where they differ, by the mean of the per-frame cost
differences; how sure that comparison is comes from a circular block bootstrap of those differences
over the share's own frames (blocks of one second: frames within a second share their motion and the
encoder's rate control, so they are not independent draws). No threshold is fitted to a share:

- `CONFIDENCE`: a rival is ruled out when the chosen hypothesis is better in at least 99% of the
  resamples (a one-sided 99% confidence level, the usual one for a claim that is written as data);
- `TOLERATED`: a rival that cannot be ruled out but pairs at most 1% of the frames differently is
  tolerated, since a pair is allowed that 1% (a pair counts as right at 99% of its frames right).
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
    frame, or cut it from another rectangle)."""
    differs = np.asarray(differs, bool)
    d = (np.asarray(rival_costs) - np.asarray(chosen_costs))[differs]
    chosen = float(np.mean(np.asarray(chosen_costs)[differs])) if differs.any() else float("nan")
    other = float(np.mean(np.asarray(rival_costs)[differs])) if differs.any() else float("nan")
    return Comparison(rival, int(differs.sum()), float(differs.mean()) if len(differs) else 0.0, chosen, other,
                      block_bootstrap(d, block) if differs.any() else 1.0)


@dataclass(frozen=True)
class Verdict:
    """Which hypothesis the costs choose, and how it fares against each rival."""

    chosen: int  # index into the hypotheses
    comparisons: tuple[Comparison, ...]  # the chosen one against the best of every other timing
    geometry: Comparison | None  # the chosen timing's fitted rectangle against the whole picture

    @property
    def decided(self) -> bool:
        return all(c.tolerated for c in self.comparisons)

    @property
    def runner_up(self) -> Comparison | None:
        """The rival the chosen one is least sure to beat."""
        return min(self.comparisons, key=lambda c: (c.tolerated, c.confidence), default=None)


def decide(hyps, costs: np.ndarray, block: int) -> Verdict:
    """Choose among hypotheses (`hypotheses.Hypothesis`, with `costs` (hypotheses, frames)).

    Per timing, the simplest geometry (the whole picture) unless its fitted rectangle is better with
    `CONFIDENCE`; then the timing of least mean cost over the frames every hypothesis names, compared
    with the best of each other timing on the frames where they differ."""
    costs = np.asarray(costs, np.float64)
    valid = np.isfinite(costs).all(axis=0)
    c = costs[:, valid]
    everywhere = np.ones(c.shape[1], bool)
    timings = list(dict.fromkeys(h.timing for h in hyps))
    best_of: dict[str, int] = {}
    geometry: dict[str, Comparison | None] = {}
    for t in timings:
        idx = [i for i, h in enumerate(hyps) if h.timing == t]
        fitted = [i for i in idx if hyps[i].geometry == "fitted"]
        whole = [i for i in idx if hyps[i].geometry != "fitted"]
        if fitted and whole:
            g = compare(c[fitted[0]], c[whole[0]], everywhere, block, f"{t}, whole picture")
            best_of[t], geometry[t] = (fitted[0] if g.ruled_out else whole[0]), g
        else:
            best_of[t], geometry[t] = idx[0], None
    best_t = min(timings, key=lambda t: (float(np.mean(c[best_of[t]])) if c.shape[1] else 0.0, timings.index(t)))
    chosen = best_of[best_t]
    comparisons = []
    for t in timings:
        if t == best_t:
            continue
        other = best_of[t]
        pairs = np.asarray(hyps[chosen].mapping)[valid] != np.asarray(hyps[other].mapping)[valid]
        same_box = hyps[chosen].box == hyps[other].box and hyps[chosen].bars == hyps[other].bars
        differs = pairs if same_box else everywhere
        comp = compare(c[chosen], c[other], differs, block, hyps[other].name)
        comparisons.append(Comparison(comp.rival, comp.frames, float(pairs.mean()) if len(pairs) else 0.0,
                                      comp.chosen_cost, comp.rival_cost, comp.confidence))
    return Verdict(chosen, tuple(comparisons), geometry[best_t])
