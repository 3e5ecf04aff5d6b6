"""Metrics as data: each one a `Metric` that the harness, the result tables, `report` and the display loop over.

A metric has a name (what `--metrics` takes), the per-frame column it fills, a table label and format,
whether higher is better, where it computes (on the device, or through ffmpeg on the host), and a scorer
factory. A scorer sees every scored output frame of a shard with its HQ frame, in order, and returns its
column(s) and the constant provenance columns it adds (VMAF's model and libvmaf version).

PSNR and SSIM (Table 2's, always computed) share one scorer: one pass over Y, on the device, read back once.
A new metric is one module that defines a scorer and calls `register(Metric(...))`; the frame schema, the
clip and Table-2 aggregation, the screen tables and the run key then carry it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from uvssm.base.errors import UvssmError
from uvssm.base.metrics import MetricConfig, psnr_ssim, quantize

METRIC_BATCH = 8  # output frames scored together on the device


@dataclass
class ScoreContext:
    """What a scorer of one shard may need: the clip, the frames scored (start..end-1), the metric settings,
    the device, the bench options (ffmpeg, VMAF model), and the clock its time goes to."""

    clip: object  # uvssm.base.datasets.ClipPair
    start: int
    end: int
    config: MetricConfig
    device: torch.device
    opts: object  # benchmarks.options.BenchOptions
    clock: object  # uvssm.base.timing.SectionClock, with a "metric" section


class Scorer(Protocol):
    def add(self, index: int, out: torch.Tensor, gt: torch.Tensor) -> None:
        """Output (3, H, W) float in [0, 1] and HQ (3, H, W) uint8, both on the device."""

    def finish(self) -> dict[str, list[float]]:
        """Per column, one value per frame added, in order."""

    def provenance(self) -> dict:
        """Constant columns of this shard's rows (settings and versions), filled after `finish`."""

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class Metric:
    name: str  # as --metrics takes it
    column: str  # the per-frame column it fills
    label: str  # table header
    fmt: str  # number format in tables
    higher_is_better: bool
    where: str  # "device" or "ffmpeg"
    scorer: Callable[[ScoreContext], Scorer]  # metrics that share a scorer (PSNR, SSIM) name the same factory
    required: bool = False  # always computed (Table 2's PSNR and SSIM)
    all_frames: bool = False  # a clip's mean only where every frame has a value (else NaN), not over some
    provenance_columns: tuple[str, ...] = ()  # constant columns its scorer adds to each row
    run_key: Callable[[object], object] | None = None  # what of the options changes its numbers (for resume)
    check: Callable[[object], object] | None = None  # validate the options before any work; returns them
    description: str = ""


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in METRICS and METRICS[metric.name] != metric:
        raise ValueError(f"metric {metric.name!r} is registered already")
    METRICS[metric.name] = metric
    return metric


def parse_metrics(text: str) -> tuple[str, ...]:
    """"psnr,ssim,vmaf" (a --metrics value) → ("psnr", "ssim", "vmaf"); `resolve` checks the names."""
    return tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))


