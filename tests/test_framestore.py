"""Training frames decoded once into mapped arrays (`uvssm.base.framestore`), checked against Pillow."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from models.training.data import WindowPatches
from uvssm.base.datasets import open_dataset, use_frame_store
from uvssm.base.errors import UvssmError
from uvssm.base.framestore import cached_frames


def _pillow(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_arrays_hold_the_pngs_pixels_and_are_rebuilt_when_a_frame_changes(clips, tmp_path):
    folder, store = clips / "001", tmp_path / "store"
    frames = cached_frames(folder, 8, store)
    assert frames.shape == (8, 72, 128, 3) and frames.dtype == np.uint8 and not frames.flags.writeable
    for i in range(8):
        np.testing.assert_array_equal(frames[i], _pillow(folder / f"{i:08d}.png"))
    (array,) = store.glob("*.npy")
    stamp = array.stat().st_mtime_ns
    assert cached_frames(folder, 8, store).shape == (8, 72, 128, 3) and array.stat().st_mtime_ns == stamp
    changed = np.full((72, 128, 3), 7, np.uint8)
    Image.fromarray(changed).save(folder / "00000003.png")
    os.utime(folder / "00000003.png", ns=(1, 1))  # a different modification time
    again = cached_frames(folder, 8, store)
    np.testing.assert_array_equal(again[3], changed)
    np.testing.assert_array_equal(again[2], _pillow(folder / "00000002.png"))
    assert not list(store.glob(".*"))  # no temporary files left


def test_unwritable_cache_is_one_clear_error(clips, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UvssmError, match="cannot write the frame cache"):
        cached_frames(clips / "000", 8, blocker / "store")


def test_patches_from_the_store_equal_patches_from_the_pngs(tiny_reds, tmp_path):
    plain = open_dataset(tiny_reds, split="train", scale=2, qp=28, cache_mb=0)
    stored = open_dataset(tiny_reds, split="train", scale=2, qp=28, cache_mb=0)
    use_frame_store(stored, tmp_path / "store")
    assert len(list((tmp_path / "store").glob("*.npy"))) == 2 * len(stored.clips)
    a = WindowPatches(plain.clips, lq_patch=32, with_ref=True)
    b = WindowPatches(stored.clips, lq_patch=32, with_ref=True)
    for n in range(6):
        for key in ("lq", "gt", "ref"):
            assert torch.equal(a[n][key], b[n][key])
