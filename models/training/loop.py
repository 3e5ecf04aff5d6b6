"""The training loop, on CPU, one GPU, or several through torchrun. Three stages share it:

    "dsm"      VOTES's degradation sensing module alone learns ẑ_{t-1}, ẑ_t, ẑ_{t+1} ≈ z (eq. 7)
    "flow"     a model's flow network (SPyNet) alone, self-supervised on LQ sequences
    "restore"  the whole model (VOTES: with the DSM frozen, the official recipe; a flow network at its own rate)

Each stage is one small function (`dsm_stage`, `flow_stage`, `restoration_stage`) returning a `StageParts`:
what is trained and saved, Adam's parameter groups, the loss of a batch and the validation. `train` runs the
shared steps around it. Per iteration n (1-based): lr from the schedule, one batch, loss, backward, Adam step.
A step reads nothing back from the device (`train_step`, `LossWindow`): the loss is read once per `log_every`
iterations, when the caller's `progress` callback gets the mean loss, lr and iterations/s; every
`val_every` the PSNR on the validation clips; every `save_every` (and at the end) a checkpoint is written
atomically to `out/checkpoints/latest.pt` (and `iter_<n>.pt`), with the logs beside it as parquet.
`resume=True` continues from `latest.pt`; because batches are a function of (seed, iteration), a resumed run
takes exactly the steps an uninterrupted one would. `resume_from` continues a run of the official code from its
BasicSR training state (the Adam group holds every parameter in the model's order, as the official one does).

Validation runs restoration through `models.inference.restore_frames` for every model kind (sliding-window
and recurrent), so a validation PSNR is computed as `uvssm bench` computes its numbers.

Multi-GPU: launch with `torchrun --nproc_per_node N`; each process takes `batch_size` samples per
iteration (as BasicSR's batch_size_per_gpu), gradients are averaged by DistributedDataParallel, and
rank 0 validates and writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from models import checkpoint
from models.flow import warp
from models.inference import Stage, restore_frames
from models.training.config import TrainConfig
from models.training.data import Clip, WindowPatches
from models.training.losses import LOSSES
from models.training.schedule import make_schedule
from models.votes import dfm_agreement
from models.windows import evenly_spaced, reflection_circle
from uvssm.base import atomic
from uvssm.base.devices import Distributed, barrier
from uvssm.base.frames import frames_to_tensor
from uvssm.base.errors import UvssmError
from uvssm.base.metrics import VideoScores, psnr, quantize
from uvssm.base.progress import (Progress, TrainDone, TrainIter, TrainSave, TrainStart, TrainStep, TrainVal,
                                  quiet)
from uvssm.base.scalers import imresize

# the PSNRs (ours, baseline) in dB of a clip's chosen validation frames
ClipScores = Callable[[Clip, list[int]], list[tuple[float, ...]]]  # (model, baseline[, a third score]) per frame


@dataclass
class StageParts:
    """What one training stage adds to the shared steps."""

    trainable: nn.Module  # the module that is optimised and saved (VOTES's `bin`, a `spynet`, or the model)
    groups: list[dict]  # Adam's parameter groups, each with "lr_mul" and "fixed" (iterations at lr 0)
    loss: Callable[[nn.Module, dict], Tensor]  # (trainable, maybe DDP-wrapped; batch on the CPU) -> loss
    validate: Callable[[Sequence[Clip]], dict]  # {"psnr", "baseline_psnr", "baseline", "clips"}
    with_ref: bool = False  # batches carry the reference frames z (stage "dsm")
    finish: Callable[[], None] = lambda: None  # after the last iteration


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _trainable_params(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


@torch.no_grad()
def _validation(model: nn.Module, clips: Sequence[Clip], frames_per_clip: int, baseline: str,
                clip_scores: ClipScores) -> dict:
    """Mean PSNR over clips (clip mean first) of `clip_scores` on each clip's evenly spaced frames, beside the
    baseline's, and the mean of a third score where `clip_scores` gives one (the DSM's `dfm_corr`, else NaN);
    the model is in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    ours, base, agreement = VideoScores(), VideoScores(), VideoScores()
    for clip in clips:
        for a, b, *more in clip_scores(clip, evenly_spaced(clip.n_frames, frames_per_clip)):
            ours.update(clip.name, [a])
            base.update(clip.name, [b])
            agreement.update(clip.name, more)
    model.train(was_training)
    return {"psnr": ours.compute(), "baseline_psnr": base.compute(), "baseline": baseline, "clips": len(clips),
            "dfm_corr": agreement.compute() if agreement.per_clip and all(agreement.per_clip.values()) else math.nan}


