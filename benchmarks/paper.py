"""The VOTES paper's Table 2 (PSNR dB / SSIM on the Y channel), printed beside our results.

Copied by hand from the paper's text (Luo et al., ACM MM 2022, Table 2).
The UVSSM row is ×2 on the WeChat test split (the only platform with paired ×2 data in the paper's
comparison). Values belong to the paper's models trained on the full datasets, so they only apply to
our rows for the same dataset, split (test), scale and QP, and to full-size models.
"""

from __future__ import annotations

import functools

COLUMNS = ("STDF+RSDN", "STDF+EDVR", "STDF+VSRTGA", "STDF+BasicVSR", "COMISR", "VOTES")

_ROWS = {
    ("REDS", 2, 28): ["31.4/0.8487", "31.54/0.8511", "30.29/0.8247", "31.45/0.8494", "31.11/0.8465", "32.15/0.8644"],
    ("REDS", 2, 33): ["29.55/0.7926", "29.59/0.7934", "29.01/0.7775", "29.57/0.7930", "29.39/0.7912", "29.95/0.8043"],
    ("REDS", 4, 28): ["27.66/0.7287", "27.79/0.7326", "27.68/0.7291", "27.8/0.7329", "27.10/0.7170", "28.08/0.7441"],
    ("REDS", 4, 33): ["26.41/0.6842", "26.44/0.6861", "26.40/0.6841", "26.47/0.6863", "26.08/0.6777", "26.61/0.6942"],
    ("UVSSM", 2, None): ["31.40/0.8781", "31.67/0.8790", "31.23/0.8681", "31.59/0.8783", "31.35/0.8755", "33.01/0.8945"],
}

# Our model names → the paper's column. Only full-size models at their official settings.
MODEL_COLUMN = {
    "votes": "VOTES",
    "stdf+edvr-l": "STDF+EDVR", "stdf+edvr-m": "STDF+EDVR",
    "stdf+rsdn": "STDF+RSDN", "stdf+tga": "STDF+VSRTGA", "stdf+basicvsr": "STDF+BasicVSR",
    "comisr": "COMISR",
}


def table2() -> dict[tuple[str, int, int | None], dict[str, tuple[float, float]]]:
    """{(dataset, scale, qp): {column: (psnr, ssim)}}; qp is None for UVSSM."""
    out = {}
    for key, cells in _ROWS.items():
        out[key] = {col: tuple(float(v) for v in cell.split("/")) for col, cell in zip(COLUMNS, cells)}
    return out


@functools.cache
def paper_clips(dataset: str, platform: str | None) -> frozenset[str] | None:
    """The clips of the paper's test split for a dataset: REDS 240..269 (REDSOfficial, as the VOTES
    README evaluates), UVSSM WeChat the catalogue's test ids (meta_info_UVSSMWeChat_test2.txt)."""
    if dataset == "REDS":
        return frozenset(f"{i:03d}" for i in range(240, 270))
    if dataset == "UVSSM" and (platform or "").lower() == "wechat":
        from uvssm.base.catalog import load_catalog

        cat = load_catalog()
        test = cat[(cat["dataset"] == "UVSSM") & (cat["platform"] == "wechat") & (cat["split"] == "test")]
        return frozenset(test["clip"])
    return None


def reference(dataset: str, split: str, scale: int, qp: int | None, platform: str | None,
              model: str) -> tuple[float, float] | None:
    """The paper's (PSNR, SSIM) for this result row, or None where the paper has no comparable number."""
    column = MODEL_COLUMN.get(model)
    if column is None or split != "test":
        return None
    if dataset == "UVSSM":
        if (platform or "").lower() != "wechat":
            return None
        qp = None
    row = table2().get((dataset, scale, qp))
    return row.get(column) if row else None
