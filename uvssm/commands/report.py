"""`uvssm report`: Table 2 and the figures of a `uvssm bench` results folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--html", "html", is_flag=True,
              help="Also write RESULTS/report.html: one self-contained page (no network) with Table 2, per-clip bars, "
                   "per-frame curves, crops with a before/after slider and the figures.")
def report(results: Path, html: bool) -> None:
    """Print Table 2 (beside the paper) and write the figures (PNG) into RESULTS.

    Example: uvssm report results/ --html
    """
    import pandas as pd

    from benchmarks.figures import write_figures
    from uvssm.display import print_dfm_qp, print_table2, wide_console
    from uvssm.base.errors import UvssmError

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
    if html:
        from benchmarks.html_report import write_html

        console.print(f"page: {write_html(results, written)}")