def _lq(clip: Clip, i: int) -> Tensor:
    return frames_to_tensor(clip.lq(i))


def _rgb_psnr(pred: Tensor, target: Tensor) -> float:
    return float(psnr(quantize(pred.float()), quantize(target), crop_border=0, color_space="rgb")[0])


def dsm_stage(model: nn.Module, cfg: TrainConfig, runner: Stage, device: torch.device) -> StageParts:
    """Stage 1 of VOTES: the degradation sensing module learns the down-scaled HQ frames t−1, t, t+1 (eq. 7,
    L1 summed over the three). Validation: ẑ_t against z_t (RGB, no crop), beside the LQ frame itself, and
    `dfm_corr`, the DFM's agreement with the true degradation (`models.votes.dfm_agreement`): what VOTES
    uses the DSM for. Early in training ẑ_t scores below the LQ frame, which is already close to z_t."""
    if "bin" not in runner.features:
        raise UvssmError(f"stage 'dsm' trains VOTES's degradation sensing module; {type(model).__name__} has none")
    model.train_bin(True)
    loss_fn = LOSSES[cfg.loss]

    def loss(net: nn.Module, batch: dict) -> Tensor:
        lq = batch["lq"].to(device, non_blocking=True)
        ref = batch["ref"].to(device, non_blocking=True)  # z_{t-1}, z_t, z_{t+1}
        with _autocast(device, cfg.bf16):
            pair, z_t = net(lq)  # (B, 2, 3, h, w): ẑ_{t-1}, ẑ_{t+1}; (B, 3, h, w): ẑ_t
            estimates = (pair[:, 0], z_t, pair[:, 1])
            return sum(loss_fn(e.float(), ref[:, j], reduction=cfg.loss_reduction) for j, e in enumerate(estimates))

    def clip_scores(clip: Clip, picked: list[int]) -> list[tuple[float, float]]:
        scores = []
        for c in picked:
            window = torch.stack([_lq(clip, i) for i in reflection_circle(c, clip.n_frames, runner.num_frame)])
            window = window.unsqueeze(0).to(device)
            with _autocast(device, cfg.bf16):
                _, z_t = model.bin(window)
            ref = frames_to_tensor(clip.ref(c)).unsqueeze(0).to(device)
            x_t = window[:, window.shape[1] // 2]
            scores.append((_rgb_psnr(z_t, ref), _rgb_psnr(x_t, ref), dfm_agreement(x_t, z_t.float(), ref)))
        return scores

    return StageParts(model.bin, [{"params": _trainable_params(model.bin), "lr_mul": 1.0, "fixed": 0}], loss,
                      lambda clips: _validation(model, clips, cfg.val_frames, "lq", clip_scores),
                      with_ref=True, finish=lambda: model.train_bin(False))


def flow_stage(model: nn.Module, cfg: TrainConfig, runner: Stage, device: torch.device) -> StageParts:
    """Pre-training of a model's flow network on LQ sequences (`flow_loss`). Validation: frame t+1 warped onto
    frame t against frame t (RGB, LQ size), beside frame t+1 unwarped."""
    if "spynet" not in runner.features:
        raise UvssmError(f"stage 'flow' pre-trains a flow network; {type(model).__name__} has none")
    loss_fn = LOSSES[cfg.loss]

    def loss(net: nn.Module, batch: dict) -> Tensor:
        lq = batch["lq"].to(device, non_blocking=True)
        with _autocast(device, cfg.bf16):
            return flow_loss(net, lq.float(), loss_fn, cfg.loss_reduction, cfg.smooth_weight)

    def clip_scores(clip: Clip, picked: list[int]) -> list[tuple[float, float]]:
        scores = []
        for c in picked:
            nxt = c + 1 if c + 1 < clip.n_frames else c - 1
            ref, supp = (_lq(clip, i).unsqueeze(0).to(device) for i in (c, nxt))
            with _autocast(device, cfg.bf16):
                flow = model.spynet(ref, supp)
            scores.append((_rgb_psnr(warp(supp, flow.float(), padding_mode="border"), ref), _rgb_psnr(supp, ref)))
        return scores

    return StageParts(model.spynet, [{"params": _trainable_params(model.spynet), "lr_mul": 1.0, "fixed": 0}], loss,
                      lambda clips: _validation(model, clips, cfg.val_frames, "unwarped", clip_scores))


def restoration_stage(model: nn.Module, cfg: TrainConfig, runner: Stage, device: torch.device) -> StageParts:
    """The whole model against the target frames (plus the weighted auxiliary losses of models that have them,
    e.g. RSDN's structure/detail); a flow network learns at `flow_lr_mul` × lr and is fixed for the first
    `fix_flow_iter` iterations. Validation: outputs against HQ, Y channel, `scale` pixels cropped (the VOTES
    protocol), beside bicubic-upsampled LQ (at scale 1, towards an LQ-size target: the unrestored LQ)."""
    loss_fn = LOSSES[cfg.loss]
    # every parameter, in the model's order, the frozen DSM's too: the official optimiser's group
    # (`SRModel.setup_optimizers` takes all that require grad, and the official VOTES freezes its DSM only by
    # running it under no_grad). Adam skips a parameter without a gradient, so the steps are the same, and a
    # training state has the official layout (`models.training.state`).
    params = list(model.parameters())
    flow = {id(p) for p in model.spynet.parameters()} if "spynet" in runner.features else set()
    groups = [{"params": [p for p in params if id(p) not in flow], "lr_mul": 1.0, "fixed": 0}]
    if flow:
        groups.append({"params": [p for p in params if id(p) in flow], "lr_mul": cfg.flow_lr_mul,
                       "fixed": cfg.fix_flow_iter})
    with_aux = bool(cfg.aux_weight) and "aux_targets" in runner.features

    def loss(net: nn.Module, batch: dict) -> Tensor:
        lq = batch["lq"].to(device, non_blocking=True)
        gt = batch["gt"].to(device, non_blocking=True)
        with _autocast(device, cfg.bf16):
            if not with_aux:
                return loss_fn(net(lq).float(), gt, reduction=cfg.loss_reduction)
            out, aux = net(lq, return_aux=True)
            total = loss_fn(out.float(), gt, reduction=cfg.loss_reduction)
            for pred, target in model.aux_targets(aux, gt):
                total = total + cfg.aux_weight * loss_fn(pred.float(), target.float(), reduction=cfg.loss_reduction)
            return total

    def clip_scores(clip: Clip, picked: list[int]) -> list[tuple[float, float]]:
        outputs = restore_frames(lambda i: _lq(clip, i), clip.n_frames, picked, runner, device=device, bf16=cfg.bf16)
        scores = []
        for c in picked:
            gt = torch.tensor(clip.hq(c)).permute(2, 0, 1).unsqueeze(0).to(device)  # a copy: frames may be read-only maps
            up = imresize(_lq(clip, c).unsqueeze(0).to(device).double(), clip.scale)
            kwargs = dict(crop_border=clip.scale, color_space="y")
            scores.append((float(psnr(quantize(outputs[c].unsqueeze(0)), gt, **kwargs)[0]),
                           float(psnr(quantize(up), gt, **kwargs)[0])))
        return scores

    def validate(clips: Sequence[Clip]) -> dict:
        baseline = "bicubic" if all(c.scale > 1 for c in clips) else "unrestored"
        return _validation(model, clips, cfg.val_frames, baseline, clip_scores)

    return StageParts(model, groups, loss, validate)


STAGES: dict[str, Callable[[nn.Module, TrainConfig, Stage, torch.device], StageParts]] = {
    "dsm": dsm_stage, "flow": flow_stage, "restore": restoration_stage}


def flow_loss(spynet: nn.Module, lq: torch.Tensor, loss_fn, reduction: str, smooth_weight: float) -> torch.Tensor:
    """Self-supervised flow training on LQ sequences (B, T, 3, h, w): frame t+1 warped by
    spynet(t, t+1) should look like frame t (and the reverse), plus a first-order smoothness term."""
    b, t, c, h, w = lq.shape
    a, bb = lq[:, :-1].reshape(-1, c, h, w), lq[:, 1:].reshape(-1, c, h, w)
    ref, supp = torch.cat([a, bb]), torch.cat([bb, a])
    flow = spynet(ref, supp)
    photometric = loss_fn(warp(supp, flow, padding_mode="border"), ref, reduction=reduction)
    smooth = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., 1:] - flow[..., :-1]).abs().mean()
    per_element = {"sum": ref.numel(), "batch": ref.numel() / ref.shape[0]}.get(reduction, 1)  # as the photometric sum
    return photometric + smooth_weight * smooth * per_element


