"""The unit of a benchmark's work and of its resume: a shard (frames of one clip, for one model), kept as one
part file `OUT/.parts/<dataset>/<setting>/<split>/<model>/<clip>[@<start>].parquet`, and the run key that
says with which weights and settings a part was made."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from benchmarks import metrics
from benchmarks.options import BenchOptions
from models.inference import shard_unit
from models.trained import TrainedModel
from uvssm.base.datasets import ClipPair, PairedDataset
from uvssm.base.errors import UvssmError
from uvssm.base.metrics import MetricConfig
from uvssm.base.settings import setting_name


@dataclass(frozen=True)
class Shard:
    """Frames start..end-1 of one clip, scored for one model; one part file."""

    clip: ClipPair
    start: int
    end: int
    whole: bool  # the clip's only shard: the part keeps the clip's name

    @property
    def part_name(self) -> str:
        return f"{self.clip.name}.parquet" if self.whole else f"{self.clip.name}@{self.start:05d}.parquet"

    def describe(self) -> str:
        return f"clip {self.clip.name}" if self.whole else f"clip {self.clip.name} frames {self.start}-{self.end - 1}"


def plan_shards(model: TrainedModel, clips: list[ClipPair], opts: BenchOptions) -> list[Shard]:
    """Every clip's scored frames cut at multiples of the shard length the model allows exactly."""
    unit = shard_unit(model.stages)
    shards = []
    for clip in clips:
        n = min(clip.n_frames, opts.max_frames) if opts.max_frames else clip.n_frames
        step = n if unit is None else max(unit, opts.shard_frames // unit * unit)
        starts = list(range(0, n, step))
        shards += [Shard(clip, a, min(a + step, n), len(starts) == 1) for a in starts]
    return shards


def setting_of(ds: PairedDataset) -> str:
    """The results' setting column: "qp28_x2" for synthesised data, "<platform>_x2" for a build dataset."""
    return setting_name(ds.qp, ds.scale) if ds.qp is not None else f"{(ds.platform or 'frames').lower()}_x{ds.scale}"


def run_key(model: TrainedModel, config: MetricConfig, opts: BenchOptions) -> str:
    """A short hash of everything that changes a part's rows: the weights, the metric, the run's settings."""
    inf = opts.inference
    what = {"model": model.name, "sha": model.checkpoint_sha256, "metric": asdict(config), "bf16": inf.bf16,
            "tile": inf.tile, "overlap": inf.overlap if inf.tile else 0, "max_frames": opts.max_frames,
            "chunk": next(([s.chunk, s.chunk_overlap] for s in model.stages if s.kind == "recurrent"), None),
            "channels_last": inf.channels_last, "compile": inf.compile, "dcn_backend": inf.dcn_backend}
    for metric in metrics.resolve(opts.metrics):  # parts without a metric are redone when it is asked for
        if not metric.required:
            what[metric.name] = metric.run_key(opts) if metric.run_key else True
    if model.outputs is not None:  # changed output files are rescored
        what["outputs"] = model.outputs.fingerprint()
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def part_dir(out: Path, ds: PairedDataset, split: str, model: str) -> Path:
    return out / ".parts" / ds.name / setting_of(ds) / split / model


def part_done(part: Path, key: str) -> bool:
    """Whether `part` exists, reads, and was made with run key `key` (anything else is redone)."""
    if not part.is_file():
        return False
    try:
        keys = pd.read_parquet(part, columns=["run_key"])["run_key"].unique()
    except Exception:  # an unreadable part is redone
        return False
    return list(keys) == [key]


def check_parts(out: Path, ds: PairedDataset, split: str, plans: dict[str, list[Shard]],
                run_keys: dict[str, str]) -> None:
    """Raise a one-line UvssmError naming the shards whose part is missing or was made with other
    settings (a rank that failed, or ranks run with different options)."""
    missing = [f"{name} {shard.describe()}" for name, shards in plans.items() for shard in shards
               if not part_done(part_dir(out, ds, split, name) / shard.part_name, run_keys[name])]
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UvssmError(f"{out}: {len(missing)} of {sum(len(s) for s in plans.values())} parts missing after "
                         f"every rank finished ({listed}); run the same command again to complete them")
