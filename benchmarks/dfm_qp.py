"""What VOTES's degradation feature map sees, against what the bitstream says.

For a saved frame of a DFM model (`bench --save-frames`: the restored PNG and its `.dfm.npy`), and
the LQ clip's QP maps (`uvssm.base.qpmaps`, written by `synth-reds` and `build`), three maps are brought
to the coded frame's 16×16 macroblocks of the LQ video:

- DFM: VOTES's estimate, mean over each macroblock's LQ pixels;
- QP: the quantiser the encoder used for that macroblock;
- error: |restored Y − GT Y| (BT.601 luma of the model's output at HQ size), mean over the
  macroblock's `scale`² HQ pixels per LQ pixel.

Per clip, over the macroblocks of all its saved frames, the Spearman rank correlations
ρ(DFM, QP), ρ(DFM, error) and ρ(QP, error). A fixed-QP encode (the REDS recipe, no adaptive
quantisation) gives every macroblock of a frame the same QP, so ρ with QP only sees the differences
between frame types; a platform-like encode (CRF with adaptive quantisation) varies it per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvssm.base import qpmaps


@dataclass(frozen=True)
class BlockMaps:
    """One frame's maps on the macroblock grid (rows, cols), NaN where the LQ frame does not reach."""

    dfm: np.ndarray
    qp: np.ndarray
    error: np.ndarray


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of 0..255 RGB (the metric's Y, unrounded), float64."""
    x = rgb.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def block_maps(dfm: np.ndarray, restored: np.ndarray, gt: np.ndarray, maps: qpmaps.QPMaps, index: int,
               scale: int) -> BlockMaps:
    """The DFM (h, w), the restored and GT frames (s·h, s·w, 3) uint8 and frame `index`'s QP map,
    on the macroblock grid."""
    error = np.abs(luma(restored) - luma(gt))
    h, w = dfm.shape
    error_lq = error[:h * scale, :w * scale].reshape(h, scale, w, scale).mean(axis=(1, 3))
    return BlockMaps(qpmaps.to_macroblocks(dfm.astype(np.float64), maps),
                     np.where(np.isfinite(qpmaps.to_macroblocks(np.zeros((h, w)), maps)),
                              maps.qp[index].astype(np.float64), np.nan),
                     qpmaps.to_macroblocks(error_lq, maps))


def rank_correlations(frames: list[BlockMaps]) -> dict:
    """Spearman ρ between the three maps over every macroblock of `frames` that all three cover.
    A ρ is NaN where one map is constant (e.g. a fixed-QP frame's QP)."""
    from scipy.stats import spearmanr

    dfm, qp, err = (np.concatenate([getattr(f, k).ravel() for f in frames]) for k in ("dfm", "qp", "error"))
    ok = np.isfinite(dfm) & np.isfinite(qp) & np.isfinite(err)
    dfm, qp, err = dfm[ok], qp[ok], err[ok]

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return float("nan")
        return float(spearmanr(a, b).statistic)

    return {"rho_dfm_qp": rho(dfm, qp), "rho_dfm_error": rho(dfm, err), "rho_qp_error": rho(qp, err),
            "macroblocks": int(ok.sum()), "frames": len(frames), "qp_min": float(qp.min()) if len(qp) else np.nan,
            "qp_max": float(qp.max()) if len(qp) else np.nan}
