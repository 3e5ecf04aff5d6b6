"""The SR stage of a two-stage baseline trains on the first stage's outputs (`chain`, `--lq-stage`)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models import checkpoint
from models.training.config import load_config
from models.windows import reflection_circle
from uvssm.base.datasets import open_dataset
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, read_rgb
from uvssm.base.progress import RestoreClip
from uvssm.pipelines.train import run_training

TWO_ITERS = ["batch_size=2", "val_frames=1", "val_every=2", "save_every=2", "periods=[2]"]


@pytest.fixture
def data(tmp_path, tiny_reds):
    """A private copy of the tiny dataset (this test writes restored/ into it)."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_reds, dst, symlinks=True)
    return dst


def test_sr_stage_learns_from_stdf_outputs(tmp_path, data):
    stdf_cfg = load_config("stdf-tiny-sample", TWO_ITERS)
    run_training(stdf_cfg, data, tmp_path / "stdf", device="cpu")
    stdf_ckpt = tmp_path / "stdf" / "checkpoints" / "latest.pt"

    sr_cfg = load_config("edvr-tiny-sample", TWO_ITERS + ["chain=stdf"])
    with pytest.raises(UvssmError, match="--lq-stage"):
        run_training(sr_cfg, data, tmp_path / "sr", device="cpu")
    wrong = load_config("edvr-tiny-sample", TWO_ITERS + ["chain=stdf", f"lq_stage={_edvr_ckpt(tmp_path, data)}"])
    with pytest.raises(UvssmError, match="holds a edvr-tiny checkpoint, not stdf"):
        run_training(wrong, data, tmp_path / "wrong", device="cpu")

    sr_cfg.lq_stage = str(stdf_ckpt)
    events = []
    run_training(sr_cfg, data, tmp_path / "sr", device="cpu", progress=events.append)
    restored = [e for e in events if isinstance(e, RestoreClip)]
    assert {r.clip for r in restored} == {"000", "001", "002", "003"}  # train and val clips, once each

    # the SR run's inputs are STDF's outputs, computed here by calling the network directly
    sha = checkpoint.file_sha256(stdf_ckpt)
    folder = data / "restored" / f"stdf-{sha[:12]}" / "LQ_qp28_x2" / "001"
    clip = next(c for c in open_dataset(data, split="train", qp=28).clips if c.name == "001")
    from models.trained import model_from_checkpoint

    _, stdf, _ = model_from_checkpoint(stdf_ckpt, 1, "stdf")
    stdf.eval()
    for c in (0, 8):
        window = np.stack([clip.lq(i) for i in reflection_circle(c, clip.n_frames, 7)])
        x = torch.tensor(window).permute(0, 3, 1, 2).float().div(255)[None]
        with torch.no_grad():
            want = (stdf(x)[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(read_rgb(folder / frame_name(c)), want)
    assert not np.array_equal(read_rgb(folder / frame_name(8)), clip.lq(8))

    meta = checkpoint.read(tmp_path / "sr" / "checkpoints" / "latest.pt")["uvssm"]
    assert meta["lq_stage"] == {"model": "stdf", "checkpoint": str(stdf_ckpt), "checkpoint_sha256": sha}
    assert (data / "restored" / f"stdf-{sha[:12]}" / "provenance.json").exists()

    # a second SR model on the same first stage reuses the frames
    stamp = (folder / frame_name(3)).stat().st_mtime_ns
    events.clear()
    run_training(sr_cfg, data, tmp_path / "sr2", device="cpu", progress=events.append)
    assert not [e for e in events if isinstance(e, RestoreClip)] and (folder / frame_name(3)).stat().st_mtime_ns == stamp


def _edvr_ckpt(tmp_path, data):
    run_training(load_config("edvr-tiny-sample", TWO_ITERS), data, tmp_path / "edvr", device="cpu")
    return tmp_path / "edvr" / "checkpoints" / "latest.pt"
