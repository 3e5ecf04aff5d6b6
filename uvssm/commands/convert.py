"""`uvssm convert`: load weights trained elsewhere (mmagic's EDVR and BasicVSR, COMISR's TensorFlow release) as
uvssm checkpoints; write a uvssm training run out as BasicSR's experiment folder (basicsr-state)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console


@click.command("convert")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["mmagic", "comisr-tf", "basicsr-state"]))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="The uvssm checkpoint to write (basicsr-state: the experiment folder).")
@click.option("--model", help="Registered model the weights are for (default: the one they fit, e.g. edvr-m).")
@click.option("--scale", type=int, help="Scale of the weights (default: the one they fit).")
@click.option("--unsafe-pickle", is_flag=True,
              help="Load with torch.load(weights_only=False): only for a file you trust (some mmagic files need it).")
def convert(fmt: str, src: Path, out: Path, model: str | None, scale: int | None, unsafe_pickle: bool) -> None:
    """Convert a checkpoint trained elsewhere into uvssm's layout (BasicSR's layer names), checked by a
    strict load into the registered model; bench --weights and restore then take it.

    FORMAT mmagic: a .pth of mmagic's EDVR or BasicVSR. FORMAT comisr-tf: COMISR's released TensorFlow
    checkpoint (PREFIX, PREFIX.index or its folder), read without TensorFlow; the EMA weights are taken.

    FORMAT basicsr-state goes the other way: SRC is a checkpoint of `uvssm train` (with its optimiser), written to
    the folder OUT as BasicSR's experiment (models/net_g_N.pth, training_states/N.state) that the official
    VOTES train.py resumes with `path: resume_state: OUT/training_states/N.state`. The way back is
    `uvssm train CONFIG --resume-from EXPERIMENT/training_states/N.state`.

    \b
    Example:
      uvssm convert mmagic edvrm_x4_8x4_600k_reds.pth -o weights/edvr-m.pt
      uvssm convert comisr-tf comisr_ckpt/model.ckpt -o weights/comisr.pt
      uvssm convert basicsr-state runs/votes/checkpoints/latest.pt -o experiments/VOTES_L_x2_SR_REDS_QP28
    """
    from uvssm.pipelines.convert import convert as run_convert

    done = run_convert(fmt, src, out, model, scale, unsafe_pickle)
    Console(highlight=False, soft_wrap=True).print(
        f"{src} ({fmt}, {done['copy']}): {done['tensors']} tensors → {done['out']} as {done['model']} x{done['scale']}")
