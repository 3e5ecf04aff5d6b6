"""Learning-rate schedules. `CosineRestarts` is the VOTES/BasicSR one; `StepDecay` holds the rate
constant within each period (TGA's StepLR: ×0.1 every 10 epochs).

Cosine annealing with restarts, as BasicSR's CosineAnnealingRestartLR steps it in VOTES training.

BasicSR calls `scheduler.step()` before every iteration from the second on, so iteration n (1-based)
runs at the scheduler position e = n − 1. Within period k (of length P_k, starting at position
R_k = P_0 + … + P_{k−1}):

    lr(e) = eta_min + w_k · ½ (lr_0 − eta_min) (1 + cos(π · ((e − R_k) / P_k)))

evaluated in BasicSR's order (`CosineAnnealingRestartLR.get_lr`: the fraction first, then π), so every rate is
the official one to the last bit.

A position equal to the end of a period still belongs to that period (lr = eta_min there). Past
the last period the rate stays at eta_min (BasicSR would fail there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _checked_weights(periods: tuple[int, ...], weights: tuple[float, ...]) -> tuple[float, ...]:
    """One weight per period (all 1 when none are given); periods positive."""
    weights = weights or tuple(1.0 for _ in periods)
    if len(weights) != len(periods) or not periods or min(periods) <= 0:
        raise ValueError("periods must be positive and restart_weights must have one weight per period")
    return tuple(weights)


@dataclass(frozen=True)
class CosineRestarts:
    base_lr: float
    periods: tuple[int, ...]
    restart_weights: tuple[float, ...] = ()
    eta_min: float = 1e-7

    def __post_init__(self):
        object.__setattr__(self, "restart_weights", _checked_weights(self.periods, self.restart_weights))

    @property
    def total(self) -> int:
        return sum(self.periods)

    def lr_at(self, iteration: int) -> float:
        """Learning rate of 1-based training iteration `iteration`."""
        e = max(0, iteration - 1)
        start = 0
        for period, weight in zip(self.periods, self.restart_weights):
            if e <= start + period:
                return self.eta_min + weight * 0.5 * (self.base_lr - self.eta_min) * (
                    1 + math.cos(math.pi * ((e - start) / period)))
            start += period
        return self.eta_min


@dataclass(frozen=True)
class StepDecay:
    """lr = base_lr · weight_k, constant over period k (iteration n runs at position n − 1, as above);
    past the last period the last rate holds."""

    base_lr: float
    periods: tuple[int, ...]
    restart_weights: tuple[float, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "restart_weights", _checked_weights(self.periods, self.restart_weights))

    def lr_at(self, iteration: int) -> float:
        e = max(0, iteration - 1)
        start = 0
        for period, weight in zip(self.periods, self.restart_weights):
            if e < start + period:
                return self.base_lr * weight
            start += period
        return self.base_lr * self.restart_weights[-1]


@dataclass(frozen=True)
class LinearWarmup:
    """A linear warm-up over the first `iterations` iterations (W), of one of two kinds:

    - "basicsr" (`BaseModel.update_learning_rate` with `warmup_iter` W): below iteration W the rate is
      `initial_lr / W * n` (the schedule's own rate is overwritten meanwhile, while the schedule keeps counting),
      from iteration W on the schedule's;
    - "scaled" (uvssm's short-run recipe): the schedule's rate times min(1, n / W), so the ramp ends on the
      schedule rather than above it (on a 150-iteration cosine, 9% lower at n = 29).

    Adam's first steps move every weight by about the learning rate whatever its gradient; with
    signal-preserving initialisations (`models.training.init`) that first jolt can throw a model
    into a state it takes hundreds of iterations to leave, so short runs ramp the rate up."""

    schedule: CosineRestarts | StepDecay
    iterations: int
    kind: str = "basicsr"

    def lr_at(self, iteration: int) -> float:
        if self.kind == "scaled":
            return self.schedule.lr_at(iteration) * min(1.0, max(iteration, 1) / self.iterations)
        if iteration < self.iterations:
            return self.schedule.base_lr / self.iterations * max(iteration, 1)
        return self.schedule.lr_at(iteration)


WARMUPS = ("basicsr", "scaled")


def make_schedule(kind: str, base_lr: float, periods, weights, eta_min: float, warmup: int = 0,
                  warmup_kind: str = "basicsr"):
    if kind == "cosine":
        schedule = CosineRestarts(base_lr, tuple(periods), tuple(weights), eta_min)
    elif kind == "step":
        schedule = StepDecay(base_lr, tuple(periods), tuple(weights))
    else:
        raise ValueError(f"schedule must be 'cosine' or 'step', got {kind!r}")
    if warmup_kind not in WARMUPS:
        raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup_kind!r}")
    return LinearWarmup(schedule, warmup, warmup_kind) if warmup > 0 else schedule
