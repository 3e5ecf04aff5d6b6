"""Random training patches from clips of aligned HQ/LQ frames (the VOTES/BasicSR recipe).

A sample is a window of `num_frame` consecutive LQ frames (start uniform in the clip), an LQ crop of
`lq_patch` pixels at one random position for every frame, the centre HQ frame cropped at the same
place ×scale, and the same random flips / transpose on all of them. For stage 1 (the degradation
sensing module) the sample also holds the reference frames z_{t-1}, z_t, z_{t+1}: HQ down-scaled to
LQ size, cropped like the LQ.

Sample n is drawn from its own generator seeded with (seed, rank, n), so the batch of iteration i is
the same whatever the number of loader workers, and a resumed run continues the exact sequence.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from torch.utils.data import Dataset

from uvssm.base.frames import frames_to_tensor


class Clip(Protocol):
    name: str
    n_frames: int
    scale: int
    lq_size: tuple[int, int]

    def lq(self, i: int) -> np.ndarray: ...  # (h, w, 3) uint8

    def hq(self, i: int) -> np.ndarray: ...  # (s·h, s·w, 3) uint8

    def ref(self, i: int) -> np.ndarray: ...  # (h, w, 3) float32 in [0, 1]


class WindowPatches(Dataset):
    """Index n → {"lq": (T, 3, p, p), "gt": (3, s·p, s·p)[, "ref": (3, 3, p, p)]}, floats in [0, 1].

    With `all_targets` (recurrent models), "gt" is every frame's: (T, 3, s·p, s·p).

    Args:
        clips: clips with at least `num_frame` frames, all at the same scale.
        num_frame: window length (5), or sequence length (15) for recurrent models.
        lq_patch: LQ crop side (gt_size / scale); frames smaller than this are an error.
        flip, transpose: the augmentations (p = 0.5 each).
        with_ref: also return the stage-1 reference frames of t−1, t, t+1.
        seed, rank: seed of the sample generators; rank separates the processes of a DDP run.
    """

    def __init__(self, clips: Sequence[Clip], *, num_frame: int = 5, lq_patch: int = 64, flip: bool = True,
                 transpose: bool = True, with_ref: bool = False, all_targets: bool = False, seed: int = 10,
                 rank: int = 0):
        usable = [c for c in clips if c.n_frames >= num_frame]
        if not usable:
            raise ValueError(f"no clip has the {num_frame} frames a window needs")
        small = [c.name for c in usable if min(c.lq_size) < lq_patch]
        if small:
            raise ValueError(f"clip {small[0]}: LQ frames {usable[0].lq_size} are smaller than the {lq_patch}-pixel patch")
        self.clips, self.num_frame, self.lq_patch = list(usable), num_frame, lq_patch
        self.flip, self.transpose, self.with_ref, self.all_targets = flip, transpose, with_ref, all_targets
        self.seed, self.rank = seed, rank

    def __len__(self) -> int:
        return 2**62  # indices are sample numbers; the sampler decides how many

    def __getitem__(self, n: int) -> dict:
        rng = np.random.default_rng([self.seed, self.rank, n])
        clip = self.clips[rng.integers(len(self.clips))]
        start = int(rng.integers(clip.n_frames - self.num_frame + 1))
        center = start + self.num_frame // 2
        h, w = clip.lq_size
        p, s = self.lq_patch, clip.scale
        top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        hflip, vflip, swap = (rng.random(3) < 0.5) & [self.flip, self.flip, self.transpose]

        lq = np.stack([clip.lq(i)[top:top + p, left:left + p] for i in range(start, start + self.num_frame)])
        targets = range(start, start + self.num_frame) if self.all_targets else [center]
        gt = np.stack([clip.hq(i)[s * top:s * (top + p), s * left:s * (left + p)] for i in targets])
        arrays = [lq, gt]
        if self.with_ref:
            arrays.append(np.stack([clip.ref(i)[top:top + p, left:left + p] for i in (center - 1, center, center + 1)]))
        out = []
        for a in arrays:  # (N, H, W, 3)
            if hflip:
                a = a[:, :, ::-1]
            if vflip:
                a = a[:, ::-1]
            if swap:
                a = a.transpose(0, 2, 1, 3)
            out.append(frames_to_tensor(a))
        sample = {"lq": out[0], "gt": out[1] if self.all_targets else out[1][0]}
        if self.with_ref:
            sample["ref"] = out[2]
        return sample
