"""`uvssm report`: Table 2 and the figures of a `uvssm bench` results folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", type=click.Path(path_type=Path))
def report(results: Path) -> None:
    """Print Table 2 (beside the paper) and write the figures (PNG) into RESULTS.

    Example: uvssm report results/
    """
    import pandas as pd

    from benchmarks.figures import write_figures
    from uvssm.commands.bench import print_table2, wide_console
    from uvssm.errors import UvssmError

    console = wide_console()
    table_path, models_path = results / "table2.parquet", results / "models.parquet"
    if not table_path.is_file():
        raise UvssmError(f"{table_path}: not found; run `uvssm bench ... --out {results}` first")
    print_table2(console, pd.read_parquet(table_path),
                 pd.read_parquet(models_path) if models_path.is_file() else None)
    written = write_figures(results)
    print_dfm_qp(console, results)
    for path in written:
        console.print(f"figure: {path}")
    if not written:
        console.print("no figures: no saved frames (bench --save-frames) and fewer than two QPs")


def print_dfm_qp(console, results: Path) -> None:
    """Per clip: how VOTES's DFM ranks macroblocks against the bitstream's QP and the restored error."""
    import math

    import pandas as pd

    from benchmarks.figures import DFM_QP_TABLE

    path = results / DFM_QP_TABLE
    if not path.is_file():
        return
    console.print("What the DFM sees (Spearman ρ over macroblocks of the saved frames; "
                  "n/a where a map is constant, e.g. a fixed-QP frame's QP):")
    def rho(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:+.2f}"

    for r in pd.read_parquet(path).itertuples():
        qps = f"QP {r.qp_min:.0f}" + ("" if r.qp_min == r.qp_max else f"-{r.qp_max:.0f}")
        console.print(f"  {r.dataset} {r.setting} clip {r.clip} ({r.model}, {r.frames} frames, {r.macroblocks} "
                      f"macroblocks, {qps}): ρ(DFM, QP) {rho(r.rho_dfm_qp)}, ρ(DFM, error) {rho(r.rho_dfm_error)}, "
                      f"ρ(QP, error) {rho(r.rho_qp_error)}")
