"""VMAF (Netflix's perceptual video metric) per frame, through the `libvmaf` filter of uvssm's ffmpeg.

Streaming and social platforms tune their encoders with VMAF, not PSNR, so `bench --metrics vmaf`
reports it beside the paper's PSNR/SSIM. Each output frame is scored against its HQ frame at HQ
size. Both are 8-bit RGB; ffmpeg converts each to YUV 4:4:4 with swscale's default (BT.601,
limited range), which only matters for luma: the vmaf_v0.6.1 model reads luma features alone.

The command, for frames written as raw RGB24 files:

    ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r 25 -i distorted.rgb
           -f rawvideo -pix_fmt rgb24 -s WxH -r 25 -i reference.rgb
           -lavfi "[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];
                   [d][r]libvmaf=model=version=vmaf_v0.6.1:n_threads=N:log_fmt=json:log_path=LOG"
           -f null -

VMAF's motion feature compares each reference frame with its neighbours (the previous and the next
one). So that a frame's score does not depend on where a shard of frames starts or ends, a
`VmafStream` takes the reference frames just outside the scored range as context (scored, then
dropped): every frame's score is the one a run over the whole clip gives.

libvmaf reports its own version (a release or a git hash) in the log; it is recorded with the model
in every result row.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "vmaf_v0.6.1"


def has_libvmaf(ffmpeg: str) -> bool:
    """Whether this ffmpeg binary has the libvmaf filter."""
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[1:2] == ["libvmaf"] for line in out.stdout.splitlines() if line.strip())


def vmaf_command(ffmpeg: str, distorted: Path, reference: Path, size: tuple[int, int], log: Path,
                 model: str = DEFAULT_MODEL, threads: int = 0) -> list[str]:
    """The argv scoring two raw RGB24 files of (width, height) frames; per-frame scores go to `log` (JSON)."""
    w, h = size
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
    graph = ("[0:v]format=yuv444p[d];[1:v]format=yuv444p[r];"
             f"[d][r]libvmaf=model=version={model}:n_threads={threads}:log_fmt=json:log_path={log}")
    return [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *raw, "-i", str(distorted), *raw, "-i", str(reference),
            "-lavfi", graph, "-f", "null", "-"]


@dataclass(frozen=True)
class VmafResult:
    scores: list[float]  # one per frame, in order
    model: str
    version: str  # libvmaf's, as its log states it


def read_log(log: Path) -> tuple[list[float], str]:
    """Per-frame VMAF and libvmaf's version from a libvmaf JSON log."""
    data = json.loads(Path(log).read_text())
    frames = sorted(data["frames"], key=lambda f: f["frameNum"])
    return [float(f["metrics"]["vmaf"]) for f in frames], str(data.get("version", "unknown"))


class VmafStream:
    """Collect (distorted, reference) frame pairs of one clip range, then score them in one ffmpeg run.

    Frames are appended to two raw files in a temporary folder, so memory stays at one frame whatever
    the range's length. `add(..., keep=False)` adds a context frame whose score is dropped.
    """

    def __init__(self, ffmpeg: str, size: tuple[int, int], model: str = DEFAULT_MODEL, threads: int = 0,
                 tmp_dir: str | None = None):
        self.ffmpeg, self.size, self.model, self.threads = ffmpeg, size, model, threads
        self._dir = tempfile.TemporaryDirectory(prefix="uvssm-vmaf-", dir=tmp_dir)
        root = Path(self._dir.name)
        self._paths = (root / "distorted.rgb", root / "reference.rgb")
        self._files = [open(p, "wb") for p in self._paths]
        self._keep: list[bool] = []

    def add(self, distorted: np.ndarray, reference: np.ndarray, keep: bool = True) -> None:
        """Append one (H, W, 3) uint8 RGB pair."""
        w, h = self.size
        for f, frame in zip(self._files, (distorted, reference)):
            if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
                raise ValueError(f"VMAF frames must be ({h}, {w}, 3) uint8, got {frame.shape} {frame.dtype}")
            f.write(np.ascontiguousarray(frame).tobytes())
        self._keep.append(keep)

    def compute(self) -> VmafResult:
        """Run libvmaf over everything added; returns the scores of the kept frames."""
        for f in self._files:
            f.close()
        try:
            if not self._keep:
                return VmafResult([], self.model, "")
            log = Path(self._dir.name) / "vmaf.json"
            cmd = vmaf_command(self.ffmpeg, *self._paths, self.size, log, self.model, self.threads)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not log.is_file():
                lines = (proc.stderr or "").strip().splitlines()
                raise RuntimeError(f"libvmaf failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
            scores, version = read_log(log)
            if len(scores) != len(self._keep):
                raise RuntimeError(f"libvmaf scored {len(scores)} frames, {len(self._keep)} were given")
            return VmafResult([s for s, k in zip(scores, self._keep) if k], self.model, version)
        finally:
            self._dir.cleanup()

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._dir.cleanup()


def default_threads() -> int:
    """libvmaf threads: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
