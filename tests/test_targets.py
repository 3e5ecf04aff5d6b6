"""LQ-size training targets for STDF: clean LR (synth-reds --clean-lr) and bicubic-down-scaled HQ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uvssm.base.scalers import imresize
from models.training.config import ConfigError, load_config
from models.training.data import WindowPatches
from uvssm.base.datasets import open_dataset
from uvssm.base.errors import UvssmError
from uvssm.base.frames import frame_name, read_rgb


def test_clean_lr_target_pairs_lq_with_the_encoder_input(tiny_reds):
    ds = open_dataset(tiny_reds, split="train", qp=28, target="clean_lr")
    clip = ds.clips[0]
    assert ds.scale == 1 and clip.scale == 1 and clip.hq_dir == tiny_reds / "LR_clean_x2" / clip.name
    assert clip.hq(3).shape == clip.lq(3).shape == (112, 192, 3)
    assert np.array_equal(clip.hq(3), read_rgb(tiny_reds / "LR_clean_x2" / clip.name / frame_name(3)))
    # the clean frames are closer to the LQ than to a blank frame, and differ from the LQ (compression)
    assert 0 < np.abs(clip.hq(3).astype(int) - clip.lq(3)).mean() < 10
    sample = WindowPatches(ds.clips, num_frame=7, lq_patch=32)[0]
    assert sample["lq"].shape == (7, 3, 32, 32) and sample["gt"].shape == (3, 32, 32)


def test_bicubic_lr_target_is_matlab_bicubic_of_hq(tiny_reds):
    clip = open_dataset(tiny_reds, split="train", qp=28, target="bicubic_lr").clips[0]
    hq = torch.tensor(read_rgb(clip.hq_dir / frame_name(2))).permute(2, 0, 1).double() / 255
    want = (imresize(hq, 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    diff = np.abs(clip.hq(2).astype(int) - want)
    assert clip.scale == 1 and diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float32 rounding at .5 only


def test_uvssm_has_no_clean_lr_and_configs_check_the_target(tmp_path, tiny_reds):
    frames = tmp_path / "ds"
    (frames / "HQ_frames" / "a").mkdir(parents=True)
    (frames / "LQ_frames" / "a").mkdir(parents=True)
    with pytest.raises(UvssmError, match="no clean LR"):
        from uvssm.base.datasets import _with_target, PairedDataset

        _with_target(PairedDataset("UVSSM", "frames", frames, "all", 2, None, None, []), "clean_lr", None)
    with pytest.raises(ConfigError, match="data.target"):
        load_config("stdf-tiny-sample", ["data.target=sharp"])
    assert load_config("stdf-tiny-sample").data.model_scale == 1
