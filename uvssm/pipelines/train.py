"""The `uvssm train` pipeline: config + dataset folder → model → the training loop → checkpoints.

It reads the dataset (uvssm.base.datasets), builds the model (models.registry), loads the stage-1
weights of the degradation sensing module for stage 2, and calls `models.training.loop.train`.
It prints nothing: progress goes to the caller's callback.

The SR stage of a two-stage baseline (STDF + X) trains on the dataset's LQ frames as the first
stage restores them (`load_first_stage`, `restore_dataset`), written once as PNGs and then read like
any LQ folder. For a dataset at ROOT and a first-stage checkpoint, the frames of clip C (LQ folder ROOT/L/C) go to
ROOT/restored/<model>-<sha256[:12]>/L/C/%08d.png, so every SR model trained on the same first
stage shares them. Each clip is finished by a `<clip>.done` marker written last (after atomic
frame writes): an interrupted run redoes only unfinished clips. Under torchrun the ranks share the clips, each
restored by one rank, and wait for one another before training. `provenance.json` records the
checkpoint. Frames are rounded to uint8 as any image on disk: the same hand-over that
`models.inference.restore_stream` makes between the stages at benchmark time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml

from models import checkpoint
from models.inference import Stage, restore_stage
from models.registry import create_model, get_spec, model_kwargs, model_name
from models.trained import model_from_checkpoint, stage_for
from models.training import loop
from models.training.config import ConfigError, TrainConfig, load_config
from models.training.init import INITIALISERS
from uvssm import __version__
from uvssm.base import atomic
from uvssm.base.devices import Distributed, barrier, current, ranks_fail_together, setup_device
from uvssm.base.datasets import PairedDataset, open_dataset, use_frame_store
from uvssm.base.framestore import default_root
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, frames_to_tensor, write_rgb
from uvssm.base.metrics import quantize
from uvssm.base.numerics import numerics_record
from uvssm.base.progress import Note, Progress, RestoreClip, TrainData, quiet


@dataclass
class FirstStage:
    name: str
    checkpoint: Path
    sha256: str
    stage: Stage

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.sha256[:12]}"


def load_first_stage(path: str | Path, expect: str | None = None) -> FirstStage:
    """The first stage of a chain from its checkpoint; it must restore at LQ size (scale 1)."""
    path = Path(path)
    if not path.is_file():
        raise UvssmError(f"{path}: first-stage checkpoint not found")
    name, model, sha = model_from_checkpoint(path, 1, expect)
    if getattr(model, "in_nc", 3) != 3:
        raise UvssmError(f"{path}: {name} works on {model.in_nc}-channel frames; the SR stage needs RGB")
    return FirstStage(name, path, sha, stage_for(name, model, 1))


def restore_dataset(ds: PairedDataset, first: FirstStage, *, device: torch.device | str = "cpu",
                    progress: Progress | None = None, dist_info: Distributed | None = None) -> PairedDataset:
    """`ds` with every clip's LQ frames replaced by the first stage's outputs (written if missing), the model run on
    `device`. Under torchrun (`dist_info`, default: the process group joined) the ranks share the clips, clip k
    restored by rank k mod world size; then every rank waits for the others (`barrier`: a rank that failed stops
    them with its error) and finds every clip done."""
    progress, dist_info = progress or quiet, dist_info or current()
    base = ds.root / "restored" / first.folder
    base.mkdir(parents=True, exist_ok=True)
    prov = base / "provenance.json"
    record = {"model": first.name, "checkpoint": str(first.checkpoint), "checkpoint_sha256": first.sha256,
              "uvssm_version": __version__, "torch_version": str(torch.__version__),
              "rounding": "round(255 * clamp(x, 0, 1)) to uint8 PNG"}
    if dist_info.main and not prov.exists():
        atomic.write_text(prov, json.dumps(record, indent=2, sort_keys=True) + "\n")
    folders = [_restored_folder(ds, clip, base) for clip in ds.clips]
    try:
        for k, (clip, out_dir) in enumerate(zip(ds.clips, folders)):
            if k % dist_info.world_size == dist_info.rank and not _done(out_dir).exists():
                _restore_clip(clip, out_dir, first.stage, device, progress)
    finally:
        first.stage.model.cpu()  # training gets the device's memory
    barrier(dist_info)
    missing = [clip.name for clip, out_dir in zip(ds.clips, folders) if not _done(out_dir).exists()]
    if missing:
        raise UvssmError(f"{base}: clips {', '.join(missing)} not restored (by another rank?): the ranks must share "
                         "the dataset folder")
    return replace(ds, clips=[replace(clip, lq_dir=out_dir) for clip, out_dir in zip(ds.clips, folders)])


def _restored_folder(ds: PairedDataset, clip, base: Path) -> Path:
    try:
        rel = clip.lq_dir.resolve().relative_to(ds.root.resolve())
    except ValueError:
        rel = Path(clip.lq_dir.name)
    return base / rel


def _done(out_dir: Path) -> Path:
    """The marker written after a clip's last frame."""
    return out_dir.parent / f"{out_dir.name}.done"


