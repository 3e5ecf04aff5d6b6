"""What provenance records of the machine and the tools that made an output (synth-reds, build)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from uvssm import __version__
from uvssm.base.ffmpeg import FFmpeg


def tool_versions(ffmpeg: FFmpeg) -> dict:
    """The versions of uvssm, Python and the libraries that touch frames and tables, and the ffmpeg binary."""
    import av
    import numpy
    import pandas
    import pyarrow

    return {"uvssm": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "pyav": av.__version__,
            "ffmpeg": ffmpeg.as_dict()}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine an output was made on: CPU model, OS and Python implementation."""
    return {"cpu": cpu_model(), "platform": platform.platform(terse=True), "python_impl": sys.implementation.name}
