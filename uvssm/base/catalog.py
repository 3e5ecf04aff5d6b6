"""The catalogue of known clips (data_manifest.csv) and checks of user data against it."""

from __future__ import annotations

from importlib import resources

import pandas as pd


_INT_COLUMNS = ("n_frames", "hq_width", "hq_height", "lq_width", "lq_height")


def load_catalog() -> pd.DataFrame:
    """Every clip uvssm knows: REDS (270) and UVSSM WeChat (213), with split and expected sizes."""
    with resources.files("uvssm").joinpath("data_manifest.csv").open("r") as f:
        cat = pd.read_csv(f, dtype=str, keep_default_na=False)
    for col in _INT_COLUMNS:  # blank where unknown (REDS LQ size depends on --scale)
        cat[col] = pd.to_numeric(cat[col].replace("", None)).astype("Int64")
    return cat


def check_reds(found: dict[str, int], complete_release: bool) -> list[str]:
    """Compare found clips {clip: n_frames} with the REDS catalogue; return one note per finding.

    `complete_release` says whether the source claims to be the REDS release (then missing
    catalogue clips are worth reporting); a plain folder of clips is usually a subset.
    """
    cat = load_catalog()
    reds = cat[cat["dataset"] == "REDS"].set_index("clip")
    notes = []
    unexpected = sorted(set(found) - set(reds.index))
    if unexpected:
        notes.append(f"{len(unexpected)} clip(s) not in the REDS catalogue: {_abbrev(unexpected)}")
    missing = sorted(set(reds.index) - set(found))
    if complete_release and missing:
        by_split = {s: sum(reds.loc[c, "split"] == s for c in missing) for s in ("train", "val", "test")}
        notes.append(f"{len(missing)} of 270 REDS catalogue clips missing ({_abbrev(missing)}); "
                     f"missing per split: {by_split}")
    for clip in sorted(set(found) & set(reds.index)):
        expected = int(reds.loc[clip, "n_frames"])
        if found[clip] != expected:
            notes.append(f"clip {clip}: {found[clip]} frames, the REDS catalogue has {expected}")
    return notes


def _abbrev(items: list[str], keep: int = 8) -> str:
    return ", ".join(items[:keep]) + (f", ... (+{len(items) - keep})" if len(items) > keep else "")
