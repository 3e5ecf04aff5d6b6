"""Progress events: what pipelines and long library loops report while they work, as typed values.

Every long function takes `progress: Progress | None` and calls `progress(event)` with one of the events
below; its docstring lists which. Only the CLI turns events into a display (`match event: case
BenchFrame(): ...`); `quiet` ignores them. A pipeline that runs another (the demo, synth-reds' bicubic
scoring) passes the inner events through unchanged: their type says where they come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Event:
    """The base of every progress event."""


Progress = Callable[[Event], None]


def quiet(event: Event) -> None:
    """The callback used when the caller passes none."""


# --- any pipeline -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note(Event):
    """Something the user should know that is not an error (a fallback taken, work reused)."""

    text: str


@dataclass(frozen=True)
class Step(Event):
    """One step of a multi-step pipeline begins (the demo's "1/5 ...")."""

    text: str


@dataclass(frozen=True)
class StepDone(Event):
    """The step begun by the last Step has finished, after `seconds` of its own."""

    text: str
    seconds: float


# --- synth-reds (uvssm.pipelines.synth, .bicubic) ----------------------------------------------------------

@dataclass(frozen=True)
class SynthPlan(Event):
    total: int  # frames to encode over every setting
    units: list[str]  # the output folders, e.g. LQ_qp28_x2


@dataclass(frozen=True)
class SynthFrames(Event):
    n: int  # frames just written


@dataclass(frozen=True)
class SynthClip(Event):
    unit: str
    clip: str
    status: str  # "done", "failed" or "skipped"
    message: str | None = None  # the reason, when failed


@dataclass(frozen=True)
class BicubicSetting(Event):
    """The bicubic row of one synthesised setting is scored next (then the bench events)."""

    name: str
    frames: int


# --- build (uvssm.pipelines.build) -------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildPlan(Event):
    platform: str
    total: int  # pairs found
    todo: int  # pairs to build (the rest are done)


@dataclass(frozen=True)
class BuildPair(Event):
    platform: str
    clip: str
    status: str  # "built" or "left out"
    message: str | None = None  # why it was left out


# --- simulated shares (the demo's step 2: uvssm.pipelines.sample's originals, uvssm.pipelines.simulate) -------

@dataclass(frozen=True)
class SharePlan(Event):
    platform: str
    total: int  # clips to share (each: its original encoded, then shared)


@dataclass(frozen=True)
class ShareMade(Event):
    platform: str
    clip: str
    status: str  # "made", or "reused" when the share was already on disk


# --- bench (benchmarks.harness) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchData(Event):
    text: str  # the dataset, described
    device: str
    rank: int
    world: int


@dataclass(frozen=True)
class BenchModel(Event):
    model: str
    frames: int  # frames this process scores for it
    params: int
    dcn_backend: str | None


@dataclass(frozen=True)
class BenchSkip(Event):
    """A shard already scored with the same weights and settings (resume)."""

    model: str
    clip: str
    frames: int


@dataclass(frozen=True)
class BenchFrame(Event):
    model: str


@dataclass(frozen=True)
class BenchClip(Event):
    model: str
    clip: str  # the clip, or "clip C frames a-b" for a shard
    psnr: float
    ssim: float


# --- restore (uvssm.pipelines.restore, .restored) ----------------------------------------------------------

@dataclass(frozen=True)
class RestoreCheck(Event):
    """The input is decoded once before the model runs (a truncated file fails here, at once)."""

    frames: int  # decoded so far
    total: int  # the frames the file's header lists (0: not listed)


@dataclass(frozen=True)
class RestoreStart(Event):
    frames: int
    size: tuple[int, int]
    out_size: tuple[int, int]
    fps: float
    device: str


@dataclass(frozen=True)
class RestoreFrame(Event):
    index: int  # frames written so far


@dataclass(frozen=True)
class RestoreClip(Event):
    """A first stage restores a clip's LQ frames for the SR stage's training (uvssm.pipelines.train.restore_dataset)."""

    clip: str
    frames: int
    out: Path


# --- train (uvssm.pipelines.train, models.training.loop) ---------------------------------------------------

@dataclass(frozen=True)
class TrainRun(Event):
    """The demo trains one config next (then the training events)."""

    config: str
    iterations: int
    data: Path


@dataclass(frozen=True)
class TrainData(Event):
    train: str  # the training data, described
    val: str | None


@dataclass(frozen=True)
class TrainStart(Event):
    start: int  # the iteration it starts after (0, or where it resumed)
    total: int
    params: int  # trainable


@dataclass(frozen=True)
class TrainStep(Event):
    iteration: int
    total: int


@dataclass(frozen=True)
class TrainIter(Event):
    """A logged iteration: the mean loss since the last one."""

    iteration: int
    total: int
    loss: float
    lr: float
    its: float  # iterations per second


@dataclass(frozen=True)
class TrainVal(Event):
    iteration: int
    psnr: float
    baseline: str  # what the model is compared with: "bicubic", "lq", "unwarped", "unrestored"
    baseline_psnr: float
    clips: int
    row: dict = field(default_factory=dict)  # every column of the validation log's row


@dataclass(frozen=True)
class TrainSave(Event):
    iteration: int
    path: Path


@dataclass(frozen=True)
class TrainDone(Event):
    iteration: int
    total: int
    resumed: bool  # nothing left to train: the run had finished before
    val: dict | None = None
