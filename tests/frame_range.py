"""A held-out part of a clip, for tests that train on a clip's first frames and validate on its last."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.base.datasets import ClipPair


@dataclass
class FrameRange:
    """Frames [start, start + n_frames) of a clip, as a clip of their own (e.g. to hold out a clip's last frames)."""

    clip: ClipPair
    start: int
    n_frames: int

    def __post_init__(self):
        if self.start < 0 or self.n_frames <= 0 or self.start + self.n_frames > self.clip.n_frames:
            raise ValueError(f"frames {self.start}..{self.start + self.n_frames - 1} are outside clip "
                             f"{self.clip.name} ({self.clip.n_frames} frames)")

    @property
    def name(self) -> str:
        return f"{self.clip.name}[{self.start}:{self.start + self.n_frames}]"

    @property
    def scale(self) -> int:
        return self.clip.scale

    @property
    def lq_size(self) -> tuple[int, int]:
        return self.clip.lq_size

    def lq(self, i: int) -> np.ndarray:
        return self.clip.lq(self.start + i)

    def hq(self, i: int) -> np.ndarray:
        return self.clip.hq(self.start + i)

    def ref(self, i: int) -> np.ndarray:
        return self.clip.ref(self.start + i)
