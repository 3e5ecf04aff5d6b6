"""The training loop: one function for both VOTES stages, on CPU, one GPU, or several through torchrun.

    stage "dsm"      the degradation sensing module alone learns ẑ_{t-1}, ẑ_t, ẑ_{t+1} ≈ z (eq. 7)
    stage "restore"  the rest of VOTES with the DSM frozen (the official recipe)

Per iteration n (1-based): lr from the schedule, one batch, loss, backward, Adam step. Every
`log_every` iterations the caller's `progress` callback gets the loss, lr and iterations/s; every
`val_every` the PSNR on the validation clips; every `save_every` (and at the end) a checkpoint is
written atomically to `out/checkpoints/latest.pt` (and `iter_<n>.pt`), with the logs beside it as
parquet. `resume=True` continues from `latest.pt`; because batches are a function of (seed,
iteration), a resumed run takes exactly the steps an uninterrupted one would.

Multi-GPU: launch with `torchrun --nproc_per_node N`; each process takes `batch_size` samples per
iteration (as BasicSR's batch_size_per_gpu), gradients are averaged by DistributedDataParallel, and
rank 0 validates and writes.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from uvssm.base.metrics import VideoScores, psnr, quantize
from models import checkpoint
from models.training.config import TrainConfig
from models.training.data import Clip, WindowPatches, frames_to_tensor
from models.training.losses import LOSSES
from models.training.schedule import make_schedule
from models.windows import evenly_spaced, reflection_circle
from uvssm.base import atomic
from uvssm.base.devices import Distributed
from uvssm.base.errors import UvssmError
from uvssm.base.progress import Progress, quiet



def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@torch.no_grad()
def validate(model: nn.Module, clips: Sequence[Clip], stage: str, device: torch.device, frames_per_clip: int = 0,
             bf16: bool = False, num_frame: int = 5, recurrent: bool = False) -> dict:
    """Mean PSNR over clips (clip mean first) on whole frames, windows padded by reflection_circle.

    Stage "restore": the model's output against HQ, Y channel, `scale` pixels cropped (the VOTES
    protocol), beside bicubic-upsampled LQ on the same frames; recurrent models run over the whole
    clip. Stage "dsm": ẑ_t against the reference z_t (RGB, no crop), beside the LQ frame itself.
    At scale 1 (STDF towards an LQ-size target) the baseline is the unrestored LQ frame.
    Stage "flow": frame t+1 warped onto frame t by the flow network against frame t (RGB, LQ),
    beside frame t+1 unwarped.
    """
    from uvssm.base.scalers import imresize
    from models.flow import warp
    from models.inference import Stage, restore_stage

    was_training = model.training
    model.eval()
    scores, baseline = VideoScores(), VideoScores()
    for clip in clips:
        picked = evenly_spaced(clip.n_frames, frames_per_clip)
        if stage == "restore" and recurrent:
            frames = (frames_to_tensor(clip.lq(i)) for i in range(clip.n_frames))
            runner = Stage(model, num_frame, clip.scale, multiple=1, kind="recurrent", chunk=clip.n_frames)
            wanted = set(picked)
            outputs = {i: o for i, o in enumerate(restore_stage(frames, runner, device=device, bf16=bf16))
                       if i in wanted}
        for c in picked:
            if stage == "flow":
                nxt = min(c + 1, clip.n_frames - 1) if c + 1 < clip.n_frames else c - 1
                ref, supp = (frames_to_tensor(clip.lq(i)).unsqueeze(0).to(device) for i in (c, nxt))
                with _autocast(device, bf16):
                    flow = model.spynet(ref, supp)
                kwargs = dict(crop_border=0, color_space="rgb")
                scores.update(clip.name, psnr(quantize(warp(supp, flow.float(), padding_mode="border")), quantize(ref),
                                              **kwargs).tolist())
                baseline.update(clip.name, psnr(quantize(supp), quantize(ref), **kwargs).tolist())
                continue
            indices = reflection_circle(c, clip.n_frames, min(num_frame, 5) if recurrent else num_frame)
            window = frames_to_tensor(np.stack([clip.lq(i) for i in indices])).unsqueeze(0).to(device)
            center = window[:, window.shape[1] // 2]
            if stage == "dsm":
                with _autocast(device, bf16):
                    _, z_t = model.bin(window)
                ref = frames_to_tensor(clip.ref(c)).unsqueeze(0).to(device)
                kwargs = dict(crop_border=0, color_space="rgb")
                scores.update(clip.name, psnr(quantize(z_t.float()), quantize(ref), **kwargs).tolist())
                baseline.update(clip.name, psnr(quantize(center), quantize(ref), **kwargs).tolist())
            else:
                if recurrent:
                    out = outputs[c].unsqueeze(0).to(device)
                else:
                    with _autocast(device, bf16):
                        out = model(window)
                gt = torch.tensor(clip.hq(c)).permute(2, 0, 1).unsqueeze(0).to(device)
                kwargs = dict(crop_border=clip.scale, color_space="y")
                scores.update(clip.name, psnr(quantize(out.float()), gt, **kwargs).tolist())
                up = imresize(center.double(), clip.scale)
                baseline.update(clip.name, psnr(quantize(up), gt, **kwargs).tolist())
    model.train(was_training)
    base = {"dsm": "lq", "flow": "unwarped"}.get(stage, "bicubic" if all(c.scale > 1 for c in clips) else "unrestored")
    return {"psnr": scores.compute(), "baseline_psnr": baseline.compute(), "baseline": base, "clips": len(clips)}


def flow_loss(spynet: nn.Module, lq: torch.Tensor, loss_fn, reduction: str, smooth_weight: float) -> torch.Tensor:
    """Self-supervised flow training on LQ sequences (B, T, 3, h, w): frame t+1 warped by
    spynet(t, t+1) should look like frame t (and the reverse), plus a first-order smoothness term."""
    from models.flow import warp

    b, t, c, h, w = lq.shape
    a, bb = lq[:, :-1].reshape(-1, c, h, w), lq[:, 1:].reshape(-1, c, h, w)
    ref, supp = torch.cat([a, bb]), torch.cat([bb, a])
    flow = spynet(ref, supp)
    photometric = loss_fn(warp(supp, flow, padding_mode="border"), ref, reduction=reduction)
    smooth = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., 1:] - flow[..., :-1]).abs().mean()
    per_element = {"sum": ref.numel(), "batch": ref.numel() / ref.shape[0]}.get(reduction, 1)  # as the photometric sum
    return photometric + smooth_weight * smooth * per_element


def _loss(cfg: TrainConfig, net: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
    lq = batch["lq"].to(device, non_blocking=True)
    loss_fn = LOSSES[cfg.loss]
    with _autocast(device, cfg.bf16):
        if cfg.stage == "flow":
            return flow_loss(net, lq.float(), loss_fn, cfg.loss_reduction, cfg.smooth_weight)
        if cfg.stage == "dsm":
            pair, z_t = net(lq)  # (B, 2, 3, h, w): ẑ_{t-1}, ẑ_{t+1}; (B, 3, h, w): ẑ_t
            ref = batch["ref"].to(device, non_blocking=True)  # z_{t-1}, z_t, z_{t+1}
            estimates = (pair[:, 0], z_t, pair[:, 1])
            return sum(loss_fn(e.float(), ref[:, j], reduction=cfg.loss_reduction) for j, e in enumerate(estimates))
        gt = batch["gt"].to(device, non_blocking=True)
        core = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
        if not (cfg.aux_weight and hasattr(core, "aux_targets")):
            return loss_fn(net(lq).float(), gt, reduction=cfg.loss_reduction)
        out, aux = net(lq, return_aux=True)
        loss = loss_fn(out.float(), gt, reduction=cfg.loss_reduction)
        for pred, target in core.aux_targets(aux, gt):
            loss = loss + cfg.aux_weight * loss_fn(pred.float(), target.float(), reduction=cfg.loss_reduction)
        return loss


def _write_logs(out: Path, train_rows: list[dict], val_rows: list[dict]) -> None:
    atomic.write_parquet(out / "train_log.parquet", pd.DataFrame(train_rows, columns=["iteration", "loss", "lr", "seconds"]))
    atomic.write_parquet(out / "val_log.parquet", pd.DataFrame(
        val_rows, columns=["iteration", "psnr", "baseline_psnr", "baseline", "clips"]))


def _read_logs(out: Path, upto: int) -> tuple[list[dict], list[dict]]:
    rows = []
    for name in ("train_log.parquet", "val_log.parquet"):
        path = out / name
        df = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["iteration"])
        rows.append(df[df["iteration"] <= upto].to_dict("records"))
    return rows[0], rows[1]


def train(model: nn.Module, cfg: TrainConfig, train_clips: Sequence[Clip], val_clips: Sequence[Clip], out: Path,
          *, meta: dict, device: torch.device, dist_info: Distributed = Distributed(), resume: bool = False,
          progress: Progress | None = None, num_frame: int = 5, recurrent: bool = False) -> dict:
    """Train `model` by `cfg`; write checkpoints and logs under `out`. Returns the final state.

    `meta` (model name, scale, constructor arguments, dataset) goes into every checkpoint. Samples
    are `num_frame`-frame windows with the centre frame as target, or with `recurrent` sequences
    with every frame as target. Stage "dsm" trains VOTES's `bin`, stage "flow" a model's `spynet`
    (each saved alone), stage "restore" the whole model (a flow network's learning rate × 
    `cfg.flow_lr_mul`, frozen for the first `cfg.fix_flow_iter` iterations).
    """
    progress = progress or quiet
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    schedule = make_schedule(cfg.schedule, cfg.lr, cfg.periods, cfg.restart_weights, cfg.eta_min, cfg.warmup_iter)
    total = cfg.iterations

    model.to(device)
    if cfg.stage == "dsm" and not hasattr(model, "train_bin"):
        raise UvssmError(f"stage 'dsm' trains VOTES's degradation sensing module; {type(model).__name__} has none")
    if cfg.stage == "flow" and not hasattr(model, "spynet"):
        raise UvssmError(f"stage 'flow' pre-trains a flow network; {type(model).__name__} has none")
    trainable = {"dsm": getattr(model, "bin", None), "flow": getattr(model, "spynet", None)}.get(cfg.stage, model)
    if cfg.stage == "dsm":
        model.train_bin(True)
    params = [p for p in trainable.parameters() if p.requires_grad]
    flow_params = {id(p) for p in model.spynet.parameters()} if cfg.stage == "restore" and hasattr(model, "spynet") \
        else set()
    groups = [{"params": [p for p in params if id(p) not in flow_params], "lr_mul": 1.0, "fixed": 0}]
    if flow_params:
        groups.append({"params": [p for p in params if id(p) in flow_params], "lr_mul": cfg.flow_lr_mul,
                       "fixed": cfg.fix_flow_iter})
    optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    start = 0
    train_rows: list[dict] = []
    val_rows: list[dict] = []
    latest = ckpt_dir / "latest.pt"
    if resume and latest.exists():
        state = checkpoint.read(latest)
        saved = state.get("uvssm", {})
        if saved.get("stage") != cfg.stage or saved.get("model") != meta.get("model"):
            raise UvssmError(f"{latest}: written by stage {saved.get('stage')!r} of {saved.get('model')!r}, "
                             f"cannot resume stage {cfg.stage!r} of {meta.get('model')!r}")
        checkpoint.load_weights(trainable, state, key="params", strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start = int(saved["iteration"])
        train_rows, val_rows = _read_logs(out, start)
    if start >= total:
        progress("done", {"iteration": start, "total": total, "resumed": True})
        return {"iteration": start, "checkpoint": latest, "val": val_rows[-1] if val_rows else None}

    net = trainable
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[device.index] if device.type == "cuda" else None)
    dataset = WindowPatches(train_clips, num_frame=num_frame, lq_patch=cfg.gt_size // cfg.data.model_scale, flip=cfg.flip,
                            transpose=cfg.transpose, with_ref=cfg.stage == "dsm", all_targets=recurrent,
                            seed=cfg.seed, rank=dist_info.rank)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=range(start * cfg.batch_size, total * cfg.batch_size),
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", drop_last=False)

    def save(iteration: int) -> Path:
        if not dist_info.main:
            return latest
        info = {**meta, "stage": cfg.stage, "iteration": iteration, "total_iter": total, "config": cfg.to_dict()}
        extra = {"optimizer": optimizer.state_dict()}
        checkpoint.save(ckpt_dir / f"iter_{iteration:07d}.pt", trainable, info, **extra)
        checkpoint.save(latest, trainable, info, **extra)
        _write_logs(out, train_rows, val_rows)
        progress("save", {"iteration": iteration, "path": latest})
        return latest

    def run_validation(iteration: int) -> None:
        if dist_info.main and val_clips:
            result = validate(model, val_clips, cfg.stage, device, cfg.val_frames, cfg.bf16, num_frame, recurrent)
            val_rows.append({"iteration": iteration, **result})
            progress("val", val_rows[-1])
        if dist_info.world_size > 1:
            dist.barrier()

    progress("start", {"start": start, "total": total, "params": sum(p.numel() for p in params)})
    net.train()
    window_loss, window_n, t_last, it_last = 0.0, 0, time.perf_counter(), start
    iteration = start
    for iteration, batch in enumerate(loader, start=start + 1):
        lr = schedule.lr_at(iteration)
        for group in optimizer.param_groups:
            group["lr"] = 0.0 if iteration <= group["fixed"] else lr * group["lr_mul"]
        loss = _loss(cfg, net, batch, device)
        if not torch.isfinite(loss):
            raise UvssmError(f"iteration {iteration}: loss is {loss.item()}; training diverged "
                             f"(last good checkpoint: {latest if latest.exists() else 'none'})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window_loss += loss.item()
        window_n += 1
        if iteration % cfg.log_every == 0 or iteration == total:
            now = time.perf_counter()
            row = {"iteration": iteration, "loss": window_loss / window_n, "lr": lr, "seconds": now - t_last}
            train_rows.append(row)
            progress("iter", {**row, "its": (iteration - it_last) / max(now - t_last, 1e-9), "total": total})
            window_loss, window_n, t_last, it_last = 0.0, 0, now, iteration
        else:
            progress("step", {"iteration": iteration, "total": total})
        if iteration % cfg.val_every == 0 or iteration == total:
            run_validation(iteration)
        if iteration % cfg.save_every == 0 or iteration == total:
            save(iteration)
    if cfg.stage == "dsm":
        model.train_bin(False)
    final = val_rows[-1] if val_rows else None
    progress("done", {"iteration": iteration, "total": total, "val": final, "resumed": False})
    return {"iteration": iteration, "checkpoint": latest, "val": final,
            "loss": train_rows[-1]["loss"] if train_rows else math.nan}
