"""Training data for the SR stage of a two-stage baseline (STDF + X): the dataset's LQ frames as the
first stage restores them, written once as PNGs and then read like any LQ folder.

For a dataset at ROOT and a first-stage checkpoint, the frames of clip C (LQ folder ROOT/L/C) go to
ROOT/restored/<model>-<sha256[:12]>/L/C/%08d.png, so every SR model trained on the same first
stage shares them. Each clip is finished by a `<clip>.done` marker written last (after atomic
frame writes): an interrupted run redoes only unfinished clips. `provenance.json` records the
checkpoint. Frames are rounded to uint8 as any image on disk: the same hand-over that
`models.inference.restore_stream` makes between the stages at benchmark time.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from uvssm.base.metrics import quantize
from models.inference import Stage, restore_stage
from models.trained import model_from_checkpoint, stage_for
from models.training.data import frames_to_tensor
from uvssm import __version__
from uvssm.base import atomic
from uvssm.base.datasets import PairedDataset
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, write_rgb
from uvssm.base.progress import Progress, quiet


@dataclasses.dataclass
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
                    progress: Progress | None = None) -> PairedDataset:
    """`ds` with every clip's LQ frames replaced by the first stage's outputs (written if missing)."""
    progress = progress or quiet
    base = ds.root / "restored" / first.folder
    base.mkdir(parents=True, exist_ok=True)
    prov = base / "provenance.json"
    record = {"model": first.name, "checkpoint": str(first.checkpoint), "checkpoint_sha256": first.sha256,
              "uvssm_version": __version__, "torch_version": str(torch.__version__),
              "rounding": "round(255 * clamp(x, 0, 1)) to uint8 PNG"}
    if not prov.exists():
        atomic.write_text(prov, json.dumps(record, indent=2, sort_keys=True) + "\n")
    clips = []
    for clip in ds.clips:
        try:
            rel = clip.lq_dir.resolve().relative_to(ds.root.resolve())
        except ValueError:
            rel = Path(clip.lq_dir.name)
        out_dir = base / rel
        done = out_dir.parent / f"{out_dir.name}.done"
        if not done.exists():
            progress("restore", {"clip": clip.name, "frames": clip.n_frames, "out": out_dir})
            out_dir.mkdir(parents=True, exist_ok=True)
            frames = (frames_to_tensor(clip.lq(i)) for i in range(clip.n_frames))
            for i, out in enumerate(restore_stage(frames, first.stage, device=device)):
                write_rgb(out_dir / frame_name(i), np.ascontiguousarray(quantize(out).permute(1, 2, 0).numpy()))
            atomic.write_text(done, f"{clip.n_frames}\n")
        clips.append(dataclasses.replace(clip, lq_dir=out_dir))
    return dataclasses.replace(ds, clips=clips)