def _write_logs(out: Path, train_rows: list[dict], val_rows: list[dict]) -> None:
    atomic.write_parquet(out / "train_log.parquet", pd.DataFrame(train_rows, columns=["iteration", "loss", "lr", "seconds"]))
    atomic.write_parquet(out / "val_log.parquet", pd.DataFrame(
        val_rows, columns=["iteration", "psnr", "baseline_psnr", "baseline", "clips", "dfm_corr"]))


def _read_logs(out: Path, upto: int) -> tuple[list[dict], list[dict]]:
    rows = []
    for name in ("train_log.parquet", "val_log.parquet"):
        path = out / name
        df = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["iteration"])
        rows.append(df[df["iteration"] <= upto].to_dict("records"))
    return rows[0], rows[1]


def _resume(latest: Path, parts: StageParts, optimizer: torch.optim.Optimizer, cfg: TrainConfig, meta: dict,
            out: Path) -> tuple[int, list[dict], list[dict]]:
    """(iteration, train log rows, val log rows) of the run saved in `latest`, whose weights and Adam state
    are loaded; refuses a checkpoint of another stage or model."""
    state = checkpoint.read(latest)
    saved = state.get("uvssm", {})
    if saved.get("stage") != cfg.stage or saved.get("model") != meta.get("model"):
        raise UvssmError(f"{latest}: written by stage {saved.get('stage')!r} of {saved.get('model')!r}, "
                         f"cannot resume stage {cfg.stage!r} of {meta.get('model')!r}")
    checkpoint.load_weights(parts.trainable, state, key="params", strict=True, name=str(latest))
    from models.training.state import widened

    names = {id(p): n for n, p in parts.trainable.named_parameters()}
    try:
        optimizer.load_state_dict(widened(state["optimizer"], optimizer.param_groups, list(state["params"]), names))
    except UvssmError as exc:
        raise UvssmError(f"{latest}: {exc}") from None
    start = int(saved["iteration"])
    return (start, *_read_logs(out, start))


