"""`uvssm build` on a long pair: time and peak memory against the floor of the job.

The pair is generated once (cached under WORK): a 1920x1080, 30 fps original of MINUTES minutes
(testsrc2 with noise, x264 ultrafast) and a share made from it by a plain ffmpeg command (960x540,
CRF 30, starting 0.5 s in). `uvssm build` (default options: 100 aligned frames) runs as a child
process; its peak memory is the largest sum of the resident sets of its whole process tree (Python
and its ffmpeg children), sampled every 50 ms. The floor is what any build must do: decode both
videos once (plain `ffmpeg -f null`) and write the PNGs it writes. Targets (issue #12): peak
≤ 3 GiB and time ≤ 1.5× the floor on a 10-minute pair.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    """Resident bytes of process `root` and all its descendants."""
    parents: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * _PAGE
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(parents.get(pid, []))
    return total


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, int]:
    """(seconds, peak tree RSS bytes, exit code) of a command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode:
        sys.stderr.write(err.decode()[-2000:])
    return time.perf_counter() - start, peak[0], proc.returncode


def make_pair(ffmpeg: str, work: Path, minutes: float) -> tuple[Path, Path]:
    raw = work / f"raw-{minutes:g}min" / "youtube"
    hq, lq = raw / "HQ" / "long.mp4", raw / "LQ" / "long.mp4"
    if hq.exists() and lq.exists():
        return hq, lq
    for p in (hq, lq):
        p.parent.mkdir(parents=True, exist_ok=True)
    seconds = f"{60 * minutes:g}"
    tmp = hq.with_name(".tmp.mp4")
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30,noise=alls=8:allf=t",
                    "-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-g", "60",
                    "-pix_fmt", "yuv420p", "-y", str(tmp)], check=True)
    tmp.replace(hq)
    tmp = lq.with_name(".tmp.mp4")
    subprocess.run([ffmpeg, "-v", "error", "-ss", "0.5", "-i", str(hq), "-vf", "scale=960:540", "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p", "-y", str(tmp)], check=True)
    tmp.replace(lq)
    return hq, lq


def run(minutes: float = 10.0, work: Path | None = None) -> list[dict]:
    from uvssm.base.ffmpeg import find_ffmpeg

    ffmpeg = find_ffmpeg().path
    work = Path(work or "runs/bench-build")
    t0 = time.perf_counter()
    hq, lq = make_pair(ffmpeg, work, minutes)
    made = time.perf_counter() - t0
    rows = []
    # the floor: decode each video once, then write the PNGs a build writes (100 HQ + 100 LQ frames)
    decode = 0.0
    for path in (hq, lq):
        seconds, _, _ = run_measured([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"])
        decode += seconds
    pngs = work / "floor-pngs"
    shutil.rmtree(pngs, ignore_errors=True)
    pngs.mkdir(parents=True)
    write = 0.0
    for path, name in ((hq, "hq"), (lq, "lq")):
        seconds, _, _ = run_measured([ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "100", "-compression_level",
                                      "1", "-start_number", "0", str(pngs / f"{name}%08d.png")])
        write += seconds
    shutil.rmtree(pngs, ignore_errors=True)
    out = work / "dataset"
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak, code = run_measured([sys.executable, "-m", "uvssm", "build", "--src", str(hq.parents[2]),
                                        "--out", str(out), "--jobs", "1"])
    floor = decode + write
    rows.append({"case": f"{minutes:g}-min 1080p30 pair -> 540p share", "build_s": seconds, "floor_s": floor,
                 "decode_s": decode, "png_s": write, "ratio": seconds / floor, "peak_gib": peak / 2**30,
                 "exit": code, "made_s": made})
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="uvssm build on a long pair (targets: peak ≤ 3 GiB, time ≤ 1.5× floor)", title_justify="left")
    for col in ("case", "build s", "floor s (decode + PNGs)", "ratio", "peak GiB (process tree)", "exit"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        table.add_row(r["case"], f"{r['build_s']:.1f}", f"{r['floor_s']:.1f} ({r['decode_s']:.1f} + {r['png_s']:.1f})",
                      f"{r['ratio']:.2f}x", f"{r['peak_gib']:.2f}", str(r["exit"]))
    Console(width=150).print(table)
