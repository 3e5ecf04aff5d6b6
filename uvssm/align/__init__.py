"""Aligning a shared (LQ) video with its original (HQ): which HQ frame each LQ frame shows, and
which HQ rectangle the LQ picture covers. One job per module, data flowing down this list:

- `temporal`: the start offset and a first frame mapping, on thumbnails (`temporal_match`).
- `picture`: where the original's picture lies in the share, by content (`locate_picture`).
- `geometry`: the HQ rectangle the picture shows (`spatial_fit`) and the output cut (`exact_geometry`).
- `frame_errors`: each LQ picture against HQ frames at LQ size (`lq_size_errors`).
- `timing` and `rate_chain`: the rule that names each frame's HQ frame from its timestamp.
- `check`: each pairing checked against its neighbours under that rule (`choose_frames`).
- `held`: the span of both videos that the check and the weighing read, decoded once.
- `hypotheses`: whole accounts of a share (start, timing rule, geometry), each fitted on its own terms.
- `decision`: the chosen account against its rivals, with a margin in the share's own noise.
- `pair`: one pair end to end, and the refusals (`align_pair`).
"""

from uvssm.align.check import SelfCheck, choose_frames, refine_mapping
from uvssm.align.frame_errors import FrameErrors, hq_at_lq_size, lq_size_errors
from uvssm.align.geometry import (Geometry, SpatialFit, black_bars, exact_geometry, hq_frame, resample_box,
                                  spatial_fit)
from uvssm.align.pair import AlignOptions, PairAlignment, align_pair, align_videos, timestamps
from uvssm.align.picture import FrameMap, locate_picture
from uvssm.align.temporal import TemporalMatch, temporal_match, timestamp_rounding
from uvssm.align.timing import fit_rounding, rounding_fit, timing_rule

__all__ = ["AlignOptions", "FrameErrors", "FrameMap", "Geometry", "PairAlignment", "SelfCheck", "SpatialFit",
           "TemporalMatch", "align_pair", "align_videos", "black_bars", "choose_frames", "exact_geometry",
           "fit_rounding", "hq_at_lq_size", "hq_frame", "locate_picture", "lq_size_errors", "refine_mapping",
           "resample_box", "rounding_fit", "spatial_fit", "temporal_match", "timestamp_rounding", "timestamps",
           "timing_rule"]
