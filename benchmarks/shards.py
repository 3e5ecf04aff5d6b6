"""The unit of a benchmark's work and of its resume: a shard (frames of one clip, for one model), kept as one
part file `OUT/.parts/<dataset>/<setting>/<split>/<model>/<clip>[@<start>].parquet`, and the run key that
says with which weights and settings a part was made; the completeness check, which after a job array
(`--gather`) names a missing part's job with its command, or says that the parts were cut differently."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from benchmarks import metrics
from benchmarks.options import BenchOptions
from models.inference import shard_unit
from models.trained import TrainedModel
from uvssm.base import atomic
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
            "channels_last": inf.channels_last, "compile": inf.compile,
            # the backend the deformable convolutions ran on (rank 0's choice under torchrun), not "auto": the
            # backends' bf16 numerics differ; a model without one keeps the option
            "dcn_backend": model.dcn_backend if model.dcn_backend is not None else inf.dcn_backend}
    for metric in metrics.resolve(opts.metrics):  # parts without a metric are redone when it is asked for
        if not metric.required:
            what[metric.name] = metric.run_key(opts) if metric.run_key else True
    if model.outputs is not None:  # changed output files are rescored
        what["outputs"] = model.outputs.fingerprint()
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def part_dir(out: Path, ds: PairedDataset, split: str, model: str) -> Path:
    return out / ".parts" / ds.name / setting_of(ds) / split / model


def recorded_backend(out: Path, ds: PairedDataset, split: str, model: str) -> str | None:
    """The DCN backend that the runs of `model` recorded beside its parts (model.json; None: none recorded, or a
    model without deformable convolutions): what `--gather` keys the parts by, where it runs no model itself."""
    try:
        return json.loads((part_dir(out, ds, split, model) / "model.json").read_text()).get("dcn_backend")
    except (OSError, ValueError, AttributeError):
        return None


def part_done(part: Path, key: str) -> bool:
    """Whether `part` exists, reads, and was made with run key `key` (anything else is redone)."""
    if not part.is_file():
        return False
    try:
        keys = pd.read_parquet(part, columns=["run_key"])["run_key"].unique()
    except Exception:  # an unreadable part is redone
        return False
    return list(keys) == [key]


ARRAY_FILE = "array.json"  # beside a split's model folders: the --num-shards of the job array that wrote them


def record_array(out: Path, ds: PairedDataset, split: str, num_shards: int) -> None:
    """Note the job array's --num-shards beside its parts, so that `--gather` can name a missing job."""
    path = part_dir(out, ds, split, "_").parent / ARRAY_FILE
    atomic.write_text(path, json.dumps({"num_shards": num_shards}) + "\n")


