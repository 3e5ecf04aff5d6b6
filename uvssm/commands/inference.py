"""The options of how a model runs, shared by `uvssm bench` and `uvssm restore`
(`models.inference.InferenceOptions`): one decorator adds them, one function reads them back."""

from __future__ import annotations

import click

def inference_options(command):
    """Add --device, --bf16, --batch, --tile, --overlap, --chunk, --chunk-overlap, --dcn-backend, --channels-last
    and --compile to a click command (as keyword arguments of those names; `--compile` as `compile_`)."""
    options = [
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--bf16", is_flag=True, help="bfloat16 autocast for the models."),
        click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Windows per model call."),
        click.option("--tile", type=click.IntRange(0), default=0, show_default=True,
                     help="Run in tiles of this many LQ pixels (0: whole frames)."),
        click.option("--overlap", type=click.IntRange(0), default=32, show_default=True,
                     help="Context pixels around each tile."),
        click.option("--chunk", type=click.IntRange(1), default=100, show_default=True,
                     help="Recurrent models: frames per chunk (each with --chunk-overlap frames of context per side); "
                          "shortened on a GPU whose free memory would not hold it (recorded per row)."),
        click.option("--chunk-overlap", type=click.IntRange(0), default=8, show_default=True),
        click.option("--dcn-backend", type=click.Choice(["auto", "torch", "torchvision"]), default="auto",
                     show_default=True, help="Deformable convolutions: auto times both where torchvision imports and "
                                             "keeps the faster (recorded per row)."),
        click.option("--channels-last", is_flag=True, help="Convolution weights in channels-last memory format."),
        click.option("--compile", "compile_", is_flag=True,
                     help="torch.compile each model (inductor; slow to start; one compile per frame size)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def inference_from(kwargs: dict):
    """The InferenceOptions of the options `inference_options` added (one per field; `--compile` arrives as
    `compile_`, a flag for inductor), taken out of a command's `kwargs`."""
    from dataclasses import fields

    from models.inference import InferenceOptions

    values = {f.name: kwargs.pop("compile_" if f.name == "compile" else f.name) for f in fields(InferenceOptions)}
    values["compile"] = "inductor" if values["compile"] else ""
    return InferenceOptions(**values)
