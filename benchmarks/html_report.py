"""`uvssm report --html`: one self-contained page of a bench results folder, readable with no network.

Everything is inside `report.html`: CSS and a few lines of JavaScript inline, charts as inline SVG drawn here,
images as base64 data URIs. It holds Table 2 beside the paper and the cost table, per-clip bars (each model's
difference to bicubic, from a zero line) and per-frame curves of every metric computed, on round ticks, the
saved frames' most detailed crops with a before/after slider against GT (each side named on the image), and the
figures `uvssm report` writes (DFM, DFM/QP, PSNR against QP).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import metrics as metric_registry
from benchmarks import tables
from uvssm import __version__
from uvssm.base import atomic
from uvssm.base.errors import UvssmError
from uvssm.base.frames import read_rgb

PAGE = "report.html"
COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
          "#bab0ac"]
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} td.best{font-weight:700}
svg{background:#fff;border:1px solid #eee;margin:4px 8px 4px 0}
.compare{position:relative;display:inline-block;line-height:0;border:1px solid #ccc}
.compare img{image-rendering:pixelated;width:360px;height:360px;object-fit:contain;display:block}
.compare img.top{position:absolute;left:0;top:0}
.cmp{display:inline-block;margin:0 16px 16px 0;vertical-align:top} .cmp label{font-size:12px;color:#444}
.cmp input[type=range]{width:360px} figure{margin:8px 0} figure img{max-width:100%}
.compare .tag{position:absolute;top:4px;padding:2px 6px;font:12px/1.3 system-ui,sans-serif;color:#fff;
background:rgba(0,0,0,.62);border-radius:3px;max-width:45%;overflow:hidden;white-space:nowrap}
.compare .tag-left{left:4px} .compare .tag-right{right:4px}
"""
SCRIPT = """
document.querySelectorAll('.cmp').forEach(function (box) {
  var range = box.querySelector('input[type=range]'), top = box.querySelector('img.top'),
      pick = box.querySelector('select'), name = box.querySelector('.left-name'), tag = box.querySelector('.tag-left');
  function show() { top.style.clipPath = 'inset(0 ' + (100 - Number(range.value)) + '% 0 0)'; }
  range.addEventListener('input', show);
  pick.addEventListener('change', function () {
    top.src = pick.value; name.textContent = tag.textContent = pick.options[pick.selectedIndex].text;
  });
  show();
});
"""


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _fmt(value, fmt: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(v) else ("∞" if math.isinf(v) else format(v, fmt))


def _e(text) -> str:
    return html.escape(str(text))


# --- charts: inline SVG -----------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round ticks (steps of 1, 2 or 5 times a power of ten) from a multiple of the step at or
    below `lo` to one at or above `hi`: the chart's axis runs from the first to the last."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-6), math.ceil(hi / step - 1e-6)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _tick_label(value: float, ticks: list[float]) -> str:
    """`value` with as many decimals as the ticks' step needs (0.02 → 2, 5 → 0)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value + 0.0:.{decimals}f}"  # + 0.0: no "-0"


def _svg_open(width: int, height: int, left: int, right: int, title: str, ticks: list[float], sy,
              note: str = "") -> list[str]:
    """A chart's opening: the svg element, its title (and a note under it) and a labelled horizontal grid line at
    each round tick."""
    label = f"{title}; {note}" if note else title
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(label)}"><text x="{left}" y="15" font-size="12" font-weight="600">{_e(title)}</text>']
    if note:
        parts.append(f'<text x="{left}" y="28" font-size="10" fill="#555">{_e(note)}</text>')
    for y in ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                     f'<text class="ytick" x="{left - 4}" y="{sy(y) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{_tick_label(y, ticks)}</text>')
    return parts


def svg_lines(series: dict[str, tuple[list[float], list[float]]], title: str, ylabel: str,
              width: int = 540, height: int = 230) -> str:
    """A line chart of each named series (x, y) on round ticks; non-finite points are left out."""
    left, right, top, bottom = 52, 12, 24, 46
    xs = [x for x, _ in series.values() for x in x]
    ys = [y for _, y in series.values() for y in y]
    x0, x1 = (min(xs), max(xs)) if xs else (0, 1)
    x1 = x1 if x1 > x0 else x0 + 1
    finite = [y for y in ys if math.isfinite(y)] or [0.0, 1.0]
    ticks = nice_ticks(min(finite), max(finite))
    y0, y1 = ticks[0], ticks[-1]
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)  # noqa: E731
    parts = _svg_open(width, height, left, right, title, ticks, sy)
    parts.append(f'<text x="12" y="{top + (height - top - bottom) / 2:.0f}" font-size="10" '
                 f'transform="rotate(-90 12 {top + (height - top - bottom) / 2:.0f})" text-anchor="middle">{_e(ylabel)}</text>')
    parts.append(f'<text x="{left}" y="{height - bottom + 14}" font-size="10">{x0:g}</text>'
                 f'<text x="{width - right}" y="{height - bottom + 14}" font-size="10" text-anchor="end">{x1:g}</text>'
                 f'<text x="{(left + width - right) / 2:.0f}" y="{height - bottom + 14}" font-size="10" '
                 'text-anchor="middle">frame</text>')
    for k, (name, (x, y)) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, y) if math.isfinite(b))
        if pts:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{pts}"/>')
        lx = left + (k % 4) * 120
        ly = height - 12 - (k // 4) * 12
        parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="{ly - 4}" font-size="10">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(groups: list[str], series: dict[str, list[float]], title: str, ylabel: str, fmt: str,
             height: int = 240, note: str = "") -> str:
    """Grouped bars, one group per clip and one bar per model, each drawn from zero (a darker line) on round
    ticks: a bar's length is its value. Non-finite values get no bar; `note`, a line under the title."""
    left, right, top, bottom = 52, 12, 38 if note else 24, 58
    n = max(len(series), 1)
    slot = max(18 * n + 10, 40)
    width = max(left + right + slot * max(len(groups), 1), 460)
    values = [v for vs in series.values() for v in vs if math.isfinite(v)] + [0.0]
    ticks = nice_ticks(min(values), max(values))
    y0, y1 = ticks[0], ticks[-1]
    sy = lambda y: top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)  # noqa: E731
    parts = _svg_open(width, height, left, right, title, ticks, sy, note)
    parts.append(f'<text x="12" y="{top + 60}" font-size="10" transform="rotate(-90 12 {top + 60})" '
                 f'text-anchor="middle">{_e(ylabel)}</text>')
    zero = sy(0.0)
    for g, group in enumerate(groups):
        gx = left + g * slot + 5
        for k, (name, vs) in enumerate(series.items()):
            v = vs[g]
            if not math.isfinite(v):
                continue
            y = sy(v)
            parts.append(f'<rect class="bar" x="{gx + 18 * k}" y="{min(y, zero):.1f}" width="16" '
                         f'height="{abs(zero - y):.1f}" fill="{COLORS[k % len(COLORS)]}">'
                         f'<title>{_e(name)} {_e(group)}: {format(v, fmt)}</title></rect>')
        parts.append(f'<text x="{gx + 9 * n:.0f}" y="{height - bottom + 14}" font-size="10" '
                     f'text-anchor="middle">{_e(group)}</text>')
    parts.append(f'<line class="zero" x1="{left}" x2="{width - right}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#777"/>')
    for k, name in enumerate(series):
        lx, ly = left + (k % 5) * 110, height - 14 - (k // 5) * 12
        parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="8" fill="{COLORS[k % len(COLORS)]}"/>'
                     f'<text x="{lx + 14}" y="{ly}" font-size="10">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- sections ---------------------------------------------------------------------------------------------

def _shown_metrics(frame: pd.DataFrame) -> list:
    return [m for m in metric_registry.METRICS.values()
            if m.required or (m.column in frame and frame[m.column].notna().any())]


def _table2(table: pd.DataFrame) -> str:
    shown = _shown_metrics(table)
    head = ("<tr>" + "".join(f'<th class="l">{c}</th>' for c in ("dataset", "setting", "split", "model"))
            + "<th>clips</th>" + "".join(f"<th>{_e(m.label)}</th>" for m in shown)
            + '<th class="l">paper</th><th>ΔPSNR</th><th>ΔSSIM</th></tr>')
    rows = []
    keys = ["dataset", "setting", "split"]
    for _, group in table.groupby(keys, sort=True):
        best = {m.column: (group[m.column].max() if m.higher_is_better else group[m.column].min()) for m in shown}
        for r in group.itertuples():
            cells = []
            for m in shown:
                v = getattr(r, m.column)
                mark = ' class="best"' if len(group) > 1 and v == best[m.column] else ""
                cells.append(f"<td{mark}>{_fmt(v, m.fmt)}</td>")
            paper = "" if math.isnan(r.paper_psnr) else f"{r.paper_psnr:.2f} / {r.paper_ssim:.4f}"
            rows.append(f'<tr data-model="{_e(r.model)}"><td class="l">{_e(r.dataset)}</td><td class="l">{_e(r.setting)}</td>'
                        f'<td class="l">{_e(r.split)}</td><td class="l">{_e(r.model)}</td><td>{r.clips}</td>{"".join(cells)}'
                        f'<td class="l">{paper}</td><td>{_fmt(r.delta_psnr, "+.2f")}</td><td>{_fmt(r.delta_ssim, "+.4f")}</td></tr>')
    notes = sorted({f"{r.model} on {r.dataset} {r.setting} {r.split}: {r.paper_note}" for r in table.itertuples()
                    if getattr(r, "paper_note", "") and isinstance(r.paper_note, str) and r.paper_note})
    note_html = "".join(f"<li>no paper value for {_e(n)}</li>" for n in notes)
    return (f'<table id="table2">{head}{"".join(rows)}</table>'
            + (f'<details><summary class="meta">why some rows have no paper value</summary><ul class="meta">{note_html}</ul></details>'
               if note_html else ""))


def _costs(models: pd.DataFrame | None) -> str:
    if models is None or models.empty:
        return ""
    cols = [("model", None), ("setting", None), ("params", ",.0f"), ("GMACs", ".1f"), ("ms/frame", ".1f"),
            ("peak MiB", ".0f"), ("device", None)]
    head = "<tr>" + "".join(f'<th class="{"l" if f is None else ""}">{c}</th>' for c, f in cols) + "</tr>"
    rows = []
    for r in models.itertuples():
        macs = getattr(r, "macs_per_frame", None)
        timed = tables.timed(r)  # outputs made elsewhere: blank, and why in the device column
        values = [r.model, r.setting, getattr(r, "params", None), None if macs is None else macs / 1e9,
                  r.ms_per_frame if timed else None, r.peak_mem_mb if timed else None,
                  f"{r.device} {r.precision}" if timed else tables.NOT_TIMED]
        rows.append("<tr>" + "".join(f'<td class="l">{_e(v)}</td>' if f is None else f"<td>{_fmt(v, f)}</td>"
                                     for v, (_, f) in zip(values, cols)) + "</tr>")
    return f'<h3>Cost per output frame</h3><table id="costs">{head}{"".join(rows)}</table>'


REFERENCE = "bicubic"  # the per-clip charts show every other model's difference to it, where it was benched


def _clip_bars(clips: pd.DataFrame) -> str:
    """Per setting and metric, one bar chart over clips: each model minus bicubic on that clip where bicubic
    was benched (a bar's length is the gain; 0.03 dB looks like 0.03 dB), else the values themselves from 0."""
    out = []
    for (dataset, setting, split), group in clips.groupby(["dataset", "setting", "split"], sort=True):
        names = sorted(group["clip"].unique())
        for m in _shown_metrics(group):
            series = {}
            for model, g in group.groupby("model", sort=True):
                by = g.set_index("clip")[m.column]
                series[model] = [float(by.get(c, float("nan"))) for c in names]
            where = f"{dataset} {setting} {split}"
            if REFERENCE in series and len(series) > 1:
                ref = series.pop(REFERENCE)
                series = {model: [v - r for v, r in zip(vs, ref)] for model, vs in series.items()}
                better = "above" if m.higher_is_better else "below"
                out.append(svg_bars(names, series, f"{where}: {m.label} minus bicubic's, per clip",
                                    f"{m.label} − bicubic", "+" + m.fmt, note=f"{better} 0: better than bicubic"))
            else:
                out.append(svg_bars(names, series, f"{where}: {m.label} per clip", m.label, m.fmt))
    return "".join(out)


def _frame_curves(frames: pd.DataFrame, max_clips: int) -> str:
    out = []
    for (dataset, setting, split), group in frames.groupby(["dataset", "setting", "split"], sort=True):
        shown = _shown_metrics(group)
        for clip in sorted(group["clip"].unique())[:max_clips]:
            rows = group[group["clip"] == clip]
            out.append(f"<h3>{_e(dataset)} {_e(setting)} {_e(split)}, clip {_e(clip)}</h3>")
            for m in shown:
                series = {model: (g["frame"].tolist(), g[m.column].astype(float).tolist())
                          for model, g in rows.sort_values("frame").groupby("model", sort=True)}
                out.append(svg_lines(series, f"{m.label} per frame", m.label))
    return "".join(out)


def _crops(results: Path, frames: pd.DataFrame) -> str:
    from benchmarks.figures import detailed_crop, read_runs, run_dataset

    out = []
    for _, run in sorted(read_runs(results).items()):
        saved_root = results / "frames" / run["setting"]
        if not saved_root.is_dir():
            continue
        try:
            ds = run_dataset(run)
        except UvssmError:
            out.append(f'<p class="meta">{_e(run["data"])}: the dataset is not there, so no crops for {_e(run["setting"])}</p>')
            continue
        clips = {c.name: c for c in ds.clips}
        models = sorted(p.name for p in saved_root.iterdir() if p.is_dir())
        shots = sorted({(p.parent.name, p.name) for m in models for p in (saved_root / m).glob("*/*.png")})
        for clip_name, png in shots:
            if clip_name not in clips:
                continue
            clip, index = clips[clip_name], int(png[:-4])
            gt, lq = clip.hq(index), clip.lq(index)
            size = max(32, min(gt.shape[0], gt.shape[1]) // 3)
            top, left = detailed_crop(gt, size)
            s = clip.scale
            crop = lambda img: img[top:top + size, left:left + size]  # noqa: E731
            lq_crop = np.kron(lq[top // s:(top + size) // s, left // s:(left + size) // s], np.ones((s, s, 1), np.uint8))
            options = [("LQ (nearest)", _png(lq_crop))]
            for m in models:
                path = saved_root / m / clip_name / png
                if path.is_file():
                    hit = frames[(frames["model"] == m) & (frames["clip"] == clip_name) & (frames["frame"] == index)
                                 & (frames["setting"] == run["setting"])]
                    score = f" ({hit['psnr'].iloc[0]:.2f} dB)" if len(hit) else ""
                    options.append((f"{m}{score}", _png(crop(read_rgb(path)))))
            first = options[-1]
            select = "".join(f'<option value="{uri}"{" selected" if i == len(options) - 1 else ""}>{_e(label)}</option>'
                             for i, (label, uri) in enumerate(options))
            out.append(f'<div class="cmp"><h3>{_e(run["setting"])} clip {_e(clip_name)} frame {index}</h3>'
                       f'<div class="compare"><img class="base" alt="GT" src="{_png(crop(gt))}">'
                       f'<img class="top" alt="restored" src="{first[1]}">'
                       f'<span class="tag tag-left">{_e(first[0])}</span>'
                       '<span class="tag tag-right">GT</span></div><br>'
                       f'<input type="range" min="0" max="100" value="50" aria-label="before/after">'
                       f'<br><label>left: <span class="left-name">{_e(first[0])}</span> <select>{select}</select>'
                       f' · right: GT</label></div>')
    return "".join(out)


def write_html(results: str | Path, figures: list[Path], max_curve_clips: int = 12) -> Path:
    """Write RESULTS/report.html from the bench tables (and `figures`, the PNGs `uvssm report` wrote)."""
    results = Path(results)
    table_path = results / "table2.parquet"
    if not table_path.is_file():
        raise UvssmError(f"{table_path}: not found; run `uvssm bench ... --out {results}` first")
    table = pd.read_parquet(table_path)
    models = pd.read_parquet(results / "models.parquet") if (results / "models.parquet").is_file() else None
    frames = pd.read_parquet(results / "frames.parquet")
    clips = pd.read_parquet(results / "clips.parquet")
    runs = json.loads((results / "runs.json").read_text()) if (results / "runs.json").is_file() else {}
    data = "; ".join(f"{k} ({v.get('data')})" for k, v in sorted(runs.items()))
    figs = "".join(f'<figure><img alt="{_e(p.name)}" src="{_file_uri(p)}"><figcaption class="meta">{_e(p.name)}'
                   "</figcaption></figure>" for p in figures if not p.name.startswith("crops_"))
    sections = [
        f"<h1>uvssm bench: {_e(results.name)}</h1>",
        f'<p class="meta">uvssm {_e(__version__)}; {len(table)} rows; data: {_e(data)}</p>',
        "<h2>Table 2 (beside the paper)</h2>", _table2(table), _costs(models),
        "<h2>Per clip</h2>", _clip_bars(clips),
        f"<h2>Per frame</h2><p class='meta'>the first {max_curve_clips} clips of each setting</p>",
        _frame_curves(frames, max_curve_clips),
        ("<h2>Crops: restored against GT</h2><p class='meta'>left of the split: the output chosen below (named at "
         "the top left); right of it: GT (top right). Drag the slider to move the split.</p>"),
        _crops(results, frames) or "<p class='meta'>no saved frames (bench --save-frames)</p>",
        "<h2>Figures</h2>", figs or "<p class='meta'>none</p>",
    ]
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>uvssm report</title>"
            f"<style>{CSS}</style></head><body>{''.join(sections)}<script>{SCRIPT}</script></body></html>\n")
    return atomic.write_text(results / PAGE, page)