def _training_dcn_backend(model: nn.Module, requested: str, device: torch.device) -> str | None:
    """Set the backend of the model's deformable convolutions for training and return it (None: the model has
    none). "auto" is torchvision's CUDA op where it imports and the device is CUDA, else the pure-torch one with
    the official kernel's gradients."""
    from models.ops.deform_conv import set_backend, torchvision_deform_conv2d

    backend = requested
    if requested == "auto":
        backend = "torchvision" if device.type == "cuda" and torchvision_deform_conv2d() is not None else "torch"
    if backend == "torchvision" and torchvision_deform_conv2d() is None:
        raise UvssmError("dcn_backend torchvision: torchvision.ops.deform_conv2d does not import here")
    return backend if set_backend(model, backend) else None


def _device_precision(dcn_backend: str | None, device: torch.device, bf16: bool) -> dict:
    """Each checkpoint's record of the device (`uvssm.base.numerics.device_record`: GPU, CUDA, cuDNN, TF32 of
    cuBLAS and cuDNN) and of its deformable convolutions' backend and matrix-product precision (`dcn_record`;
    training runs eagerly)."""
    from models.ops.deform_conv import dcn_record
    from uvssm.base.numerics import device_record

    return {**device_record(device), "dcn": dcn_record(dcn_backend, device, bf16)}


def _resume_official(path: Path, parts: StageParts, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                     schedule) -> int:
    """The iteration of a BasicSR training state (`EXPERIMENT/training_states/N.state`) of the official code, whose
    Adam state and weights (`EXPERIMENT/models/net_g_N.pth`) are loaded (`models.training.state`); its scheduler
    must be the run's `schedule`."""
    from models.training.schedule import CosineRestarts
    from models.training.state import from_basicsr

    if not isinstance(schedule, CosineRestarts):
        raise UvssmError(f"{path}: a BasicSR state resumes CosineAnnealingRestartLR without warm-up; config "
                         f"{cfg.name} has schedule {cfg.schedule!r}, warmup_iter {cfg.warmup_iter}")
    start, state = from_basicsr(checkpoint.read(path), optimizer.param_groups, schedule, str(path))
    weights = path.parent.parent / "models" / f"net_g_{start}.pth"
    if not weights.is_file():
        raise UvssmError(f"{path}: the weights of iteration {start} are not beside it ({weights} not found)")
    checkpoint.load_weights(parts.trainable, weights, key="params", strict=True, name=str(weights))
    optimizer.load_state_dict(state)
    return start


