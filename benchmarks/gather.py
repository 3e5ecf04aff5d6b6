"""The result tables of a benchmark folder, gathered from every finished part under `OUT/.parts`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks import tables
from uvssm.base import atomic
from uvssm.base.errors import UvssmError


@dataclass(frozen=True)
class Tables:
    """What `gather` wrote: Table 2 (the paper beside it), the cost per model, and the paths of the four
    parquet files (frames, clips, table2, models)."""

    table2: pd.DataFrame
    models: pd.DataFrame
    paths: dict[str, Path]


def gather(out: str | Path) -> Tables:
    """Collect every finished part under OUT/.parts into the result tables (atomic writes)."""
    out = Path(out)
    files = sorted((out / ".parts").rglob("*.parquet"))
    if not files:
        raise UvssmError(f"{out}: no benchmark results yet (run `uvssm bench ... --out {out}`)")
    frames = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frames = frames.sort_values(["dataset", "setting", "split", "model", "clip", "frame"], kind="stable")
    frames = frames.reset_index(drop=True)
    clips = tables.per_clip(frames)
    table = tables.with_paper(tables.table2(frames))
    info = [json.loads(p.read_text()) | {"dataset": p.parts[-5], "setting": p.parts[-4], "split": p.parts[-3]}
            for p in sorted((out / ".parts").rglob("model.json"))]
    models = tables.model_stats(frames, pd.DataFrame(info))
    paths = {"frames": out / "frames.parquet", "clips": out / "clips.parquet", "table2": out / "table2.parquet",
             "models": out / "models.parquet"}
    for key, df in (("frames", frames), ("clips", clips), ("table2", table), ("models", models)):
        atomic.write_parquet(paths[key], df)
    return Tables(table, models, paths)

