"""The `uvssm` command. Each subcommand lives in `uvssm/commands/<name>.py` and is imported only
when it runs, so `uvssm --help` stays fast and never imports torch."""

from __future__ import annotations

import importlib
import sys

import click

from uvssm import __version__
from uvssm.base.errors import UvssmError

COMMANDS = {
    "synth-reds": "uvssm.commands.synth_reds:synth_reds",
    "sample": "uvssm.commands.sample:sample",
    "build": "uvssm.commands.build:build",
    "info": "uvssm.commands.info:info",
    "simulate": "uvssm.commands.simulate:simulate",
    "train": "uvssm.commands.train:train",
    "bench": "uvssm.commands.bench:bench",
    "restore": "uvssm.commands.restore:restore",
    "report": "uvssm.commands.report:report",
    "demo": "uvssm.commands.demo:demo",
    "qp-map": "uvssm.commands.qpmap:qp_map",
    "convert": "uvssm.commands.convert:convert",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uvssm")
@click.option("--ffmpeg", "ffmpeg_path", envvar="UVSSM_FFMPEG", metavar="PATH",
              help="ffmpeg binary to use (default: ffmpeg on PATH, else the one imageio-ffmpeg ships). "
                   "Env: UVSSM_FFMPEG.")
@click.pass_context
def cli(ctx: click.Context, ffmpeg_path: str | None) -> None:
    """Datasets and benchmarks for restoring user videos shared on social media (VOTES / UVSSM)."""
    ctx.obj = {"ffmpeg_path": ffmpeg_path}


def main() -> None:
    from rich.console import Console

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        Console(stderr=True).print("[red]aborted[/red]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UvssmError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except SystemExit:
        raise