def recorded_array(out: Path, ds: PairedDataset, split: str) -> int | None:
    """The --num-shards that the array's jobs ran with, where one wrote it down."""
    try:
        return int(json.loads((part_dir(out, ds, split, "_").parent / ARRAY_FILE).read_text())["num_shards"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _without_shards(argv: tuple[str, ...] | None) -> str:
    """`uvssm` and `argv` (a --gather command line) without --gather, --num-shards and --shard-index; "uvssm
    bench ..." where the command line is not known (a library call)."""
    if argv is None:
        return "uvssm bench ..."
    kept, skip = [], False
    for arg in argv:
        if skip or arg == "--gather" or arg.startswith(("--num-shards=", "--shard-index=")):
            skip = False
            continue
        if arg in ("--num-shards", "--shard-index"):
            skip = True
            continue
        kept.append(arg)
    return shlex.join(["uvssm", *kept])


def job_command(argv: tuple[str, ...] | None, num_shards: int, index: int | str) -> str:
    """The command of job `index` of a --num-shards array, from the --gather command line `argv`."""
    return f"{_without_shards(argv)} --num-shards {num_shards} --shard-index {index}"


def _starts(name: str) -> tuple[str, int | None]:
    """(clip, first frame) of a part's file name; None for a whole clip's part."""
    clip, _, start = Path(name).stem.partition("@")
    return clip, int(start) if start.isdigit() else None


def _cut(starts: dict[str, list[int | None]]) -> int | None:
    """The shard length of a cut, from each clip's sorted part starts: the smallest step between
    neighbours (some parts may be missing); None when every clip is one whole part."""
    steps = [b - a for s in starts.values() for a, b in zip(s, s[1:]) if a is not None and b is not None]
    return min(steps) if steps else None


def _other_cut(out: Path, ds: PairedDataset, split: str, plans: dict[str, list[Shard]], opts: BenchOptions
               ) -> str | None:
    """Why the parts on disk do not fit the plan when they were cut with another shard length (a --gather
    with another --shard-frames than the jobs'), naming both cuts; None when they were cut alike."""
    on_disk = planned = 0
    disk_starts: dict[str, list[int | None]] = {}
    plan_starts: dict[str, list[int | None]] = {}
    differ = False
    for name, shards in plans.items():
        clips = {sh.clip.name: min(sh.clip.n_frames, opts.max_frames) if opts.max_frames else sh.clip.n_frames
                 for sh in shards}
        folder = part_dir(out, ds, split, name)
        found = sorted(p.name for p in folder.glob("*.parquet")) if folder.is_dir() else []
        found = [f for f in found if _starts(f)[0] in clips]
        on_disk, planned = on_disk + len(found), planned + len(shards)
        for clip, n in clips.items():
            mine = sorted((s for c, s in map(_starts, found) if c == clip), key=lambda s: -1 if s is None else s)
            wanted = [None if sh.whole else sh.start for sh in shards if sh.clip.name == clip]
            disk_starts[f"{name}/{clip}"], plan_starts[f"{name}/{clip}"] = mine, wanted
            # a part the plan does not have, or a whole other cut of the clip's frames
            if any(s not in wanted for s in mine) or (len(mine) > 1 and None not in mine and mine != wanted
                                                     and mine == list(range(0, n, mine[1] - mine[0]))):
                differ = True
    disk, plan = _cut(disk_starts), _cut(plan_starts)
    if not differ or disk == plan:  # the same cut (parts of other frames: other settings, named as such)
        return None
    longest = max(sh.end for shards in plans.values() for sh in shards)

    def cut(step: int | None) -> str:
        return "whole clips" if step is None else f"shards of {step} frames"

    return (f"{out}: the {on_disk} parts on disk were cut differently: into {cut(disk)}, while this command cuts "
            f"{cut(plan)} (--shard-frames {opts.shard_frames}: {planned} parts); gather with the jobs' cut "
            f"(--shard-frames {disk if disk is not None else longest}), or run the jobs again with this command's")


def check_parts(out: Path, ds: PairedDataset, split: str, plans: dict[str, list[Shard]],
                run_keys: dict[str, str], gather: BenchOptions | None = None) -> None:
    """Raise a one-line UvssmError naming the shards whose part is missing or was made with other
    settings (a rank that failed, or ranks run with different options). After a job array (`gather`,
    the --gather run's options): parts cut with another shard length are named as such, and a missing
    part's job is named with the command that makes it."""
    missing, jobs, other_key = [], set(), False
    for name, shards in plans.items():
        for position, shard in enumerate(shards):
            part = part_dir(out, ds, split, name) / shard.part_name
            if not part_done(part, run_keys[name]):
                stale = part.is_file()
                other_key |= stale
                missing.append(f"{name} {shard.describe()}" + (" (made with other settings)" if stale else ""))
                jobs.add(position)
    if not missing:
        return
    listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    head = f"{out}: {len(missing)} of {sum(len(s) for s in plans.values())} parts missing"
    if gather is None:
        raise UvssmError(f"{head} after every rank finished ({listed}); run the same command again to complete them")
    why = _other_cut(out, ds, split, plans, gather)
    if why:
        raise UvssmError(why)
    k = gather.num_shards if gather.num_shards > 1 else recorded_array(out, ds, split)
    settings = "; or gather with the options the jobs ran with" if other_key else ""
    if k is None:
        raise UvssmError(f"{head} ({listed}); make them with `{_without_shards(gather.argv)}` (this command without "
                         f"--gather: finished parts are kept), then gather again{settings}")
    idle = sorted({p % k for p in jobs})
    if len(idle) == 1:
        todo = f"job {idle[0]} of {k} has not written them: run it again with `{job_command(gather.argv, k, idle[0])}`"
    else:
        todo = (f"jobs {', '.join(map(str, idle))} of {k} have not written them: run them again with "
                f"`{job_command(gather.argv, k, 'I')}` for I in {' '.join(map(str, idle))}")
    raise UvssmError(f"{head} ({listed}); {todo}, then gather again{settings}")
