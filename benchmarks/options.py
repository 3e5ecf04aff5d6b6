"""What `uvssm bench` is asked to do: the data, the models, the metrics, the sharding, and how the models run
(`models.inference.InferenceOptions`, the type `uvssm restore` embeds too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models.inference import InferenceOptions
from uvssm.base.errors import UvssmError


@dataclass
class BenchOptions:
    models: list[str]
    data: Path
    out: Path
    scale: int = 2
    qp: int | None = None
    platform: str | None = None  # a platform folder of a build dataset, in any case ("wechat" or "WeChat")
    split: str = "test"  # train, val, test, all; "reds4" = the val split of a synth-reds folder
    weights: list[str] = field(default_factory=list)  # DIRs and NAME=PATH entries
    inference: InferenceOptions = InferenceOptions()  # device, precision, batch, tiles, chunks, DCN, compile
    color_space: str = "y"
    crop_border: int | None = None  # default: the scale (VOTES)
    max_frames: int = 0  # per clip, from its start; 0 = every frame
    save_frames: int = 1  # frames per clip kept as PNG for `uvssm report`
    shard_frames: int = 25  # frames per shard of a clip (window models; recurrent: the chunk)
    metrics: tuple[str, ...] = ("psnr", "ssim")  # "vmaf" adds libvmaf's score (needs an ffmpeg with libvmaf)
    vmaf_model: str = "vmaf_v0.6.1"
    ffmpeg: str | None = None  # the binary for VMAF and video outputs (default: uvssm's usual search)
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (name, DIR): outputs made elsewhere, scored
    clips: str | None = None  # a subset of the split's clips: "240-249,255" (uvssm.base.clipsel)
    num_shards: int = 1  # a job array without torchrun: job `shard_index` takes every num_shards-th shard ...
    shard_index: int = 0
    gather: bool = False  # ... and a last job with gather=True checks every part and writes the tables
    argv: tuple[str, ...] | None = None  # the command line after `uvssm` (for advice that names a command)

    def check(self) -> None:
        """Raise a one-line UvssmError for options that cannot run."""
        problem = self.inference.problem()
        if problem:
            raise UvssmError(problem)
        if self.shard_frames < 1:
            raise UvssmError(f"--shard-frames must be at least 1, got {self.shard_frames}")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise UvssmError(f"--shard-index must be in 0..{self.num_shards - 1} for --num-shards {self.num_shards}, "
                             f"got {self.shard_index}")
        if not self.models and not self.outputs:
            raise UvssmError("nothing to score: give --models, --outputs NAME=DIR, or both")
