"""Benchmark: `uvssm synth-reds` against the official VOTES two-command recipe.

Both run on the same clips with the same ffmpeg binary and the same cores:
- "official": the README's two commands per clip, one clip after another (x264 picks its own
  thread count, as in the original shell loop);
- "official, pinned": the same with `-threads 1` (the reference uvssm must match bit for bit);
- "uvssm": synth-reds with --jobs = cores.
The default clips are REDS-shaped: 4 clips of 100 frames at 1280x720, cut from the sample footage.
Each variant runs in a fresh child process; its peak memory is the largest sum of resident memory
over its whole process tree (Python and every ffmpeg), sampled from /proc every 20 ms.

    python -m benchmarks synth [--src REDS_ROOT_OR_CLIPS] [--qp 28] [--scale 2]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from degrade.recipe import X264Recipe
from uvssm.ffmpeg import find_ffmpeg
from uvssm.frames import FRAME_PATTERN, check_clip, read_rgb
from uvssm.reds import discover


def _run_variant(variant: str, src: Path, out: Path, qp: int, scale: int) -> dict:
    """Run one variant in this (child) process; return timings and peak memory."""
    ffmpeg = find_ffmpeg()
    recipe = X264Recipe(qp=qp, scale=scale)
    clips = [check_clip(c.clip, c.folder) for c in discover(src).clips]
    from uvssm.synth import SynthOptions, synth_reds  # imported before the clock starts, once per run

    t0 = time.perf_counter()
    if variant == "uvssm":
        report = synth_reds(src, out, ffmpeg, SynthOptions(qps=(qp,), scales=(scale,), jobs=os.cpu_count() or 1))
        assert report.ok, report
    else:
        for clip in clips:
            folder = out / clip.name
            folder.mkdir(parents=True)
            commands = recipe.official_commands(str(clip.folder / FRAME_PATTERN), recipe.size_arg(clip.width, clip.height),
                                                str(out / f"{clip.name}.mp4"), str(folder / FRAME_PATTERN),
                                                pinned=(variant == "official-pinned"))
            for args in commands:
                subprocess.run([ffmpeg.path, "-loglevel", "error", *args], check=True)
    seconds = time.perf_counter() - t0
    return {"frames": sum(c.n_frames for c in clips), "seconds": seconds}


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def _spawn(variant: str, src: Path, out: Path, qp: int, scale: int) -> dict:
    """Run a variant in a child process while sampling the peak RSS of its whole process tree."""
    code = ("import json,sys; from pathlib import Path; from benchmarks.perf_synth import _run_variant; "
            f"print(json.dumps(_run_variant({variant!r}, Path({str(src)!r}), Path({str(out)!r}), {qp}, {scale})))")
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=stdout, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.02)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark variant {variant} failed with code {proc.returncode}")
        stdout.seek(0)
        result = json.loads(stdout.read().strip().splitlines()[-1])
    result["rss_tree_mib"] = peak / 1024
    return result


def _same_frames(a: Path, b: Path) -> bool:
    files_a, files_b = sorted(a.glob("*.png")), sorted(b.glob("*.png"))
    return len(files_a) == len(files_b) > 0 and all(
        np.array_equal(read_rgb(x), read_rgb(y)) for x, y in zip(files_a, files_b))


def make_bench_clips(root: Path, n_clips: int = 4, frames: int = 100) -> Path:
    """REDS-shaped clips (100 frames, 1280x720) cut from the sample footage at different offsets."""
    from uvssm.ffmpeg import run as run_ffmpeg
    from uvssm.sample import bundled_video

    video = bundled_video()
    source = ["-i", str(video)] if video else ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25,noise=alls=12:allf=t"]
    pool = root / "pool"
    pool.mkdir(parents=True)
    step = 8
    total = frames + step * (n_clips - 1)
    run_ffmpeg(find_ffmpeg(), [*source, "-frames:v", str(total), "-vf", "scale=1280:720", "-pix_fmt", "rgb24",
                               "-f", "image2", "-start_number", "0", str(pool / FRAME_PATTERN)], context="bench clips")
    available = len(list(pool.glob("*.png")))
    for c in range(n_clips):
        clip = root / "clips" / f"{c:03d}"
        clip.mkdir(parents=True)
        for i in range(frames):  # hard links: no copy, and every clip is a real PNG sequence
            os.link(pool / f"{(c * step + i) % available:08d}.png", clip / f"{i:08d}.png")
    return root / "clips"


def run(src: Path | None = None, qp: int = 28, scale: int = 2) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="uvssm-bench-") as tmp:
        tmp = Path(tmp)
        if src is None:
            src = make_bench_clips(tmp / "src")
        results = {}
        for variant in ("official", "official-pinned", "uvssm"):
            results[variant] = _spawn(variant, src, tmp / variant, qp, scale)
        clips = [c.clip for c in discover(src).clips]
        unit = tmp / "uvssm" / f"LQ_qp{qp}_x{scale}"
        identical = all(_same_frames(unit / c, tmp / "official-pinned" / c) for c in clips)
    base = results["official"]["frames"] / results["official"]["seconds"]
    rows = []
    for variant, r in results.items():
        fps = r["frames"] / r["seconds"]
        rows.append({"variant": variant, "clips": len(clips), "frames": r["frames"], "seconds": r["seconds"],
                     "frames_per_s": fps, "vs_official": fps / base, "peak_rss_mib": r["rss_tree_mib"],
                     "identical_to_pinned": identical if variant == "uvssm" else None})
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=120)
    table = Table(title=f"synth-reds vs the official recipe ({os.cpu_count()} cores, same clips, same ffmpeg)",
                  title_justify="left")
    for col in ("variant", "clips", "frames", "seconds", "frames/s", "vs official", "peak RSS, all processes (MiB)",
                "identical to pinned"):
        table.add_column(col, justify="right", overflow="fold")
    for r in rows:
        same = "-" if r["identical_to_pinned"] is None else ("yes" if r["identical_to_pinned"] else "NO")
        table.add_row(r["variant"], str(r["clips"]), str(r["frames"]), f"{r['seconds']:.2f}", f"{r['frames_per_s']:.1f}",
                      f"{r['vs_official']:.2f}x", f"{r['peak_rss_mib']:.0f}", same)
    console.print(table)