def _restore_clip(clip, out_dir: Path, stage: Stage, device: torch.device | str, progress: Progress) -> None:
    """Restore one clip's LQ frames into `out_dir`, each frame written atomically, then its `.done` marker."""
    progress(RestoreClip(clip.name, clip.n_frames, out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = (frames_to_tensor(clip.lq(i)) for i in range(clip.n_frames))
    for i, out in enumerate(restore_stage(frames, stage, device=device)):
        write_rgb(out_dir / frame_name(i), np.ascontiguousarray(quantize(out).permute(1, 2, 0).numpy()))
    atomic.write_text(_done(out_dir), f"{clip.n_frames}\n")


def resolve_config(name: str, overrides: list[str] = (), iterations: int | None = None,
                   bin_checkpoint: str | None = None, bf16: bool | None = None,
                   flow_checkpoint: str | None = None, lq_stage: str | None = None) -> TrainConfig:
    try:
        cfg = load_config(name, list(overrides))
    except ConfigError as exc:
        raise UvssmError(str(exc)) from None
    try:
        cfg.model = model_name(cfg.model)  # a plugin's reference (pkg.module:attr) by its spec's name
    except ValueError as exc:
        raise UvssmError(f"config {cfg.name}: {exc}") from None
    if iterations is not None:
        if iterations <= 0:
            raise UvssmError(f"--iters must be positive, got {iterations}")
        cfg.total_iter = iterations
    if bin_checkpoint is not None:
        cfg.bin_checkpoint = bin_checkpoint
    if flow_checkpoint is not None:
        cfg.flow_checkpoint = flow_checkpoint
    if lq_stage is not None:
        cfg.lq_stage = lq_stage
    if bf16 is not None:
        cfg.bf16 = bf16
    return cfg


def load_part(model, path: str | Path, prefix: str) -> checkpoint.LoadReport:
    """Load weights into the sub-module `model.<prefix>` from a checkpoint of that part alone, or from a
    full model checkpoint (its `<prefix>.*` keys). Strict; errors name the file."""
    sd, _ = checkpoint.state_dict_of(checkpoint.read(path))
    if any(k.startswith(f"{prefix}.") for k in sd):
        sd = {k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(f"{prefix}.")}
    return checkpoint.load_weights(model, {"params": sd}, key="params", strict=True, prefix=prefix, name=str(path))


def load_dsm(model, path: str | Path) -> checkpoint.LoadReport:
    """Stage-1 weights into `model.bin`: a DSM checkpoint (ours or the official bin_100000.pth, keys
    `model.model1_1...`) or a full VOTES checkpoint (keys `bin.model...`)."""
    return load_part(model, path, "bin")


def load_flow(model, path: str | Path) -> checkpoint.LoadReport:
    """Pre-trained flow weights into `model.spynet`: a stage-"flow" checkpoint (SPyNet keys) or a full
    model checkpoint (keys `spynet.*`, e.g. a trained BasicVSR)."""
    return load_part(model, path, "spynet")


def _open(data_root: Path, cfg: TrainConfig, split: str) -> PairedDataset:
    """The split's clips; with several QPs (`data.qp: [28, 33]`), every QP's clips for training and the
    first QP's for validation."""
    d = cfg.data
    qps = d.qps if split == d.train_split else d.qps[:1]
    sets = [open_dataset(data_root, split=split, scale=d.scale, qp=q, platform=d.platform, layout=d.kind,
                         cache_mb=cfg.cache_mb, target=d.target) for q in qps]
    if len(sets) == 1:
        return sets[0]
    return replace(sets[0], clips=[c for ds in sets for c in ds.clips], qp=None,
                   name=f"{sets[0].name} QP {'+'.join(str(q) for q in qps)}")


def run_training(config: TrainConfig, data_root: str | Path, out: str | Path, *, device: str | None = None,
                 resume: bool = False, resume_from: str | Path | None = None,
                 progress: Progress | None = None) -> dict:
    """Train by `config` on the dataset at `data_root`; checkpoints and logs go to `out`. `resume_from`: a BasicSR
    training state of the official code to continue (`models.training.state`).

    Progress events (`uvssm.base.progress`): Note, RestoreClip (a chain's first stage restores the LQ frames),
    TrainData, then the training loop's (`models.training.loop.train`).
    """
    cfg, out, data_root = config, Path(out), Path(data_root)
    progress = progress or quiet
    latest = out / "checkpoints" / "latest.pt"
    if latest.exists() and not resume:
        raise UvssmError(f"{out}: already holds a training run ({latest}); pass --resume to continue it, "
                         "or choose another --out")
    if resume and not latest.exists():
        raise UvssmError(f"{out}: no training run to resume ({latest} not found); check --out, or leave out "
                         "--resume to start one")
    if resume_from is not None:
        if resume:
            raise UvssmError("--resume continues a run of uvssm in --out, --resume-from one of the official code: "
                             "give one of them")
        resume_from = Path(resume_from)
        if not resume_from.is_file():
            raise UvssmError(f"{resume_from}: training state not found")
    dist_info, dev = setup_device(device)
    with ranks_fail_together(dist_info):  # a rank's error stops every rank at its next wait, with that error
        return _train(cfg, data_root, out, dev, dist_info, resume=resume, resume_from=resume_from, progress=progress)


def _train(cfg: TrainConfig, data_root: Path, out: Path, dev: torch.device, dist_info: Distributed, *, resume: bool,
           resume_from: Path | None, progress: Progress) -> dict:
    """`run_training` in a process that has its device and its place among torchrun's processes."""
    if cfg.bf16 and dev.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise UvssmError("--bf16 on CPU needs oneDNN (mkldnn) support in this torch build")

    train_ds = _open(data_root, cfg, cfg.data.train_split)
    if cfg.frame_cache != "off":
        store = Path(cfg.frame_cache) if cfg.frame_cache != "auto" else default_root()
        progress(Note(f"training frames: decoded once per clip into {store} (reused by later runs)"))
        use_frame_store(train_ds, store)
    try:
        val_ds = _open(data_root, cfg, cfg.data.val_split) if cfg.data.val_split else None
    except UvssmError as exc:
        if "no clips in split" not in str(exc):
            raise
        val_ds = None
        progress(Note(f"no validation: {exc}"))
    lq_stage = None
    if cfg.chain:
        if not cfg.lq_stage:
            raise UvssmError(f"config {cfg.name}: trains the SR stage of {cfg.chain}+{cfg.model} on {cfg.chain}'s "
                             f"outputs; train {cfg.chain} first and pass --lq-stage RUN/checkpoints/latest.pt "
                             f"(or --set chain=null to train on the raw LQ frames)")
        first = load_first_stage(cfg.lq_stage, expect=cfg.chain)
        train_ds = restore_dataset(train_ds, first, device=dev, progress=progress, dist_info=dist_info)
        if val_ds is not None:
            val_ds = restore_dataset(val_ds, first, device=dev, progress=progress, dist_info=dist_info)
        lq_stage = {"model": first.name, "checkpoint": str(first.checkpoint), "checkpoint_sha256": first.sha256}
        progress(Note(f"LQ frames restored by {first.name} ({first.checkpoint})"))
    progress(TrainData(train_ds.describe(), val_ds.describe() if val_ds else None))

    torch.manual_seed(cfg.seed)
    scale = cfg.data.model_scale
    kwargs = model_kwargs(cfg.model, scale, **cfg.model_args)
    model = INITIALISERS[cfg.init](create_model(cfg.model, scale, **cfg.model_args))
    if cfg.stage == "restore" and getattr(model, "dfm_mode", None) == "estimate" and resume_from is None:
        if not cfg.bin_checkpoint:
            raise UvssmError(f"config {cfg.name}: stage 2 needs trained degradation-sensing weights; run stage 1 "
                             f"first (uvssm train dsm-... --out RUN1) and pass --bin RUN1/checkpoints/latest.pt")
        report = load_dsm(model, cfg.bin_checkpoint)
        progress(Note(f"degradation sensing module from {cfg.bin_checkpoint}: {report.summary()}"))
    if cfg.stage == "restore" and "spynet" in get_spec(cfg.model).features:
        if cfg.flow_checkpoint:
            report = load_flow(model, cfg.flow_checkpoint)
            progress(Note(f"flow network from {cfg.flow_checkpoint}: {report.summary()}"))
        else:
            progress(Note("the flow network starts from random weights (pre-train it with a flow-* "
                          "config and pass --flow RUN/checkpoints/latest.pt)"))

    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    meta = {"model": cfg.model, "scale": scale, "target": cfg.data.target, "model_kwargs": kwargs,
            "dataset": train_ds.describe(), "data_root": str(data_root), "uvssm_version": __version__,
            "torch_version": str(torch.__version__), "lq_stage": lq_stage, "numerics": numerics_record()}
    runner = stage_for(cfg.model, model, scale)
    if cfg.num_frame:
        runner = replace(runner, num_frame=cfg.num_frame)
    result = loop.train(model, cfg, train_ds.clips, val_ds.clips if val_ds else [], out, meta=meta, device=dev,
                        runner=runner, dist_info=dist_info, resume=resume, resume_from=resume_from,
                        progress=progress)
    if dist_info.main:
        atomic.write_text(out / "result.json", json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in result.items()}, indent=2, sort_keys=True) + "\n")
    return result