def _loader(clips: Sequence[Clip], cfg: TrainConfig, runner: Stage, parts: StageParts, start: int,
            dist_info: Distributed, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches start+1..total: sample k is a pure function of (seed, rank, k), so no sampler state is saved."""
    workers = loader_workers(cfg.num_workers, device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    dataset = WindowPatches(clips, num_frame=runner.num_frame, lq_patch=cfg.gt_size // cfg.data.model_scale,
                            flip=cfg.flip, transpose=cfg.transpose, with_ref=parts.with_ref,
                            all_targets=runner.kind == "recurrent", seed=cfg.seed, rank=dist_info.rank)
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=range(start * cfg.batch_size, cfg.iterations * cfg.batch_size),
        num_workers=workers, pin_memory=device.type == "cuda", drop_last=False, persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None)


def loader_workers(setting: int | str, device: torch.device, local_world: int = 1) -> int:
    """Data-loading processes per rank for the config's `num_workers`: a number is taken as it is; "auto" is 0 on
    the CPU (the model's threads use every core; a worker would take one from them) and on a GPU up to 4 per rank,
    within the cores each rank has (decoding and cropping then overlap the GPU's work)."""
    if setting != "auto":
        return int(setting)
    if device.type == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // max(1, local_world) - 1))


def train_step(net: nn.Module, parts: StageParts, optimizer: torch.optim.Optimizer, batch: dict) -> Tensor:
    """One optimisation step on `batch`; returns its loss, detached, on the device. Nothing is read back to the
    host (on a GPU every read waits for the queued work): `LossWindow` checks and averages the losses later."""
    loss = parts.loss(net, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class LossWindow:
    """The losses since the last read, summed on the device with the first iteration whose loss was not finite.

    `read` (every `log_every` iterations) returns the mean loss of the window and starts a new one; `check`
    (before a validation or a save between logs) only verifies it. Each is one host read, and each raises the
    divergence error naming that first iteration: a step with a non-finite loss leaves non-finite weights, so the
    check comes before anything is validated or saved.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.first_bad = torch.zeros((), dtype=torch.int64, device=self.device)  # 0: every loss finite
        self.count = 0

    def add(self, iteration: int, loss: Tensor) -> None:
        loss = loss.to(torch.float64)
        self.total += loss
        bad = ~torch.isfinite(loss) & (self.first_bad == 0)
        self.first_bad = torch.where(bad, iteration, self.first_bad)
        self.count += 1

    def check(self, latest: Path) -> float:
        """The window's summed loss; raises the divergence error if a loss in it was not finite."""
        total, first_bad = torch.stack((self.total, self.first_bad.to(torch.float64))).tolist()
        if first_bad:
            raise UvssmError(f"iteration {int(first_bad)}: loss is {total}; training diverged "
                             f"(last good checkpoint: {latest if latest.exists() else 'none'})")
        return total

    def read(self, latest: Path) -> float:
        """The window's mean loss (after `check`); starts a new window."""
        mean = self.check(latest) / max(self.count, 1)
        self._reset()
        return mean


def train(model: nn.Module, cfg: TrainConfig, train_clips: Sequence[Clip], val_clips: Sequence[Clip], out: Path,
          *, meta: dict, device: torch.device, runner: Stage | None = None, dist_info: Distributed = Distributed(),
          resume: bool = False, resume_from: Path | None = None, progress: Progress | None = None) -> dict:
    """Train `model` by `cfg` (stage `cfg.stage`); write checkpoints and logs under `out`. Returns the final
    state: {"iteration", "checkpoint", "val", "loss"}.

    `runner` says how the model runs (its window `num_frame`, kind and size multiple, as
    `models.trained.stage_for` gives them); default: a 5-frame sliding window at the config's scale. Samples are
    `num_frame`-frame windows with the centre frame as target, or for recurrent models sequences with every frame
    as target. `meta` (model name, scale, constructor arguments, dataset) goes into every checkpoint.

    Progress events (`uvssm.base.progress`): TrainStart, then per iteration TrainIter (a logged one, with the
    mean loss) or TrainStep, TrainVal after each validation, TrainSave after each checkpoint, and TrainDone
    (also alone, with `resumed`, when a resumed run had finished).
    """
    progress = progress or quiet
    out = Path(out)
    runner = runner or Stage(model, 5, cfg.data.model_scale)
    model.to(device)
    meta = {**meta, "dcn_backend": _training_dcn_backend(model, cfg.dcn_backend, device)}
    meta["device_precision"] = _device_precision(meta["dcn_backend"], device, cfg.bf16)
    parts = STAGES[cfg.stage](model, cfg, runner, device)
    optimizer = torch.optim.Adam(parts.groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    schedule = make_schedule(cfg.schedule, cfg.lr, cfg.periods, cfg.restart_weights, cfg.eta_min, cfg.warmup_iter,
                             cfg.warmup)
    total = cfg.iterations

    latest = out / "checkpoints" / "latest.pt"
    start, train_rows, val_rows = 0, [], []
    if resume and latest.exists():
        start, train_rows, val_rows = _resume(latest, parts, optimizer, cfg, meta, out)
    elif resume_from is not None:
        start = _resume_official(Path(resume_from), parts, optimizer, cfg, schedule)
    if start >= total:
        parts.finish()
        progress(TrainDone(start, total, resumed=True))
        return {"iteration": start, "checkpoint": latest, "val": val_rows[-1] if val_rows else None}

    net = parts.trainable
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    loader = _loader(train_clips, cfg, runner, parts, start, dist_info, device)

    def save(iteration: int) -> None:
        if dist_info.main:
            info = {**meta, "stage": cfg.stage, "iteration": iteration, "total_iter": total, "config": cfg.to_dict()}
            for path in (out / "checkpoints" / f"iter_{iteration:07d}.pt", latest):
                checkpoint.save(path, parts.trainable, info, optimizer=optimizer.state_dict())
            _write_logs(out, train_rows, val_rows)
            progress(TrainSave(iteration, latest))

    def validate(iteration: int) -> None:
        if dist_info.main and val_clips:
            val_rows.append({"iteration": iteration, **parts.validate(val_clips)})
            row = val_rows[-1]
            progress(TrainVal(iteration, row["psnr"], row["baseline"], row["baseline_psnr"], row["clips"], row))
        barrier(dist_info)  # the others wait while rank 0 validates; a rank that failed stops them with its error

    progress(TrainStart(start, total, sum(p.numel() for g in parts.groups for p in g["params"] if p.requires_grad)))
    net.train()
    window = LossWindow(device)
    t_last, it_last = time.perf_counter(), start
    iteration = start
    for iteration, batch in enumerate(loader, start=start + 1):
        lr = schedule.lr_at(iteration)
        for group in optimizer.param_groups:
            group["lr"] = 0.0 if iteration <= group["fixed"] else lr * group["lr_mul"]
        window.add(iteration, train_step(net, parts, optimizer, batch))
        logs = iteration % cfg.log_every == 0 or iteration == total
        validates = iteration % cfg.val_every == 0 or iteration == total
        saves = iteration % cfg.save_every == 0 or iteration == total
        if logs:  # the window's one host read
            mean_loss = window.read(latest)
            now = time.perf_counter()
            row = {"iteration": iteration, "loss": mean_loss, "lr": lr, "seconds": now - t_last}
            train_rows.append(row)
            progress(TrainIter(iteration, total, mean_loss, lr, (iteration - it_last) / max(now - t_last, 1e-9)))
            t_last, it_last = now, iteration
        else:
            if validates or saves:  # a diverged run stops before it validates or saves
                window.check(latest)
            progress(TrainStep(iteration, total))
        if validates:
            validate(iteration)
        if saves:
            save(iteration)
    parts.finish()
    final = val_rows[-1] if val_rows else None
    progress(TrainDone(iteration, total, resumed=False, val=final))
    return {"iteration": iteration, "checkpoint": latest, "val": final,
            "loss": train_rows[-1]["loss"] if train_rows else math.nan}
