"""Full-resolution luma frames that the check and the weighing read more than once, decoded once.

The check (`check.refine_mapping`), the rivals' rectangle fits (`pair.rivals`) and the costs of
every account (`hypotheses.costs`) each read the same span of both videos, once per weighing. Where
that span fits in `HELD_BYTES` it is decoded once and held; otherwise every reader decodes it again,
streaming, as before (a long `--frames` span of a large original).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from uvssm.base.decode import gray_frames

HELD_BYTES = 1 << 30  # a third of the 3 GiB that `uvssm build`'s peak memory is held to (issue #12)


class HeldFrames:
    """Frames `first`..`last` of one video (display order, full-resolution luma), decoded once where
    they fit in `budget` bytes. `frames()` serves them as the (index, luma) iterator `gray_frames`
    gives; a reader that goes on past `last` is served the rest of the video by a new decoding."""

    def __init__(self, ffmpeg, info, first: int, last: int, budget: int = HELD_BYTES):
        self.ffmpeg, self.info, self.first, self.last = ffmpeg, info, max(0, first), last
        w, h = info.display_size
        self.held: dict[int, np.ndarray] | None = None
        self.ended = False  # the video has no frame after the last held one
        if (last - self.first + 1) * w * h <= budget:
            self.held = dict(gray_frames(ffmpeg, info, None, set(range(self.first, last + 1))))
            self.ended = len(self.held) < last - self.first + 1

    def frames(self, first: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, luma) of frames `first` (default: the first held), `first` + 1, … to the end of
        the video, in order (a reader stops when it has what it needs, and needs none before `first`)."""
        first = self.first if first is None else first
        if self.held is None or first < self.first:
            yield from ((i, f) for i, f in gray_frames(self.ffmpeg, self.info, None) if i >= first)
            return
        yield from ((i, self.held[i]) for i in sorted(self.held) if i >= first)
        if not self.ended:
            after = max(self.held, default=self.last) + 1
            yield from ((i, f) for i, f in gray_frames(self.ffmpeg, self.info, None) if i >= after)

    def pick(self, indices: set[int]) -> dict[int, np.ndarray]:
        """{index: luma} of the frames asked for (those in the video)."""
        if self.held is not None and indices and min(indices) >= self.first and (
                max(indices) <= self.last or self.ended):
            return {i: self.held[i] for i in indices if i in self.held}
        return dict(gray_frames(self.ffmpeg, self.info, None, set(indices)))
