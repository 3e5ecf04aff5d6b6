"""Figures from a `uvssm bench` results folder (matplotlib, PNG next to the parquet files).

- `crops_<setting>_<clip>_<frame>.png`: LQ, every model and GT side by side on the most detailed
  region of a saved frame, each titled with that frame's PSNR (like the paper's Figures 4 and 5).
- `dfm_<setting>_<clip>_<frame>.png`: the degradation feature map of a DFM model next to every
  model's absolute error on the Y channel (like Figures 2 and 9).
- `dfm_qp_<setting>_<clip>_<frame>.png`: the DFM beside the LQ bitstream's QP map and the DFM
  model's error, all per macroblock (where the clip has QP maps: `synth-reds` and `build` write
  them); per clip, the rank correlations between the three go to `dfm_qp.parquet`
  (`benchmarks.dfm_qp`).
- `psnr_vs_qp_<dataset>_x<scale>.png`: PSNR against QP per model, when several QPs were benched
  (like Figure 8).

The frames come from `OUT/frames/<setting>/<model>/<clip>/` (written by `bench --save-frames`) and
the LQ/GT frames from the dataset recorded in `OUT/runs.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import dfm_qp
from uvssm.base import atomic, qpmaps
from uvssm.base.datasets import open_dataset
from uvssm.base.errors import UvssmError
from uvssm.base.frames import read_rgb

DFM_QP_TABLE = "dfm_qp.parquet"


def detailed_crop(gt: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the size×size window with the most gradient energy in `gt` (on a grid)."""
    y = dfm_qp.luma(gt)
    energy = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1, :]
    h, w = energy.shape
    step = max(size // 4, 1)
    best, where = -1.0, (0, 0)
    for top in range(0, max(h - size, 0) + 1, step):
        for left in range(0, max(w - size, 0) + 1, step):
            e = float(energy[top:top + size, left:left + size].sum())
            if e > best:
                best, where = e, (top, left)
    return where


def read_runs(results: Path) -> dict:
    path = results / "runs.json"
    if not path.is_file():
        raise UvssmError(f"{path}: not found; is {results} a `uvssm bench --out` folder?")
    return json.loads(path.read_text())


def run_dataset(run: dict):
    """The dataset a bench run read, opened as bench opened it: `platform_folder` is the --platform it was
    given (None when --data was the platform's folder itself, whose name is then the run's platform)."""
    split = "val" if run["split"] == "reds4" else run["split"]
    if "platform_folder" in run:
        folder = run["platform_folder"]
    else:  # runs.json of earlier versions: the platform is a subfolder only if --platform named it
        folder = run["platform"] if run["platform"] and (Path(run["data"]) / run["platform"]).is_dir() else None
    return open_dataset(run["data"], split=split, scale=run["scale"], qp=run["qp"], platform=folder,
                        layout=run["layout"], cache_mb=0, check_frames=False)


def _dfm_qp_figure(plt, b: "dfm_qp.BlockMaps", model: str, run: dict, clip: str, index: int, results: Path) -> Path:
    """DFM, QP map and error of one frame side by side, per macroblock."""
    panels = [(b.dfm, f"DFM ({model}), mean per macroblock", "magma"), (b.qp, "QP per macroblock (bitstream)", "viridis"),
              (b.error, f"|error| Y, {model}, mean per macroblock", "magma")]
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 2.8))
    for ax, (values, title, cmap) in zip(axes, panels):
        im = ax.imshow(values, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.03)
    fig.suptitle(f"{run['dataset']} {run['setting']} clip {clip} frame {index}", fontsize=9)
    path = results / f"dfm_qp_{run['setting']}_{clip}_{index:08d}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_figures(results: str | Path) -> list[Path]:
    """Write every figure the results allow; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = Path(results)
    frames_path = results / "frames.parquet"
    if not frames_path.is_file():
        raise UvssmError(f"{frames_path}: not found; run `uvssm bench ... --out {results}` first")
    rows = pd.read_parquet(frames_path)
    written: list[Path] = []
    correlations: list[dict] = []
    for key, run in sorted(read_runs(results).items()):
        saved_root = results / "frames" / run["setting"]
        if not saved_root.is_dir():
            continue
        try:
            ds = run_dataset(run)
        except UvssmError:
            continue  # the dataset moved: its figures cannot be drawn, the tables still stand
        clips = {c.name: c for c in ds.clips}
        models = sorted(p.name for p in saved_root.iterdir() if p.is_dir())
        mine = rows[(rows["dataset"] == run["dataset"]) & (rows["setting"] == run["setting"])
                    & (rows["split"] == run["split"])]
        order = ["bicubic"] + [m for m in models if m != "bicubic"]
        models = [m for m in order if m in models]
        shots = sorted({(p.parent.name, p.name) for m in models for p in (saved_root / m).glob("*/*.png")})
        blocks: dict[tuple[str, str], list[dfm_qp.BlockMaps]] = {}  # (model, clip) -> frames
        qp_maps: dict[str, qpmaps.QPMaps | None] = {}  # clip -> its LQ bitstream's maps, read once
        for clip_name, png in shots:
            if clip_name not in clips:
                continue
            clip, index = clips[clip_name], int(png[:-4])
            have = [m for m in models if (saved_root / m / clip_name / png).is_file()]
            outs = {m: read_rgb(saved_root / m / clip_name / png) for m in have}
            gt, lq = clip.hq(index), clip.lq(index)
            s = clip.scale
            size = max(32, min(gt.shape[0], gt.shape[1]) // 3)
            top, left = detailed_crop(gt, size)

            def crop(img, f=1):
                return img[top // f:(top + size) // f, left // f:(left + size) // f]

            def score(m):
                hit = mine[(mine["model"] == m) & (mine["clip"] == clip_name) & (mine["frame"] == index)]
                return f"{hit['psnr'].iloc[0]:.2f} dB" if len(hit) else ""

            panels = [("LQ", crop(lq, s))] + [(f"{m}\n{score(m)}", crop(outs[m])) for m in have] + [("GT", crop(gt))]
            fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.9))
            for ax, (title, img) in zip(np.atleast_1d(axes), panels):
                ax.imshow(img, interpolation="nearest")
                ax.set_title(title, fontsize=8)
                ax.axis("off")
            fig.suptitle(f"{run['dataset']} {run['setting']} clip {clip_name} frame {index}", fontsize=9)
            path = results / f"crops_{run['setting']}_{clip_name}_{index:08d}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(path)

            dfms = [m for m in have if (saved_root / m / clip_name / f"{png[:-4]}.dfm.npy").is_file()]
            if dfms:
                dfm = np.load(saved_root / dfms[0] / clip_name / f"{png[:-4]}.dfm.npy").astype(np.float32)
                errors = [(m, np.abs(dfm_qp.luma(outs[m]) - dfm_qp.luma(gt))) for m in have]
                vmax = max(float(np.percentile(e, 99.5)) for _, e in errors) or 1.0
                fig, axes = plt.subplots(1, 1 + len(errors), figsize=(3.2 * (1 + len(errors)), 2.6))
                axes = np.atleast_1d(axes)
                im = axes[0].imshow(np.kron(dfm, np.ones((s, s), np.float32)), cmap="magma", vmin=0, vmax=1)
                axes[0].set_title(f"DFM ({dfms[0]})", fontsize=8)
                fig.colorbar(im, ax=axes[0], fraction=0.03)
                for ax, (m, e) in zip(axes[1:], errors):
                    im = ax.imshow(e, cmap="magma", vmin=0, vmax=vmax)
                    ax.set_title(f"|error| Y, {m} (mean {e.mean():.2f})", fontsize=8)
                fig.colorbar(im, ax=axes[-1], fraction=0.03)
                for ax in axes:
                    ax.axis("off")
                path = results / f"dfm_{run['setting']}_{clip_name}_{index:08d}.png"
                fig.savefig(path, dpi=110, bbox_inches="tight")
                plt.close(fig)
                written.append(path)
                if clip_name not in qp_maps:
                    qp_file = qpmaps.maps_for_frames(clip.lq_dir)
                    qp_maps[clip_name] = qpmaps.load(qp_file) if qp_file else None
                maps = qp_maps[clip_name]
                if maps is not None and maps.crop is not None and index < len(maps):
                    b = dfm_qp.block_maps(dfm, outs[dfms[0]], gt, maps, index, s)
                    blocks.setdefault((dfms[0], clip_name), []).append(b)
                    written.append(_dfm_qp_figure(plt, b, dfms[0], run, clip_name, index, results))
        for (model, clip_name), frames in sorted(blocks.items()):
            correlations.append({"dataset": run["dataset"], "setting": run["setting"], "split": run["split"],
                                 "model": model, "clip": clip_name, **dfm_qp.rank_correlations(frames)})
    if correlations:
        atomic.write_parquet(results / DFM_QP_TABLE, pd.DataFrame(correlations))

    table = pd.read_parquet(results / "table2.parquet")
    with_qp = table[table["qp"].notna()]
    for (dataset, scale, split), group in with_qp.groupby(["dataset", "scale", "split"]):
        if group["qp"].nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for model, g in group.groupby("model"):
            g = g.sort_values("qp")
            ax.plot(g["qp"], g["psnr"], marker="o", label=model)
        ax.set_xlabel("QP")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_title(f"{dataset} x{scale} {split}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = results / f"psnr_vs_qp_{dataset}_x{int(scale)}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
