"""`uvssm convert`: load weights trained elsewhere (mmagic's EDVR and BasicVSR, BasicSR's and the official VOTES
code's network files, COMISR's TensorFlow release) as uvssm checkpoints; write uvssm weights out for BasicSR,
mmagic or the official VOTES code (--to); write a uvssm training run out as BasicSR's experiment folder
(basicsr-state)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

FORMATS = ("mmagic", "basicsr", "comisr-tf", "basicsr-state")
TARGETS = ("basicsr", "mmagic", "votes-official")


@click.command("convert")
@click.argument("fmt", metavar="[FORMAT]", required=False)
@click.argument("src", metavar="SRC", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="The file to write (basicsr-state: the experiment folder).")
@click.option("--to", "target", type=click.Choice(TARGETS),
              help="Write the uvssm checkpoint SRC out for BasicSR, mmagic or the official VOTES code (no FORMAT).")
@click.option("--model", help="Registered model the weights are for (default: the one they fit, e.g. edvr-m; "
                              "--to: the one SRC records).")
@click.option("--scale", type=int, help="Scale of the weights (default: the one they fit, or SRC records).")
@click.option("--unsafe-pickle", is_flag=True,
              help="Load with torch.load(weights_only=False): only for a file you trust (some mmagic files need it).")
def convert(fmt: str | None, src: Path | None, out: Path, target: str | None, model: str | None, scale: int | None,
            unsafe_pickle: bool) -> None:
    """Convert a checkpoint trained elsewhere into uvssm's layout (BasicSR's layer names), checked by a
    strict load into the registered model; bench --weights and restore then take it. Weights that fit no
    registered model are refused, naming the nearest model and its missing, unexpected and mis-shaped keys.

    FORMAT mmagic: a .pth of mmagic's EDVR (TSA or not) or BasicVSR. FORMAT basicsr: BasicSR's or the official
    VOTES code's network file ({'params': ...}, params_ema taken where present). FORMAT comisr-tf: COMISR's
    released TensorFlow checkpoint (PREFIX, PREFIX.index or its folder), read without TensorFlow; the EMA
    weights are taken.

    --to TARGET goes the other way, with SRC alone (no FORMAT): a uvssm checkpoint written as BasicSR
    (save_network's {'params'}: EDVR, EDVR without TSA, BasicVSR, x4), mmagic ({'meta', 'state_dict'} of
    generator.*: the same models) or the official VOTES code ({'params'}: VOTES, and its EDVR at x2 or x4)
    saves it; the line printed gives the network options to build it there.

    FORMAT basicsr-state: SRC is a checkpoint of `uvssm train` (with its optimiser), written to the folder OUT
    as BasicSR's experiment (models/net_g_N.pth, training_states/N.state) that the official VOTES train.py
    resumes with `path: resume_state: OUT/training_states/N.state`. The way back is
    `uvssm train CONFIG --resume-from EXPERIMENT/training_states/N.state`.

    \b
    Example:
      uvssm convert mmagic edvrm_wotsa_x4_8x4_600k_reds.pth -o weights/edvr-m-wo-tsa.pt
      uvssm convert basicsr EDVR_M_woTSA_x4_SR_REDS.pth -o weights/edvr-m-wo-tsa.pt
      uvssm convert comisr-tf comisr_ckpt/model.ckpt -o weights/comisr.pt
      uvssm convert --to mmagic runs/basicvsr/checkpoints/latest.pt -o basicvsr_uvssm.pth
      uvssm convert --to votes-official runs/votes/checkpoints/latest.pt -o VOTES_L_x2.pth
      uvssm convert basicsr-state runs/votes/checkpoints/latest.pt -o experiments/VOTES_L_x2_SR_REDS_QP28
    """
    from uvssm.pipelines.convert import convert as run_convert
    from uvssm.pipelines.convert import export_weights

    console = Console(highlight=False, soft_wrap=True)
    if target is not None:
        if src is not None:
            raise click.UsageError(f"--to {target} takes SRC alone (a uvssm checkpoint), not FORMAT {fmt}")
        if fmt is None:
            raise click.UsageError("missing argument SRC (the uvssm checkpoint to write out)")
        done = export_weights(target, Path(fmt), out, model, scale)
        options = ", ".join(f"{k}={v!r}" for k, v in done["options"].items())
        console.print(f"{fmt} ({done['model']} x{done['scale']}): {done['tensors']} tensors ({done['copy']}) → "
                      f"{done['out']} for {target}; network: {options}")
        return
    if fmt is None or src is None:
        raise click.UsageError("expected FORMAT and SRC (or --to TARGET and SRC)")
    if fmt not in FORMATS:
        raise click.BadParameter(f"{fmt!r} is not one of {', '.join(map(repr, FORMATS))}", param_hint="'[FORMAT]'")
    done = run_convert(fmt, src, out, model, scale, unsafe_pickle)
    console.print(f"{src} ({fmt}, {done['copy']}): {done['tensors']} tensors → {done['out']} "
                  f"as {done['model']} x{done['scale']}")
