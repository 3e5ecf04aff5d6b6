"""Tables that several commands print: Table 2 with the paper beside it, the cost table, what the DFM sees.

Commands own the screen; pipelines return dataframes and this module turns them into rich tables.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

PROGRESS_EVERY_ENV = "UVSSM_PROGRESS_EVERY"  # seconds between plain progress lines in a log (default 30)


def _num(value, fmt: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def wide_console() -> Console:
    """A console whose tables are not squeezed to 80 columns when output goes to a file or pipe."""
    console = Console(highlight=False, soft_wrap=True)
    return console if console.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


class LineProgress(Progress):
    """rich's Progress for a log file (a cluster job, a pipe), where a live bar prints only its last state:
    one plain line per task that moved, at most every `every` seconds, and a last one when it closes.
    The line holds the count, the elapsed time and the task's fields (a training run's loss and lr)."""

    def __init__(self, *columns, console: Console, every: float) -> None:
        super().__init__(*columns, console=console, disable=True)
        self.every = every
        self._last_print = time.monotonic()
        self._printed: dict[TaskID, tuple] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_print()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print()

    def stop(self) -> None:
        self._print_lines()
        super().stop()

    def _maybe_print(self) -> None:
        if time.monotonic() - self._last_print >= self.every:
            self._print_lines()

    def _print_lines(self) -> None:
        self._last_print = time.monotonic()
        for task in self.tasks:
            state = (task.description, task.completed, task.total, tuple(task.fields.items()))
            if self._printed.get(task.id) == state:
                continue
            self._printed[task.id] = state
            self.console.print(progress_line(task.description, task.completed, task.total, task.elapsed or 0.0,
                                             task.fields), highlight=False, soft_wrap=True)


def progress_line(description: str, completed: float, total: float | None, elapsed: float, fields: dict) -> str:
    """"training: 120/1,000 (12%), 0:01:05 elapsed, loss 0.0123, lr 1.00e-04" (fields that are "" or "-" left out)."""
    count = f"{completed:,.0f}" + (f"/{total:,.0f} ({100 * completed / total:.0f}%)" if total else "")
    clock = time.strftime("%H:%M:%S", time.gmtime(elapsed))
    extra = "".join(f", {k} {v}" for k, v in fields.items() if v not in ("", "-", None))
    return f"{description}: {count}, {clock} elapsed{extra}"


def progress_display(console: Console, *columns) -> Progress:
    """Live bars on a terminal; elsewhere (a log) plain lines every $UVSSM_PROGRESS_EVERY seconds (default 30)."""
    if console.is_terminal:
        return Progress(*columns, console=console)
    return LineProgress(*columns, console=console, every=float(os.environ.get(PROGRESS_EVERY_ENV, "30")))


VAL_MEASURE = {"bicubic": "PSNR-Y", "lq": "PSNR-RGB of z_t", "unwarped": "PSNR-RGB of the warped frame",
               "unrestored": "PSNR-Y"}
DSM_AIM = ("stage 1 trains the DSM to estimate z_t (the HQ frame at LQ size) from the LQ frames. VOTES uses only where "
           "its estimate differs from the LQ frame (the DFM), so the measure that shows it working is the DFM's "
           "agreement with the true difference |x_t - z_t| (a correlation: 0 none, 1 exact), not the estimate's PSNR, "
           "which can stay under the LQ frame's own: the LQ frame is already close to z_t")


def val_lines(event, first: bool) -> list[str]:
    """A training validation (a TrainVal event) in words; `first`: the run's first, which for the DSM (stage 1)
    also says what it is trained to do and which number shows it."""
    if event.baseline == "lq":
        corr = event.row.get("dfm_corr", float("nan"))
        line = (f"iter {event.iteration}: val DSM: its DFM's agreement with the true degradation {corr:.2f}; "
                f"its estimate of z_t {event.psnr:.2f} dB (the LQ frame itself {event.baseline_psnr:.2f} dB), "
                f"{event.clips} clips")
        return [DSM_AIM, line] if first else [line]
    return [f"iter {event.iteration}: val {VAL_MEASURE[event.baseline]} {event.psnr:.2f} dB "
            f"({event.baseline} {event.baseline_psnr:.2f} dB, {event.clips} clips)"]


def print_table2(console: Console, table, models=None) -> None:
    """Our Table 2 beside the paper's values (where the paper has a comparable number)."""
    from benchmarks.metrics import METRICS  # here, not at the top: `uvssm --help` imports no torch

    out = Table(title="Table 2 (PSNR dB / SSIM; paper values only for full-size models on the paper's own test split)",
                title_justify="left")
    # every registered metric the table has values of: PSNR and SSIM always, others (VMAF, ...) where computed
    shown = [m for m in METRICS.values() if m.required or (m.column in table and table[m.column].notna().any())]
    for col in ("dataset", "setting", "split", "model"):
        out.add_column(col, no_wrap=True)
    for col in ("clips", *(m.label for m in shown)):
        out.add_column(col, no_wrap=True, justify="right")
    out.add_column("paper", no_wrap=True)
    for col in ("ΔPSNR", "ΔSSIM"):
        out.add_column(col, no_wrap=True, justify="right")
    for r in table.itertuples():
        paper = "" if math.isnan(r.paper_psnr) else f"{r.paper_psnr:.2f}/{r.paper_ssim:.4f}"
        values = [_num(getattr(r, m.column), m.fmt) for m in shown]
        out.add_row(r.dataset, r.setting, r.split, r.model, str(r.clips), *values,
                    paper, _num(r.delta_psnr, "+.2f"), _num(r.delta_ssim, "+.4f"))
    console.print(out)
    from benchmarks.paper import MODEL_COLUMN as paper_models
    from benchmarks.tables import NOT_TIMED, timed

    notes = {f"{r.model} on {r.dataset} {r.setting} {r.split}: {r.paper_note}" for r in table.itertuples()
             if getattr(r, "paper_note", "") and r.model in paper_models}
    for note in sorted(notes):
        console.print(f"no paper value for {note}")
    if models is not None and not models.empty:
        cost = Table(title="cost per output frame", title_justify="left")
        for col in ("model", "setting", "params", "GMACs", "ms/frame", "peak MiB", "device"):
            cost.add_column(col, no_wrap=True, justify="left" if col in ("model", "setting", "device") else "right")
        for r in models.itertuples():
            macs = getattr(r, "macs_per_frame", None)
            params = getattr(r, "params", None)
            dcn = getattr(r, "dcn_backend", None)
            dcn = f", DCN {dcn}" if isinstance(dcn, str) else ""  # absent for models without one, and old results
            if not timed(r):  # outputs made elsewhere: their time and memory are reading files
                cost.add_row(r.model, r.setting, _num(params, ",.0f"), "", "", "", NOT_TIMED)
                continue
            cost.add_row(r.model, r.setting, _num(params, ",.0f"), _num(None if macs is None else macs / 1e9, ".1f"),
                         f"{r.ms_per_frame:.1f}", f"{r.peak_mem_mb:.0f}", f"{r.device} {r.precision}{dcn}")
        console.print(cost)


def print_dfm_qp(console, results: Path) -> None:
    """Per clip: how VOTES's DFM ranks macroblocks against the bitstream's QP and the restored error."""
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
