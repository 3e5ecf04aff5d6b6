"""Benchmark: `uvssm synth-reds` against the official VOTES two-command recipe.

Every case runs the same clips with the same ffmpeg binary on the same cores, one variant after
another:
- "official": the README's two commands per clip and setting, one after another (x264 picks its
  own thread count, as in the original shell loop); for four settings, four such runs;
- "official, pinned": the same with `-threads 1` (the reference uvssm must match bit for bit);
- "uvssm": one synth-reds run with --jobs = cores, all the case's settings at once.
Cases: 720p clips of 100 frames (REDS's length) and of 30 frames, at one setting (QP 28 x2) and
at all four (QP 28/33 x x2/x4). The clips are cut from the sample footage.

Each variant runs in a fresh child process; its peak memory is the largest sum of resident memory
over its whole process tree (Python and every ffmpeg), sampled from /proc every 20 ms. For uvssm the
table also says where its time goes:
- "floor": the CPU time of the frames' work alone, i.e. uvssm's own per-clip ffmpeg command run
  bare (its hash pipes sent to /dev/null) by a shell loop;
- "start-up": a second synth-reds run on the finished output (everything skipped: discovery,
  checks, catalogue, manifests), in seconds of wall time;
- "overhead per clip": uvssm's CPU time beyond the floor and the start-up, per clip.

    python -m benchmarks synth [--src REDS_ROOT_OR_CLIPS]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from degrade.recipe import LqTarget, X264Recipe, synth_command
from uvssm.base.ffmpeg import find_ffmpeg
from uvssm.base.frames import FRAME_PATTERN, check_clip, read_rgb
from uvssm.base.reds import discover

ONE = ((28, 2),)
FOUR = ((28, 2), (33, 2), (28, 4), (33, 4))


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_variant(variant: str, src: Path, out: Path, settings: list[tuple[int, int]]) -> dict:
    """Run one variant in this (child) process; return wall and CPU seconds."""
    ffmpeg = find_ffmpeg()
    recipes = [X264Recipe(qp=q, scale=s) for q, s in settings]
    clips = [check_clip(c.clip, c.folder) for c in discover(src).clips]
    from uvssm.pipelines.synth import SynthOptions, synth_reds  # imported before the clock starts, once per run

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    if variant == "uvssm":
        options = SynthOptions(qps=tuple(sorted({q for q, _ in settings})), scales=tuple(sorted({s for _, s in settings})),
                               jobs=os.cpu_count() or 1)
        report = synth_reds(src, out, ffmpeg, options)
        assert report.ok, report
    elif variant == "floor":  # uvssm's own per-clip command, run bare
        for clip in clips:
            work = out / clip.name
            targets = []
            for r in recipes:
                (work / r.setting).mkdir(parents=True)
                targets.append(LqTarget(r, str(work / f"{r.setting}.mp4"), str(work / r.setting / FRAME_PATTERN), "/dev/null"))
            subprocess.run([ffmpeg.path, "-nostdin", "-loglevel", "error",
                            *synth_command(str(clip.folder / FRAME_PATTERN), targets)], check=True)
    else:
        for recipe in recipes:
            for clip in clips:
                folder = out / recipe.setting / clip.name
                folder.mkdir(parents=True)
                commands = recipe.official_commands(str(clip.folder / FRAME_PATTERN), recipe.size_arg(clip.width, clip.height),
                                                    str(folder.parent / f"{clip.name}.mp4"), str(folder / FRAME_PATTERN),
                                                    pinned=(variant == "official-pinned"))
                for args in commands:
                    subprocess.run([ffmpeg.path, "-loglevel", "error", *args], check=True)
    result = {"frames": sum(c.n_frames for c in clips), "clips": len(clips),
              "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - cpu0}
    if variant == "uvssm":  # start-up: the same run again, every clip already done
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        synth_reds(src, out, ffmpeg, options)
        result.update(startup_seconds=time.perf_counter() - t0, startup_cpu_seconds=_cpu_seconds() - cpu0)
    return result


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


def _spawn(variant: str, src: Path, out: Path, settings: tuple[tuple[int, int], ...]) -> dict:
    """Run a variant in a child process while sampling the peak RSS of its whole process tree."""
    code = ("import json,sys; from pathlib import Path; from benchmarks.perf.synth import _run_variant; "
            f"print(json.dumps(_run_variant({variant!r}, Path({str(src)!r}), Path({str(out)!r}), {list(settings)!r})))")
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
    """REDS-shaped clips (1280x720) cut from the sample footage at different offsets."""
    from uvssm.base.ffmpeg import run as run_ffmpeg
    from uvssm.pipelines.sample import bundled_video

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


def _case(src: Path, tmp: Path, label: str, settings: tuple[tuple[int, int], ...]) -> list[dict]:
    results = {v: _spawn(v, src, tmp / v, settings) for v in ("official", "official-pinned", "uvssm", "floor")}
    clips = [c.clip for c in discover(src).clips]
    identical = all(_same_frames(tmp / "uvssm" / f"LQ_qp{q}_x{s}" / c, tmp / "official-pinned" / f"qp{q}_x{s}" / c)
                    for q, s in settings for c in clips)
    base = results["official"]["seconds"]
    rows = []
    for variant in ("official", "official-pinned", "uvssm"):
        r = results[variant]
        row = {"case": label, "settings": len(settings), "variant": variant, "clips": r["clips"],
               "frames": r["frames"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
               "vs_official": base / r["seconds"], "peak_rss_mib": r["rss_tree_mib"],
               "identical_to_pinned": identical if variant == "uvssm" else None}
        if variant == "uvssm":
            floor = results["floor"]["cpu_seconds"]
            row.update(floor_cpu_seconds=floor, startup_seconds=r["startup_seconds"],
                       overhead_cpu_per_clip=(r["cpu_seconds"] - floor - r["startup_cpu_seconds"]) / r["clips"])
        rows.append(row)
    return rows


def run(src: Path | None = None) -> list[dict]:
    """Every case on generated clips (or, with `src`, the four settings on those clips only)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="uvssm-bench-") as tmp:
        tmp = Path(tmp)
        if src is not None:
            return _case(src, tmp / "given", f"{src}", FOUR)
        for frames, n_clips in ((100, 4), (30, 8)):
            clips = make_bench_clips(tmp / f"src{frames}", n_clips, frames)
            for settings in (ONE, FOUR):
                label = f"{n_clips} x {frames} frames, 720p"
                rows += _case(clips, tmp / f"{frames}-{len(settings)}", label, settings)
    return rows


def print_table(rows: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    table = Table(title=f"synth-reds vs the official recipe ({os.cpu_count()} cores, same clips, same ffmpeg)",
                  title_justify="left")
    for col in ("clips", "settings", "variant", "seconds", "vs official", "CPU s", "floor CPU s",
                "start-up s", "overhead CPU s/clip", "peak RSS, all processes (MiB)", "identical to pinned"):
        table.add_column(col, justify="right", overflow="fold")
    for r in rows:
        same = "-" if r["identical_to_pinned"] is None else ("yes" if r["identical_to_pinned"] else "NO")
        extra = [f"{r['floor_cpu_seconds']:.2f}", f"{r['startup_seconds']:.2f}", f"{r['overhead_cpu_per_clip']:.3f}"] \
            if "floor_cpu_seconds" in r else ["-", "-", "-"]
        table.add_row(r["case"], str(r["settings"]), r["variant"], f"{r['seconds']:.2f}", f"{r['vs_official']:.2f}x",
                      f"{r['cpu_seconds']:.1f}", *extra, f"{r['peak_rss_mib']:.0f}", same)
    console.print(table)