def resolve(names: tuple[str, ...]) -> list[Metric]:
    """The metrics of `names` (the required ones must be among them), in registration order."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UvssmError(f"--metrics: unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    required = [m.name for m in METRICS.values() if m.required]
    if not set(required) <= set(names):
        raise UvssmError(f"--metrics must include {' and '.join(required)} (Table 2's); add others beside them")
    return [m for m in METRICS.values() if m.name in names]


def frame_columns() -> list[str]:
    """Every registered metric's column and provenance columns, in registration order (the frame schema's part)."""
    cols: list[str] = []
    for m in METRICS.values():
        cols += [c for c in (m.column, *m.provenance_columns) if c not in cols]
    return cols


def open_scorers(metrics: list[Metric], ctx: ScoreContext) -> list[Scorer]:
    """One scorer per factory (PSNR and SSIM share theirs)."""
    factories = list(dict.fromkeys(m.scorer for m in metrics))
    return [factory(ctx) for factory in factories]


def clip_mean(metric: Metric):
    """How a clip's frames (and Table 2's clips) aggregate for this metric."""
    if not metric.all_frames:
        return "mean"
    return lambda v: float(v.mean()) if len(v) and v.notna().all() else float("nan")


# --- PSNR and SSIM: Table 2's, on the device --------------------------------------------------------------

class PsnrSsimScorer:
    """PSNR and SSIM of METRIC_BATCH frames at a time on the device (uvssm.base.metrics, BasicSR's protocol),
    kept on the device and read back once when the shard finishes."""

    def __init__(self, ctx: ScoreContext):
        self.ctx = ctx
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.scores: list[torch.Tensor] = []

    def _score(self) -> None:
        with self.ctx.clock.section("metric"):
            p, s = psnr_ssim(torch.stack([o for o, _ in self.pending]), torch.stack([g for _, g in self.pending]),
                             self.ctx.config)
            self.scores.append(torch.stack([p, s], dim=1))
        self.pending.clear()

    def add(self, index: int, out: torch.Tensor, gt: torch.Tensor) -> None:
        self.pending.append((out, gt))
        if len(self.pending) == METRIC_BATCH:
            self._score()

    def finish(self) -> dict[str, list[float]]:
        if self.pending:
            self._score()
        values = torch.cat(self.scores).cpu().tolist() if self.scores else []  # the one read back
        return {"psnr": [v[0] for v in values], "ssim": [v[1] for v in values]}

    def provenance(self) -> dict:
        return self.ctx.config.columns()

    def close(self) -> None:
        self.pending.clear()


# --- VMAF: through ffmpeg's libvmaf, on the host ----------------------------------------------------------

class VmafScorer:
    """libvmaf per frame at HQ size (benchmarks.vmaf), with the reference frames just outside the shard as
    motion context, so a frame's score does not depend on where its shard starts or ends."""

    def __init__(self, ctx: ScoreContext):
        from benchmarks.vmaf import VmafStream, default_threads

        clip, opts = ctx.clip, ctx.opts
        self.ctx, self.version = ctx, None
        self.stream = VmafStream(opts.ffmpeg, (clip.scale * clip.lq_size[1], clip.scale * clip.lq_size[0]),
                                 opts.vmaf_model, default_threads())
        if ctx.start > 0:
            ref = clip.hq(ctx.start - 1)
            self.stream.add(ref, ref, keep=False)

    def add(self, index: int, out: torch.Tensor, gt: torch.Tensor) -> None:
        t0 = time.perf_counter()
        self.stream.add(quantize(out).permute(1, 2, 0).cpu().numpy(), gt.permute(1, 2, 0).cpu().numpy())
        self.ctx.clock.add_host("metric", time.perf_counter() - t0)  # host work (the copies wait for the GPU)

    def finish(self) -> dict[str, list[float]]:
        t0 = time.perf_counter()
        clip = self.ctx.clip
        if self.ctx.end < clip.n_frames:
            ref = clip.hq(self.ctx.end)
            self.stream.add(ref, ref, keep=False)
        try:
            result = self.stream.compute()
        except RuntimeError as exc:
            raise UvssmError(f"{clip.hq_dir}: {exc}") from None
        self.version = result.version
        self.ctx.clock.add_host("metric", time.perf_counter() - t0)
        return {"vmaf": result.scores}

    def provenance(self) -> dict:
        return {"metric_vmaf_model": self.ctx.opts.vmaf_model, "metric_vmaf_version": self.version}

    def close(self) -> None:
        self.stream.close()


def _check_vmaf(opts):
    """Find an ffmpeg with libvmaf (one-line error otherwise); returns the options naming it."""
    from dataclasses import replace

    from benchmarks.vmaf import has_libvmaf
    from uvssm.base.ffmpeg import find_ffmpeg

    ffmpeg = find_ffmpeg(opts.ffmpeg)
    if not has_libvmaf(ffmpeg.path):
        raise UvssmError(f"{ffmpeg.path}: this ffmpeg has no libvmaf filter, so --metrics vmaf cannot run "
                         "(use one built with --enable-libvmaf, e.g. imageio-ffmpeg's, via --ffmpeg or UVSSM_FFMPEG)")
    return replace(opts, ffmpeg=ffmpeg.path)


register(Metric("psnr", "psnr", "PSNR", ".2f", True, "device", PsnrSsimScorer, required=True,
                description="dB; Y BT.601 (or RGB), `crop_border` pixels cropped, BasicSR's calculate_psnr"))
register(Metric("ssim", "ssim", "SSIM", ".4f", True, "device", PsnrSsimScorer, required=True,
                description="11x11 Gaussian (sigma 1.5) SSIM, valid region, BasicSR's calculate_ssim"))
register(Metric("vmaf", "vmaf", "VMAF", ".2f", True, "ffmpeg", VmafScorer, all_frames=True,
                provenance_columns=("metric_vmaf_model", "metric_vmaf_version"),
                run_key=lambda opts: opts.vmaf_model, check=_check_vmaf,
                description="libvmaf (vmaf_v0.6.1) at HQ size through ffmpeg"))


def empty_provenance(metrics: list[Metric]) -> dict:
    """The provenance columns of registered metrics not computed in a run (None)."""
    active = {c for m in metrics for c in m.provenance_columns}
    return {c: None for m in METRICS.values() for c in m.provenance_columns if c not in active}


def nan_columns(metrics: list[Metric], n: int) -> dict[str, list[float]]:
    """The columns of registered metrics not computed in a run (NaN for each of `n` frames)."""
    active = {m.column for m in metrics}
    return {m.column: [math.nan] * n for m in METRICS.values() if m.column not in active}
